"""The client of ``powerplane.v1.DispatchService``."""

from __future__ import annotations

from typing import Any, Iterator, Optional

import grpc

from .._calls import Invoker, Metadata, ServerStream, build_request
from .._gen import dispatch_pb2, dispatch_pb2_grpc
from ._base import ServiceClient


class DispatchServiceClient(ServiceClient):
    """``powerplane.v1.DispatchService``: market data, dispatch, overrides and setpoints."""

    def __init__(self, channel: grpc.Channel, invoker: Invoker) -> None:
        super().__init__(dispatch_pb2_grpc.DispatchServiceStub(channel), invoker)

    def publish_market_data(
        self,
        request: Optional[dispatch_pb2.PublishMarketDataRequest] = None,
        *,
        timeout: Optional[float] = None,
        metadata: Metadata = (),
        **fields: Any,
    ) -> dispatch_pb2.PublishMarketDataResponse:
        """PublishMarketData: stores market data points; retried, since an identical point is a no-op."""
        return self._unary(
            "PublishMarketData", dispatch_pb2.PublishMarketDataRequest, request, fields, timeout, metadata
        )

    def list_market_data(
        self,
        request: Optional[dispatch_pb2.ListMarketDataRequest] = None,
        *,
        timeout: Optional[float] = None,
        metadata: Metadata = (),
        **fields: Any,
    ) -> dispatch_pb2.ListMarketDataResponse:
        """ListMarketData: one page of the latest revisions of market data points."""
        return self._unary("ListMarketData", dispatch_pb2.ListMarketDataRequest, request, fields, timeout, metadata)

    def list_market_data_all(
        self,
        request: Optional[dispatch_pb2.ListMarketDataRequest] = None,
        *,
        timeout: Optional[float] = None,
        metadata: Metadata = (),
        **fields: Any,
    ) -> Iterator[dispatch_pb2.MarketDataPoint]:
        """Every point of every page of ListMarketData."""
        return self._all(
            "ListMarketData", dispatch_pb2.ListMarketDataRequest, request, fields, timeout, metadata, "points"
        )

    def submit_dispatch(
        self,
        request: Optional[dispatch_pb2.SubmitDispatchRequest] = None,
        *,
        timeout: Optional[float] = None,
        metadata: Metadata = (),
        **fields: Any,
    ) -> dispatch_pb2.SubmitDispatchResponse:
        """SubmitDispatch: a schedule for a site or a battery; an empty ``request_id`` is filled with a UUID."""
        return self._unary("SubmitDispatch", dispatch_pb2.SubmitDispatchRequest, request, fields, timeout, metadata)

    def cancel_dispatch(
        self,
        request: Optional[dispatch_pb2.CancelDispatchRequest] = None,
        *,
        timeout: Optional[float] = None,
        metadata: Metadata = (),
        **fields: Any,
    ) -> dispatch_pb2.CancelDispatchResponse:
        """CancelDispatch: cancels a pending or active instruction. Sent once."""
        return self._unary("CancelDispatch", dispatch_pb2.CancelDispatchRequest, request, fields, timeout, metadata)

    def get_dispatch(
        self,
        request: Optional[dispatch_pb2.GetDispatchRequest] = None,
        *,
        timeout: Optional[float] = None,
        metadata: Metadata = (),
        **fields: Any,
    ) -> dispatch_pb2.GetDispatchResponse:
        """GetDispatch: one instruction by id."""
        return self._unary("GetDispatch", dispatch_pb2.GetDispatchRequest, request, fields, timeout, metadata)

    def list_dispatches(
        self,
        request: Optional[dispatch_pb2.ListDispatchesRequest] = None,
        *,
        timeout: Optional[float] = None,
        metadata: Metadata = (),
        **fields: Any,
    ) -> dispatch_pb2.ListDispatchesResponse:
        """ListDispatches: one page of instructions, newest first."""
        return self._unary("ListDispatches", dispatch_pb2.ListDispatchesRequest, request, fields, timeout, metadata)

    def list_dispatches_all(
        self,
        request: Optional[dispatch_pb2.ListDispatchesRequest] = None,
        *,
        timeout: Optional[float] = None,
        metadata: Metadata = (),
        **fields: Any,
    ) -> Iterator[dispatch_pb2.DispatchInstruction]:
        """Every instruction of every page of ListDispatches."""
        return self._all(
            "ListDispatches", dispatch_pb2.ListDispatchesRequest, request, fields, timeout, metadata, "instructions"
        )

    def set_control_mode(
        self,
        request: Optional[dispatch_pb2.SetControlModeRequest] = None,
        *,
        timeout: Optional[float] = None,
        metadata: Metadata = (),
        **fields: Any,
    ) -> dispatch_pb2.SetControlModeResponse:
        """SetControlMode: a manual override of a battery, or its release. Sent once."""
        return self._unary("SetControlMode", dispatch_pb2.SetControlModeRequest, request, fields, timeout, metadata)

    def watch_setpoints(
        self,
        request: Optional[dispatch_pb2.WatchSetpointsRequest] = None,
        *,
        timeout: Optional[float] = None,
        metadata: Metadata = (),
        **fields: Any,
    ) -> ServerStream[dispatch_pb2.SetpointEvent]:
        """WatchSetpoints: the setpoint events, one at a time, until cancelled (no deadline unless ``timeout``)."""
        built = build_request(dispatch_pb2.WatchSetpointsRequest, request, fields)
        call = self._invoker.stream(self.stub.WatchSetpoints, built, timeout, metadata)
        return ServerStream(call, lambda response: response.events)

    def get_control_state(
        self,
        request: Optional[dispatch_pb2.GetControlStateRequest] = None,
        *,
        timeout: Optional[float] = None,
        metadata: Metadata = (),
        **fields: Any,
    ) -> dispatch_pb2.GetControlStateResponse:
        """GetControlState: who controls each battery, its target and why."""
        return self._unary("GetControlState", dispatch_pb2.GetControlStateRequest, request, fields, timeout, metadata)

    def set_site_config(
        self,
        request: Optional[dispatch_pb2.SetSiteConfigRequest] = None,
        *,
        timeout: Optional[float] = None,
        metadata: Metadata = (),
        **fields: Any,
    ) -> dispatch_pb2.SetSiteConfigResponse:
        """SetSiteConfig: replaces a site's control settings. Sent once."""
        return self._unary("SetSiteConfig", dispatch_pb2.SetSiteConfigRequest, request, fields, timeout, metadata)

    def get_site_config(
        self,
        request: Optional[dispatch_pb2.GetSiteConfigRequest] = None,
        *,
        timeout: Optional[float] = None,
        metadata: Metadata = (),
        **fields: Any,
    ) -> dispatch_pb2.GetSiteConfigResponse:
        """GetSiteConfig: a site's control settings."""
        return self._unary("GetSiteConfig", dispatch_pb2.GetSiteConfigRequest, request, fields, timeout, metadata)
