"""The client of ``powerplane.v1.TelemetryService``."""

from __future__ import annotations

from typing import Any, Iterable, Optional

import grpc

from .._calls import Invoker, Metadata, ServerStream
from .._gen import telemetry_pb2, telemetry_pb2_grpc
from ._base import ServiceClient


class TelemetryServiceClient(ServiceClient):
    """``powerplane.v1.TelemetryService``: readings in (agents use the stream)."""

    def __init__(self, channel: grpc.Channel, invoker: Invoker) -> None:
        super().__init__(telemetry_pb2_grpc.TelemetryServiceStub(channel), invoker)

    def write_readings(
        self,
        request: Optional[telemetry_pb2.WriteReadingsRequest] = None,
        *,
        timeout: Optional[float] = None,
        metadata: Metadata = (),
        **fields: Any,
    ) -> telemetry_pb2.WriteReadingsResponse:
        """WriteReadings: stores one batch and acknowledges it after commit. Sent once."""
        return self._unary("WriteReadings", telemetry_pb2.WriteReadingsRequest, request, fields, timeout, metadata)

    def stream_readings(
        self,
        requests: Iterable[telemetry_pb2.StreamReadingsRequest],
        *,
        timeout: Optional[float] = None,
        metadata: Metadata = (),
    ) -> ServerStream[telemetry_pb2.StreamReadingsResponse]:
        """StreamReadings: sends the batches of ``requests`` and yields the server's acks (and relay setpoints)."""
        call = self._invoker.stream(self.stub.StreamReadings, iter(requests), timeout, metadata)
        return ServerStream(call, lambda response: (response,))
