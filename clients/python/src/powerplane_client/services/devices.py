"""The client of ``powerplane.v1.DeviceRegistryService``."""

from __future__ import annotations

from typing import Any, Iterator, Optional

import grpc

from .._calls import Invoker, Metadata
from .._gen import devices_pb2, devices_pb2_grpc
from ._base import ServiceClient


class DeviceRegistryServiceClient(ServiceClient):
    """``powerplane.v1.DeviceRegistryService``: meters and batteries of every site."""

    def __init__(self, channel: grpc.Channel, invoker: Invoker) -> None:
        super().__init__(devices_pb2_grpc.DeviceRegistryServiceStub(channel), invoker)

    def create_device(
        self,
        request: Optional[devices_pb2.CreateDeviceRequest] = None,
        *,
        timeout: Optional[float] = None,
        metadata: Metadata = (),
        **fields: Any,
    ) -> devices_pb2.CreateDeviceResponse:
        """CreateDevice: registers a device; an empty ``request_id`` is filled, so a retry returns the first device."""
        return self._unary("CreateDevice", devices_pb2.CreateDeviceRequest, request, fields, timeout, metadata)

    def get_device(
        self,
        request: Optional[devices_pb2.GetDeviceRequest] = None,
        *,
        timeout: Optional[float] = None,
        metadata: Metadata = (),
        **fields: Any,
    ) -> devices_pb2.GetDeviceResponse:
        """GetDevice: one device by id."""
        return self._unary("GetDevice", devices_pb2.GetDeviceRequest, request, fields, timeout, metadata)

    def list_devices(
        self,
        request: Optional[devices_pb2.ListDevicesRequest] = None,
        *,
        timeout: Optional[float] = None,
        metadata: Metadata = (),
        **fields: Any,
    ) -> devices_pb2.ListDevicesResponse:
        """ListDevices: one page of devices, filtered by site, type and active."""
        return self._unary("ListDevices", devices_pb2.ListDevicesRequest, request, fields, timeout, metadata)

    def list_devices_all(
        self,
        request: Optional[devices_pb2.ListDevicesRequest] = None,
        *,
        timeout: Optional[float] = None,
        metadata: Metadata = (),
        **fields: Any,
    ) -> Iterator[devices_pb2.Device]:
        """Every device of every page of ListDevices."""
        return self._all("ListDevices", devices_pb2.ListDevicesRequest, request, fields, timeout, metadata, "devices")

    def update_device(
        self,
        request: Optional[devices_pb2.UpdateDeviceRequest] = None,
        *,
        timeout: Optional[float] = None,
        metadata: Metadata = (),
        **fields: Any,
    ) -> devices_pb2.UpdateDeviceResponse:
        """UpdateDevice: changes the fields named by ``update_mask``. Sent once."""
        return self._unary("UpdateDevice", devices_pb2.UpdateDeviceRequest, request, fields, timeout, metadata)

    def deactivate_device(
        self,
        request: Optional[devices_pb2.DeactivateDeviceRequest] = None,
        *,
        timeout: Optional[float] = None,
        metadata: Metadata = (),
        **fields: Any,
    ) -> devices_pb2.DeactivateDeviceResponse:
        """DeactivateDevice: marks a device inactive. Sent once."""
        return self._unary("DeactivateDevice", devices_pb2.DeactivateDeviceRequest, request, fields, timeout, metadata)

    def batch_upsert_devices(
        self,
        request: Optional[devices_pb2.BatchUpsertDevicesRequest] = None,
        *,
        timeout: Optional[float] = None,
        metadata: Metadata = (),
        **fields: Any,
    ) -> devices_pb2.BatchUpsertDevicesResponse:
        """BatchUpsertDevices: creates or updates devices by (site, name); an empty ``request_id`` is filled."""
        return self._unary(
            "BatchUpsertDevices", devices_pb2.BatchUpsertDevicesRequest, request, fields, timeout, metadata
        )
