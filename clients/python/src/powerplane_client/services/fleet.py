"""The client of ``powerplane.v1.FleetService``."""

from __future__ import annotations

from typing import Any, Optional

import grpc

from .._calls import Invoker, Metadata
from .._gen import fleet_pb2, fleet_pb2_grpc
from ._base import ServiceClient


class FleetServiceClient(ServiceClient):
    """``powerplane.v1.FleetService``: the fleet's totals and open alerts."""

    def __init__(self, channel: grpc.Channel, invoker: Invoker) -> None:
        super().__init__(fleet_pb2_grpc.FleetServiceStub(channel), invoker)

    def get_fleet_summary(
        self,
        request: Optional[fleet_pb2.GetFleetSummaryRequest] = None,
        *,
        timeout: Optional[float] = None,
        metadata: Metadata = (),
        **fields: Any,
    ) -> fleet_pb2.GetFleetSummaryResponse:
        """GetFleetSummary: totals of the fleet and of each site, and the open alerts."""
        return self._unary("GetFleetSummary", fleet_pb2.GetFleetSummaryRequest, request, fields, timeout, metadata)
