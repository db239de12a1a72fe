"""Python client of Powerplane, the control plane for fleets of battery energy storage systems.

    from powerplane_client import connect, v1

    with connect("127.0.0.1:50051", token=TOKEN) as pp:
        for device in pp.devices.list_devices_all(site="site-a"):
            print(device.name, v1.DeviceType.Name(device.type))

``connect`` sends the bearer token on every call, gives unary calls a 30 s deadline,
retries idempotent calls on UNAVAILABLE (see :mod:`powerplane_client.retry`), and raises a
:class:`PowerplaneError` subclass per status code. clients/python/README.md has the rest.
"""

from . import v1
from ._calls import ServerStream
from .client import DEFAULT_TIMEOUT_S, PowerplaneClient, connect
from .errors import (
    AlreadyExistsError,
    DeadlineExceededError,
    FailedPreconditionError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    PowerplaneError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
)
from .retry import NO_RETRY, RetryPolicy

__version__ = "0.2.0"

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "NO_RETRY",
    "AlreadyExistsError",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "InternalError",
    "InvalidArgumentError",
    "NotFoundError",
    "PermissionDeniedError",
    "PowerplaneClient",
    "PowerplaneError",
    "ResourceExhaustedError",
    "RetryPolicy",
    "ServerStream",
    "UnauthenticatedError",
    "UnavailableError",
    "connect",
    "v1",
]
