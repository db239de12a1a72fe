"""How one call is made: bearer metadata, the default deadline, retries, request ids, and
server streams as iterators. The service classes (services.py) go through here."""

from __future__ import annotations

import collections
import random
import time
import uuid
from typing import Any, Callable, Deque, Generic, Iterable, Iterator, Mapping, Optional, Sequence, Tuple, Type, TypeVar

import grpc
from google.protobuf.message import Message

from .errors import PowerplaneError, error_from_rpc
from .retry import RetryPolicy, has_request_id, is_idempotent

Metadata = Sequence[Tuple[str, str]]
"""gRPC metadata: (key, value) pairs, keys in lower case."""

Req = TypeVar("Req", bound=Message)
Item = TypeVar("Item")


def build_request(request_type: Type[Req], request: Optional[Req], fields: Mapping[str, Any]) -> Req:
    """``request`` itself, or a ``request_type`` built from keyword ``fields``; a TypeError
    for both at once or a request of another type."""
    if request is None:
        return request_type(**fields)
    if fields:
        raise TypeError(f"give a {request_type.__name__} or keyword fields, not both (got fields {sorted(fields)})")
    if not isinstance(request, request_type):
        raise TypeError(f"request must be a {request_type.__name__} (got {type(request).__name__})")
    return request


class Invoker:
    """Makes calls on behalf of every service of one client.

    Args:
        metadata: sent with every call (the ``authorization`` entry, when a token is set).
        timeout: default deadline of a unary call, in seconds, for all of its attempts.
        retry: attempts and backoff of idempotent calls that end UNAVAILABLE.
        sleep: waits between attempts (``time.sleep``; tests pass a recorder).
        clock: a monotonic clock, in seconds.
        rand: draws the jittered backoff (``random.uniform``).
    """

    def __init__(
        self,
        metadata: Metadata,
        timeout: float,
        retry: RetryPolicy,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.metadata = tuple(metadata)
        self.timeout = timeout
        self.retry = retry
        self._sleep = sleep
        self._clock = clock
        self._rand = rand

    def unary(
        self,
        method: str,
        call: Callable[..., Any],
        request: Message,
        timeout: Optional[float],
        metadata: Metadata,
    ) -> Any:
        """Calls ``call`` (the stub's multi-callable of RPC ``method``) within one deadline,
        retrying idempotent methods on UNAVAILABLE; raises a PowerplaneError on failure."""
        descriptor = request.DESCRIPTOR
        if has_request_id(descriptor) and not getattr(request, "request_id"):
            filled = type(request)()
            filled.CopyFrom(request)
            setattr(filled, "request_id", str(uuid.uuid4()))
            request = filled
        attempts = self.retry.max_attempts if is_idempotent(method, descriptor) else 1
        deadline = self._clock() + (self.timeout if timeout is None else timeout)
        sent = self.metadata + tuple(metadata)
        attempt = 0
        while True:
            attempt += 1
            try:
                return call(request, timeout=max(0.0, deadline - self._clock()), metadata=sent)
            except grpc.RpcError as rpc_error:
                error = error_from_rpc(rpc_error)
                if error.code != grpc.StatusCode.UNAVAILABLE or attempt >= attempts:
                    raise error from rpc_error
                wait = self.retry.delay(attempt, error.retry_delay, self._rand)
                if self._clock() + wait >= deadline:
                    raise error from rpc_error
                self._sleep(wait)

    def stream(self, call: Callable[..., Any], request: Any, timeout: Optional[float], metadata: Metadata) -> Any:
        """Starts a streaming call: no deadline unless ``timeout`` is given, never retried."""
        return call(request, timeout=timeout, metadata=self.metadata + tuple(metadata))


class ServerStream(Generic[Item], Iterator[Item]):
    """The messages of a server stream as an iterator, flattened by ``unpack`` (e.g. the
    events of each ``WatchSetpointsResponse``).

    Iteration ends when the server ends the stream or after :meth:`cancel` (from any
    thread); any other end raises a :class:`~powerplane_client.errors.PowerplaneError`
    (DEADLINE_EXCEEDED when a ``timeout`` was given and passed). Use it in a ``with``
    block, or call :meth:`cancel`, so the stream ends when you stop reading.
    """

    def __init__(self, call: Any, unpack: Callable[[Any], Iterable[Item]]) -> None:
        self._call = call
        self._unpack = unpack
        self._pending: Deque[Item] = collections.deque()
        self._cancelled = False

    def __iter__(self) -> "ServerStream[Item]":
        return self

    def __next__(self) -> Item:
        while not self._pending:
            try:
                message = next(self._call)
            except grpc.RpcError as rpc_error:
                error: PowerplaneError = error_from_rpc(rpc_error)
                if self._cancelled and error.code == grpc.StatusCode.CANCELLED:
                    raise StopIteration from None
                raise error from rpc_error
            self._pending.extend(self._unpack(message))
        return self._pending.popleft()

    def cancel(self) -> None:
        """Ends the stream; an iteration in progress stops without an error."""
        self._cancelled = True
        self._call.cancel()

    def __enter__(self) -> "ServerStream[Item]":
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()
