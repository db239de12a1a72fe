from google.protobuf import timestamp_pb2 as _timestamp_pb2
from . import dispatch_pb2 as _dispatch_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

ALERT_KIND_AGENT_DISCONNECTED: AlertKind
ALERT_KIND_BATTERY_UNREACHABLE: AlertKind
ALERT_KIND_SETPOINT_FAILED: AlertKind
ALERT_KIND_SOURCE_MISMATCH: AlertKind
ALERT_KIND_TELEMETRY_STALE: AlertKind
ALERT_KIND_UNDELIVERED_POWER: AlertKind
ALERT_KIND_UNSPECIFIED: AlertKind
DESCRIPTOR: _descriptor.FileDescriptor

class Alert(_message.Message):
    __slots__ = ["device_id", "device_name", "kind", "reason", "since", "site"]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    device_name: str
    kind: AlertKind
    reason: str
    since: _timestamp_pb2.Timestamp
    site: str
    def __init__(self, kind: _Optional[_Union[AlertKind, str]] = ..., site: _Optional[str] = ..., device_id: _Optional[str] = ..., device_name: _Optional[str] = ..., since: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class FleetBattery(_message.Message):
    __slots__ = ["control", "device_id", "max_soe_percent", "min_soe_percent", "name", "reported_power_kw", "site", "soe_percent"]
    CONTROL_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_SOE_PERCENT_FIELD_NUMBER: _ClassVar[int]
    MIN_SOE_PERCENT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    REPORTED_POWER_KW_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    SOE_PERCENT_FIELD_NUMBER: _ClassVar[int]
    control: _dispatch_pb2.BatteryControlState
    device_id: str
    max_soe_percent: float
    min_soe_percent: float
    name: str
    reported_power_kw: float
    site: str
    soe_percent: float
    def __init__(self, device_id: _Optional[str] = ..., site: _Optional[str] = ..., name: _Optional[str] = ..., min_soe_percent: _Optional[float] = ..., max_soe_percent: _Optional[float] = ..., control: _Optional[_Union[_dispatch_pb2.BatteryControlState, _Mapping]] = ..., soe_percent: _Optional[float] = ..., reported_power_kw: _Optional[float] = ...) -> None: ...

class FleetTotals(_message.Message):
    __slots__ = ["available_charge_kw", "available_discharge_kw", "battery_count", "energy_max_kwh", "energy_min_kwh", "energy_stored_kwh", "failed_count", "online_count", "reported_power_kw", "setpoint_power_kw", "stale_count"]
    AVAILABLE_CHARGE_KW_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_DISCHARGE_KW_FIELD_NUMBER: _ClassVar[int]
    BATTERY_COUNT_FIELD_NUMBER: _ClassVar[int]
    ENERGY_MAX_KWH_FIELD_NUMBER: _ClassVar[int]
    ENERGY_MIN_KWH_FIELD_NUMBER: _ClassVar[int]
    ENERGY_STORED_KWH_FIELD_NUMBER: _ClassVar[int]
    FAILED_COUNT_FIELD_NUMBER: _ClassVar[int]
    ONLINE_COUNT_FIELD_NUMBER: _ClassVar[int]
    REPORTED_POWER_KW_FIELD_NUMBER: _ClassVar[int]
    SETPOINT_POWER_KW_FIELD_NUMBER: _ClassVar[int]
    STALE_COUNT_FIELD_NUMBER: _ClassVar[int]
    available_charge_kw: float
    available_discharge_kw: float
    battery_count: int
    energy_max_kwh: float
    energy_min_kwh: float
    energy_stored_kwh: float
    failed_count: int
    online_count: int
    reported_power_kw: float
    setpoint_power_kw: float
    stale_count: int
    def __init__(self, battery_count: _Optional[int] = ..., online_count: _Optional[int] = ..., stale_count: _Optional[int] = ..., failed_count: _Optional[int] = ..., available_charge_kw: _Optional[float] = ..., available_discharge_kw: _Optional[float] = ..., energy_stored_kwh: _Optional[float] = ..., energy_min_kwh: _Optional[float] = ..., energy_max_kwh: _Optional[float] = ..., reported_power_kw: _Optional[float] = ..., setpoint_power_kw: _Optional[float] = ...) -> None: ...

class GetFleetSummaryRequest(_message.Message):
    __slots__ = ["include_batteries", "sites"]
    INCLUDE_BATTERIES_FIELD_NUMBER: _ClassVar[int]
    SITES_FIELD_NUMBER: _ClassVar[int]
    include_batteries: bool
    sites: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, sites: _Optional[_Iterable[str]] = ..., include_batteries: bool = ...) -> None: ...

class GetFleetSummaryResponse(_message.Message):
    __slots__ = ["alerts", "as_of", "batteries", "max_telemetry_age_seconds", "sites", "totals"]
    ALERTS_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    BATTERIES_FIELD_NUMBER: _ClassVar[int]
    MAX_TELEMETRY_AGE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SITES_FIELD_NUMBER: _ClassVar[int]
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    alerts: _containers.RepeatedCompositeFieldContainer[Alert]
    as_of: _timestamp_pb2.Timestamp
    batteries: _containers.RepeatedCompositeFieldContainer[FleetBattery]
    max_telemetry_age_seconds: float
    sites: _containers.RepeatedCompositeFieldContainer[SiteSummary]
    totals: FleetTotals
    def __init__(self, totals: _Optional[_Union[FleetTotals, _Mapping]] = ..., sites: _Optional[_Iterable[_Union[SiteSummary, _Mapping]]] = ..., alerts: _Optional[_Iterable[_Union[Alert, _Mapping]]] = ..., as_of: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., max_telemetry_age_seconds: _Optional[float] = ..., batteries: _Optional[_Iterable[_Union[FleetBattery, _Mapping]]] = ...) -> None: ...

class SiteSummary(_message.Message):
    __slots__ = ["last_reading_time", "site", "totals", "undelivered_power_kw"]
    LAST_READING_TIME_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    UNDELIVERED_POWER_KW_FIELD_NUMBER: _ClassVar[int]
    last_reading_time: _timestamp_pb2.Timestamp
    site: str
    totals: FleetTotals
    undelivered_power_kw: float
    def __init__(self, site: _Optional[str] = ..., totals: _Optional[_Union[FleetTotals, _Mapping]] = ..., undelivered_power_kw: _Optional[float] = ..., last_reading_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AlertKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
