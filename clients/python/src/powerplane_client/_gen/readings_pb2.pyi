from google.protobuf import timestamp_pb2 as _timestamp_pb2
from . import telemetry_pb2 as _telemetry_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor
TIME_ORDER_ASCENDING: TimeOrder
TIME_ORDER_DESCENDING: TimeOrder
TIME_ORDER_UNSPECIFIED: TimeOrder

class BatterySeries(_message.Message):
    __slots__ = ["device_id", "points"]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    points: _containers.RepeatedCompositeFieldContainer[SeriesPoint]
    def __init__(self, device_id: _Optional[str] = ..., points: _Optional[_Iterable[_Union[SeriesPoint, _Mapping]]] = ...) -> None: ...

class GetLatestBessStateRequest(_message.Message):
    __slots__ = ["device_ids", "site"]
    DEVICE_IDS_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    device_ids: _containers.RepeatedScalarFieldContainer[str]
    site: str
    def __init__(self, device_ids: _Optional[_Iterable[str]] = ..., site: _Optional[str] = ...) -> None: ...

class GetLatestBessStateResponse(_message.Message):
    __slots__ = ["states"]
    STATES_FIELD_NUMBER: _ClassVar[int]
    states: _containers.RepeatedCompositeFieldContainer[_telemetry_pb2.BessReading]
    def __init__(self, states: _Optional[_Iterable[_Union[_telemetry_pb2.BessReading, _Mapping]]] = ...) -> None: ...

class ListBatterySeriesRequest(_message.Message):
    __slots__ = ["device_ids", "points", "range", "site"]
    DEVICE_IDS_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    device_ids: _containers.RepeatedScalarFieldContainer[str]
    points: int
    range: TimeRange
    site: str
    def __init__(self, site: _Optional[str] = ..., device_ids: _Optional[_Iterable[str]] = ..., range: _Optional[_Union[TimeRange, _Mapping]] = ..., points: _Optional[int] = ...) -> None: ...

class ListBatterySeriesResponse(_message.Message):
    __slots__ = ["bucket_seconds", "series"]
    BUCKET_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SERIES_FIELD_NUMBER: _ClassVar[int]
    bucket_seconds: float
    series: _containers.RepeatedCompositeFieldContainer[BatterySeries]
    def __init__(self, series: _Optional[_Iterable[_Union[BatterySeries, _Mapping]]] = ..., bucket_seconds: _Optional[float] = ...) -> None: ...

class ListBessReadingsRequest(_message.Message):
    __slots__ = ["device_ids", "order", "page_size", "page_token", "range"]
    DEVICE_IDS_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    device_ids: _containers.RepeatedScalarFieldContainer[str]
    order: TimeOrder
    page_size: int
    page_token: str
    range: TimeRange
    def __init__(self, device_ids: _Optional[_Iterable[str]] = ..., range: _Optional[_Union[TimeRange, _Mapping]] = ..., order: _Optional[_Union[TimeOrder, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListBessReadingsResponse(_message.Message):
    __slots__ = ["bess_readings", "next_page_token"]
    BESS_READINGS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    bess_readings: _containers.RepeatedCompositeFieldContainer[_telemetry_pb2.BessReading]
    next_page_token: str
    def __init__(self, bess_readings: _Optional[_Iterable[_Union[_telemetry_pb2.BessReading, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListDatumReadingsRequest(_message.Message):
    __slots__ = ["device_id", "order", "page_size", "page_token", "range", "source_id"]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    order: TimeOrder
    page_size: int
    page_token: str
    range: TimeRange
    source_id: str
    def __init__(self, device_id: _Optional[str] = ..., source_id: _Optional[str] = ..., range: _Optional[_Union[TimeRange, _Mapping]] = ..., order: _Optional[_Union[TimeOrder, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDatumReadingsResponse(_message.Message):
    __slots__ = ["datum_readings", "next_page_token"]
    DATUM_READINGS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    datum_readings: _containers.RepeatedCompositeFieldContainer[_telemetry_pb2.DatumReading]
    next_page_token: str
    def __init__(self, datum_readings: _Optional[_Iterable[_Union[_telemetry_pb2.DatumReading, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListMeterAggregatesRequest(_message.Message):
    __slots__ = ["device_ids", "page_size", "page_token", "range"]
    DEVICE_IDS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    device_ids: _containers.RepeatedScalarFieldContainer[str]
    page_size: int
    page_token: str
    range: TimeRange
    def __init__(self, device_ids: _Optional[_Iterable[str]] = ..., range: _Optional[_Union[TimeRange, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListMeterAggregatesResponse(_message.Message):
    __slots__ = ["aggregates", "next_page_token"]
    AGGREGATES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    aggregates: _containers.RepeatedCompositeFieldContainer[MeterAggregate]
    next_page_token: str
    def __init__(self, aggregates: _Optional[_Iterable[_Union[MeterAggregate, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListMeterReadingsRequest(_message.Message):
    __slots__ = ["device_ids", "order", "page_size", "page_token", "range"]
    DEVICE_IDS_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    device_ids: _containers.RepeatedScalarFieldContainer[str]
    order: TimeOrder
    page_size: int
    page_token: str
    range: TimeRange
    def __init__(self, device_ids: _Optional[_Iterable[str]] = ..., range: _Optional[_Union[TimeRange, _Mapping]] = ..., order: _Optional[_Union[TimeOrder, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListMeterReadingsResponse(_message.Message):
    __slots__ = ["meter_readings", "next_page_token"]
    METER_READINGS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    meter_readings: _containers.RepeatedCompositeFieldContainer[_telemetry_pb2.MeterReading]
    next_page_token: str
    def __init__(self, meter_readings: _Optional[_Iterable[_Union[_telemetry_pb2.MeterReading, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListSettlementPeriodsRequest(_message.Message):
    __slots__ = ["device_ids", "range"]
    DEVICE_IDS_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    device_ids: _containers.RepeatedScalarFieldContainer[str]
    range: TimeRange
    def __init__(self, device_ids: _Optional[_Iterable[str]] = ..., range: _Optional[_Union[TimeRange, _Mapping]] = ...) -> None: ...

class ListSettlementPeriodsResponse(_message.Message):
    __slots__ = ["periods"]
    PERIODS_FIELD_NUMBER: _ClassVar[int]
    periods: _containers.RepeatedCompositeFieldContainer[SettlementPeriod]
    def __init__(self, periods: _Optional[_Iterable[_Union[SettlementPeriod, _Mapping]]] = ...) -> None: ...

class MeterAggregate(_message.Message):
    __slots__ = ["bucket_start_time", "current_phase_average_avg_a", "device_id", "energy_exported_active_max_kwh", "energy_exported_active_min_kwh", "energy_imported_active_max_kwh", "energy_imported_active_min_kwh", "frequency_avg_hz", "power_factor_total_avg", "power_total_active_avg_kw", "power_total_reactive_avg_kvar", "reading_count", "voltage_line_average_avg_v"]
    BUCKET_START_TIME_FIELD_NUMBER: _ClassVar[int]
    CURRENT_PHASE_AVERAGE_AVG_A_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    ENERGY_EXPORTED_ACTIVE_MAX_KWH_FIELD_NUMBER: _ClassVar[int]
    ENERGY_EXPORTED_ACTIVE_MIN_KWH_FIELD_NUMBER: _ClassVar[int]
    ENERGY_IMPORTED_ACTIVE_MAX_KWH_FIELD_NUMBER: _ClassVar[int]
    ENERGY_IMPORTED_ACTIVE_MIN_KWH_FIELD_NUMBER: _ClassVar[int]
    FREQUENCY_AVG_HZ_FIELD_NUMBER: _ClassVar[int]
    POWER_FACTOR_TOTAL_AVG_FIELD_NUMBER: _ClassVar[int]
    POWER_TOTAL_ACTIVE_AVG_KW_FIELD_NUMBER: _ClassVar[int]
    POWER_TOTAL_REACTIVE_AVG_KVAR_FIELD_NUMBER: _ClassVar[int]
    READING_COUNT_FIELD_NUMBER: _ClassVar[int]
    VOLTAGE_LINE_AVERAGE_AVG_V_FIELD_NUMBER: _ClassVar[int]
    bucket_start_time: _timestamp_pb2.Timestamp
    current_phase_average_avg_a: float
    device_id: str
    energy_exported_active_max_kwh: float
    energy_exported_active_min_kwh: float
    energy_imported_active_max_kwh: float
    energy_imported_active_min_kwh: float
    frequency_avg_hz: float
    power_factor_total_avg: float
    power_total_active_avg_kw: float
    power_total_reactive_avg_kvar: float
    reading_count: int
    voltage_line_average_avg_v: float
    def __init__(self, device_id: _Optional[str] = ..., bucket_start_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., reading_count: _Optional[int] = ..., frequency_avg_hz: _Optional[float] = ..., voltage_line_average_avg_v: _Optional[float] = ..., current_phase_average_avg_a: _Optional[float] = ..., power_total_active_avg_kw: _Optional[float] = ..., power_total_reactive_avg_kvar: _Optional[float] = ..., power_factor_total_avg: _Optional[float] = ..., energy_imported_active_min_kwh: _Optional[float] = ..., energy_imported_active_max_kwh: _Optional[float] = ..., energy_exported_active_min_kwh: _Optional[float] = ..., energy_exported_active_max_kwh: _Optional[float] = ...) -> None: ...

class SeriesPoint(_message.Message):
    __slots__ = ["reported_power_kw", "setpoint_kw", "soe_percent", "time"]
    REPORTED_POWER_KW_FIELD_NUMBER: _ClassVar[int]
    SETPOINT_KW_FIELD_NUMBER: _ClassVar[int]
    SOE_PERCENT_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    reported_power_kw: float
    setpoint_kw: float
    soe_percent: float
    time: _timestamp_pb2.Timestamp
    def __init__(self, time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., soe_percent: _Optional[float] = ..., reported_power_kw: _Optional[float] = ..., setpoint_kw: _Optional[float] = ...) -> None: ...

class SettlementPeriod(_message.Message):
    __slots__ = ["complete", "device_id", "energy_exported_active_delta_kwh", "energy_imported_active_delta_kwh", "power_total_active_avg_kw", "settlement_date", "settlement_period", "start_time"]
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    ENERGY_EXPORTED_ACTIVE_DELTA_KWH_FIELD_NUMBER: _ClassVar[int]
    ENERGY_IMPORTED_ACTIVE_DELTA_KWH_FIELD_NUMBER: _ClassVar[int]
    POWER_TOTAL_ACTIVE_AVG_KW_FIELD_NUMBER: _ClassVar[int]
    SETTLEMENT_DATE_FIELD_NUMBER: _ClassVar[int]
    SETTLEMENT_PERIOD_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    complete: bool
    device_id: str
    energy_exported_active_delta_kwh: float
    energy_imported_active_delta_kwh: float
    power_total_active_avg_kw: float
    settlement_date: str
    settlement_period: int
    start_time: _timestamp_pb2.Timestamp
    def __init__(self, device_id: _Optional[str] = ..., start_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., settlement_date: _Optional[str] = ..., settlement_period: _Optional[int] = ..., power_total_active_avg_kw: _Optional[float] = ..., energy_imported_active_delta_kwh: _Optional[float] = ..., energy_exported_active_delta_kwh: _Optional[float] = ..., complete: bool = ...) -> None: ...

class TimeRange(_message.Message):
    __slots__ = ["end_time", "start_time"]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    end_time: _timestamp_pb2.Timestamp
    start_time: _timestamp_pb2.Timestamp
    def __init__(self, start_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class TimeOrder(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
