"""The client of ``powerplane.v1.ReadingsService``."""

from __future__ import annotations

from typing import Any, Iterator, Optional

import grpc

from .._calls import Invoker, Metadata
from .._gen import readings_pb2, readings_pb2_grpc, telemetry_pb2
from ._base import ServiceClient


class ReadingsServiceClient(ServiceClient):
    """``powerplane.v1.ReadingsService``: stored readings, roll-ups and settlement periods."""

    def __init__(self, channel: grpc.Channel, invoker: Invoker) -> None:
        super().__init__(readings_pb2_grpc.ReadingsServiceStub(channel), invoker)

    def list_meter_readings(
        self,
        request: Optional[readings_pb2.ListMeterReadingsRequest] = None,
        *,
        timeout: Optional[float] = None,
        metadata: Metadata = (),
        **fields: Any,
    ) -> readings_pb2.ListMeterReadingsResponse:
        """ListMeterReadings: one page of raw meter readings."""
        return self._unary(
            "ListMeterReadings", readings_pb2.ListMeterReadingsRequest, request, fields, timeout, metadata
        )

    def list_meter_readings_all(
        self,
        request: Optional[readings_pb2.ListMeterReadingsRequest] = None,
        *,
        timeout: Optional[float] = None,
        metadata: Metadata = (),
        **fields: Any,
    ) -> Iterator[telemetry_pb2.MeterReading]:
        """Every reading of every page of ListMeterReadings."""
        return self._all(
            "ListMeterReadings",
            readings_pb2.ListMeterReadingsRequest,
            request,
            fields,
            timeout,
            metadata,
            "meter_readings",
        )

    def list_bess_readings(
        self,
        request: Optional[readings_pb2.ListBessReadingsRequest] = None,
        *,
        timeout: Optional[float] = None,
        metadata: Metadata = (),
        **fields: Any,
    ) -> readings_pb2.ListBessReadingsResponse:
        """ListBessReadings: one page of raw battery readings."""
        return self._unary("ListBessReadings", readings_pb2.ListBessReadingsRequest, request, fields, timeout, metadata)

    def list_bess_readings_all(
        self,
        request: Optional[readings_pb2.ListBessReadingsRequest] = None,
        *,
        timeout: Optional[float] = None,
        metadata: Metadata = (),
        **fields: Any,
    ) -> Iterator[telemetry_pb2.BessReading]:
        """Every reading of every page of ListBessReadings."""
        return self._all(
            "ListBessReadings",
            readings_pb2.ListBessReadingsRequest,
            request,
            fields,
            timeout,
            metadata,
            "bess_readings",
        )

    def get_latest_bess_state(
        self,
        request: Optional[readings_pb2.GetLatestBessStateRequest] = None,
        *,
        timeout: Optional[float] = None,
        metadata: Metadata = (),
        **fields: Any,
    ) -> readings_pb2.GetLatestBessStateResponse:
        """GetLatestBessState: the latest reading of each battery."""
        return self._unary(
            "GetLatestBessState", readings_pb2.GetLatestBessStateRequest, request, fields, timeout, metadata
        )

    def list_meter_aggregates(
        self,
        request: Optional[readings_pb2.ListMeterAggregatesRequest] = None,
        *,
        timeout: Optional[float] = None,
        metadata: Metadata = (),
        **fields: Any,
    ) -> readings_pb2.ListMeterAggregatesResponse:
        """ListMeterAggregates: one page of 5-minute roll-ups."""
        return self._unary(
            "ListMeterAggregates", readings_pb2.ListMeterAggregatesRequest, request, fields, timeout, metadata
        )

    def list_meter_aggregates_all(
        self,
        request: Optional[readings_pb2.ListMeterAggregatesRequest] = None,
        *,
        timeout: Optional[float] = None,
        metadata: Metadata = (),
        **fields: Any,
    ) -> Iterator[readings_pb2.MeterAggregate]:
        """Every bucket of every page of ListMeterAggregates."""
        return self._all(
            "ListMeterAggregates",
            readings_pb2.ListMeterAggregatesRequest,
            request,
            fields,
            timeout,
            metadata,
            "aggregates",
        )

    def list_battery_series(
        self,
        request: Optional[readings_pb2.ListBatterySeriesRequest] = None,
        *,
        timeout: Optional[float] = None,
        metadata: Metadata = (),
        **fields: Any,
    ) -> readings_pb2.ListBatterySeriesResponse:
        """ListBatterySeries: SoE, reported power and setpoint per battery, bucketed for charts."""
        return self._unary(
            "ListBatterySeries", readings_pb2.ListBatterySeriesRequest, request, fields, timeout, metadata
        )

    def list_settlement_periods(
        self,
        request: Optional[readings_pb2.ListSettlementPeriodsRequest] = None,
        *,
        timeout: Optional[float] = None,
        metadata: Metadata = (),
        **fields: Any,
    ) -> readings_pb2.ListSettlementPeriodsResponse:
        """ListSettlementPeriods: 30-minute GB settlement periods with energy deltas."""
        return self._unary(
            "ListSettlementPeriods", readings_pb2.ListSettlementPeriodsRequest, request, fields, timeout, metadata
        )

    def list_datum_readings(
        self,
        request: Optional[readings_pb2.ListDatumReadingsRequest] = None,
        *,
        timeout: Optional[float] = None,
        metadata: Metadata = (),
        **fields: Any,
    ) -> readings_pb2.ListDatumReadingsResponse:
        """ListDatumReadings: one page of one datum stream's readings."""
        return self._unary(
            "ListDatumReadings", readings_pb2.ListDatumReadingsRequest, request, fields, timeout, metadata
        )

    def list_datum_readings_all(
        self,
        request: Optional[readings_pb2.ListDatumReadingsRequest] = None,
        *,
        timeout: Optional[float] = None,
        metadata: Metadata = (),
        **fields: Any,
    ) -> Iterator[telemetry_pb2.DatumReading]:
        """Every reading of every page of ListDatumReadings."""
        return self._all(
            "ListDatumReadings",
            readings_pb2.ListDatumReadingsRequest,
            request,
            fields,
            timeout,
            metadata,
            "datum_readings",
        )
