"""The client of ``powerplane.v1.TokenService``."""

from __future__ import annotations

from typing import Any, Iterator, Optional

import grpc

from .._calls import Invoker, Metadata
from .._gen import auth_pb2, auth_pb2_grpc
from ._base import ServiceClient


class TokenServiceClient(ServiceClient):
    """``powerplane.v1.TokenService``: static API tokens."""

    def __init__(self, channel: grpc.Channel, invoker: Invoker) -> None:
        super().__init__(auth_pb2_grpc.TokenServiceStub(channel), invoker)

    def create_token(
        self,
        request: Optional[auth_pb2.CreateTokenRequest] = None,
        *,
        timeout: Optional[float] = None,
        metadata: Metadata = (),
        **fields: Any,
    ) -> auth_pb2.CreateTokenResponse:
        """CreateToken: a new token; its secret is in this answer only. Sent once."""
        return self._unary("CreateToken", auth_pb2.CreateTokenRequest, request, fields, timeout, metadata)

    def list_tokens(
        self,
        request: Optional[auth_pb2.ListTokensRequest] = None,
        *,
        timeout: Optional[float] = None,
        metadata: Metadata = (),
        **fields: Any,
    ) -> auth_pb2.ListTokensResponse:
        """ListTokens: one page of tokens, newest first."""
        return self._unary("ListTokens", auth_pb2.ListTokensRequest, request, fields, timeout, metadata)

    def list_tokens_all(
        self,
        request: Optional[auth_pb2.ListTokensRequest] = None,
        *,
        timeout: Optional[float] = None,
        metadata: Metadata = (),
        **fields: Any,
    ) -> Iterator[auth_pb2.TokenInfo]:
        """Every token of every page of ListTokens."""
        return self._all("ListTokens", auth_pb2.ListTokensRequest, request, fields, timeout, metadata, "tokens")

    def revoke_token(
        self,
        request: Optional[auth_pb2.RevokeTokenRequest] = None,
        *,
        timeout: Optional[float] = None,
        metadata: Metadata = (),
        **fields: Any,
    ) -> auth_pb2.RevokeTokenResponse:
        """RevokeToken: revokes a token by id. Sent once."""
        return self._unary("RevokeToken", auth_pb2.RevokeTokenRequest, request, fields, timeout, metadata)

    def get_caller(
        self,
        request: Optional[auth_pb2.GetCallerRequest] = None,
        *,
        timeout: Optional[float] = None,
        metadata: Metadata = (),
        **fields: Any,
    ) -> auth_pb2.GetCallerResponse:
        """GetCaller: who the server takes the caller for, with its scopes and sites."""
        return self._unary("GetCaller", auth_pb2.GetCallerRequest, request, fields, timeout, metadata)
