"""One class per powerplane.v1 service: a typed method per RPC, in snake_case.

Every unary method takes the request message, or its fields as keyword arguments
(``client.devices.list_devices(site="site-a")``), plus ``timeout`` (seconds; default the
client's, 30 s) and extra ``metadata``, and returns the response message or raises a
:class:`~powerplane_client.errors.PowerplaneError`. ``*_all`` methods follow
``next_page_token`` and yield the items of every page. Server streams return a
:class:`~powerplane_client._calls.ServerStream`. The generated stub is ``.stub``.
"""

from .tokens import TokenServiceClient
from .devices import DeviceRegistryServiceClient
from .telemetry import TelemetryServiceClient
from .readings import ReadingsServiceClient
from .dispatch import DispatchServiceClient
from .fleet import FleetServiceClient

__all__ = [
    "DeviceRegistryServiceClient",
    "DispatchServiceClient",
    "FleetServiceClient",
    "ReadingsServiceClient",
    "TelemetryServiceClient",
    "TokenServiceClient",
]
