"""``connect()``: a channel to a Powerplane server and a client per service on it."""

from __future__ import annotations

import time
from typing import Callable, Optional, Sequence, Tuple, Union

import grpc

from ._calls import Invoker
from .retry import RetryPolicy
from .services import (
    DeviceRegistryServiceClient,
    DispatchServiceClient,
    FleetServiceClient,
    ReadingsServiceClient,
    TelemetryServiceClient,
    TokenServiceClient,
)

DEFAULT_TIMEOUT_S = 30.0
"""Deadline of a unary call when the caller gives none, in seconds (all attempts together)."""

MAX_RECEIVE_MESSAGE_BYTES = 256 * 1024 * 1024
"""The largest answer accepted: the server's own upper bound of POWERPLANE_MAX_MESSAGE_BYTES."""


class PowerplaneClient:
    """A connection to one Powerplane server, with a client per service.

    Attributes:
        tokens: ``TokenService``.
        devices: ``DeviceRegistryService``.
        telemetry: ``TelemetryService``.
        readings: ``ReadingsService``.
        dispatch: ``DispatchService``.
        fleet: ``FleetService``.
        channel: the gRPC channel they share.

    Close it (or use it in a ``with`` block) to release the channel.
    """

    def __init__(self, channel: grpc.Channel, invoker: Invoker) -> None:
        self.channel = channel
        self.tokens = TokenServiceClient(channel, invoker)
        self.devices = DeviceRegistryServiceClient(channel, invoker)
        self.telemetry = TelemetryServiceClient(channel, invoker)
        self.readings = ReadingsServiceClient(channel, invoker)
        self.dispatch = DispatchServiceClient(channel, invoker)
        self.fleet = FleetServiceClient(channel, invoker)

    def close(self) -> None:
        """Closes the channel; calls in progress end CANCELLED."""
        self.channel.close()

    def __enter__(self) -> "PowerplaneClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _split_target(
    target: str, tls: Union[bool, grpc.ChannelCredentials, None]
) -> Tuple[str, Union[bool, grpc.ChannelCredentials]]:
    """``host:port`` and the TLS choice; ``http://`` and ``https://`` prefixes are accepted
    (as the CLI's ``--server`` takes them), ``https://`` meaning TLS unless ``tls`` says otherwise."""
    for scheme, secure in (("http://", False), ("https://", True)):
        if target.startswith(scheme):
            return target[len(scheme) :].rstrip("/"), secure if tls is None else tls
    return target, False if tls is None else tls


def connect(
    target: str,
    token: Optional[str] = None,
    tls: Union[bool, grpc.ChannelCredentials, None] = None,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    retry: Optional[RetryPolicy] = None,
    options: Sequence[Tuple[str, object]] = (),
    sleep: Callable[[float], None] = time.sleep,
) -> PowerplaneClient:
    """Opens a channel to a Powerplane server (gRPC over HTTP/2).

    Args:
        target: ``host:port`` (e.g. ``127.0.0.1:50051``), or ``http://host:port`` /
            ``https://host:port``.
        token: a bearer token, sent as ``authorization: Bearer <token>`` on every call
            (e.g. the contents of ``.powerplane/admin.token``, or a token from
            ``powerplane tokens create``). None sends no credential.
        tls: False for cleartext (the server's default), True for TLS with the system's
            CAs, or ``grpc.ssl_channel_credentials(...)`` for a private CA or mutual TLS.
            None: TLS only for an ``https://`` target.
        timeout: default deadline of unary calls, in seconds (30). Server streams have
            none unless the call gives one.
        retry: attempts and backoff for idempotent calls ending UNAVAILABLE (default:
            4 attempts, 100 ms to 2 s with full jitter; ``NO_RETRY`` turns it off).
        options: extra gRPC channel options.
        sleep: how to wait between attempts (tests pass a recorder).
    """
    if timeout <= 0:
        raise ValueError(f"timeout must be above 0 seconds (got {timeout})")
    address, secure = _split_target(target, tls)
    if not address or ":" not in address:
        raise ValueError(f"target must be host:port (got {target!r})")
    channel_options = [("grpc.max_receive_message_length", MAX_RECEIVE_MESSAGE_BYTES), *options]
    if secure is False:
        channel = grpc.insecure_channel(address, options=channel_options)
    else:
        credentials = grpc.ssl_channel_credentials() if secure is True else secure
        channel = grpc.secure_channel(address, credentials, options=channel_options)
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    invoker = Invoker(metadata, timeout, retry or RetryPolicy(), sleep=sleep)
    return PowerplaneClient(channel, invoker)
