"""Errors of Powerplane calls: one exception class per gRPC status code the API returns.

Every failed call raises a :class:`PowerplaneError` subclass carrying the code and the
server's message, which names the field and the value for bad input, e.g.
``invalid_argument: device.bess.min_soe_percent must not be above max_soe_percent (20) (got 80)``.
The :class:`grpc.RpcError` it came from is its ``__cause__``.
"""

from __future__ import annotations

from typing import Dict, Optional, Type

import grpc

from ._status import STATUS_DETAILS_KEY, retry_delay_of


class PowerplaneError(Exception):
    """A call that ended with a status other than OK.

    Attributes:
        code: the gRPC status code.
        message: the server's message (for INVALID_ARGUMENT it names the field and value).
        retry_delay: seconds a ``google.rpc.RetryInfo`` detail asked the caller to wait
            before trying again, or None when the status carried none.
    """

    def __init__(self, code: grpc.StatusCode, message: str, retry_delay: Optional[float] = None) -> None:
        super().__init__(f"{code.name.lower()}: {message}")
        self.code = code
        self.message = message
        self.retry_delay = retry_delay


class InvalidArgumentError(PowerplaneError):
    """INVALID_ARGUMENT: bad input; the message names the field and the value."""


class NotFoundError(PowerplaneError):
    """NOT_FOUND: an unknown id (or another site's, for a caller bound to sites)."""


class AlreadyExistsError(PowerplaneError):
    """ALREADY_EXISTS: a ``request_id`` reused with another payload."""


class FailedPreconditionError(PowerplaneError):
    """FAILED_PRECONDITION: the target's state does not allow the operation."""


class PermissionDeniedError(PowerplaneError):
    """PERMISSION_DENIED: the token's scopes or sites do not cover the call."""


class UnauthenticatedError(PowerplaneError):
    """UNAUTHENTICATED: no token, or one that is invalid, expired or revoked."""


class ResourceExhaustedError(PowerplaneError):
    """RESOURCE_EXHAUSTED: a rate limit (``retry_delay`` says how long to wait) or a message too large."""


class DeadlineExceededError(PowerplaneError):
    """DEADLINE_EXCEEDED: the call's deadline passed."""


class UnavailableError(PowerplaneError):
    """UNAVAILABLE: the server or its database cannot be reached (retried for idempotent calls)."""


class InternalError(PowerplaneError):
    """INTERNAL: an unexpected server error; the message is masked, the server logs the cause."""


_BY_CODE: Dict[grpc.StatusCode, Type[PowerplaneError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExistsError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.INTERNAL: InternalError,
}


def error_from_rpc(error: grpc.RpcError) -> PowerplaneError:
    """The :class:`PowerplaneError` for a failed gRPC call (the class chosen by its code)."""
    call = error if isinstance(error, grpc.Call) else None
    code = call.code() if call is not None else grpc.StatusCode.UNKNOWN
    message = (call.details() if call is not None else None) or str(error)
    delay = None
    if call is not None:
        for key, value in call.trailing_metadata() or ():
            if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
                delay = retry_delay_of(value)
                if delay is not None:
                    break
    return _BY_CODE.get(code, PowerplaneError)(code, message, delay)
