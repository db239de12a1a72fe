from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from . import telemetry_pb2 as _telemetry_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

CONTROL_MODE_AUTOMATIC: ControlMode
CONTROL_MODE_MANUAL: ControlMode
CONTROL_MODE_UNSPECIFIED: ControlMode
DESCRIPTOR: _descriptor.FileDescriptor
DISPATCH_ACTION_AVOID_EXPORT: DispatchAction
DISPATCH_ACTION_AVOID_IMPORT: DispatchAction
DISPATCH_ACTION_CHARGE_MAX: DispatchAction
DISPATCH_ACTION_DISCHARGE_MAX: DispatchAction
DISPATCH_ACTION_UNSPECIFIED: DispatchAction
DISPATCH_STATE_ACTIVE: DispatchState
DISPATCH_STATE_CANCELLED: DispatchState
DISPATCH_STATE_COMPLETED: DispatchState
DISPATCH_STATE_PENDING: DispatchState
DISPATCH_STATE_UNSPECIFIED: DispatchState
SETPOINT_PHASE_EXPIRED: SetpointPhase
SETPOINT_PHASE_FAILED: SetpointPhase
SETPOINT_PHASE_PLANNED: SetpointPhase
SETPOINT_PHASE_UNSPECIFIED: SetpointPhase
SETPOINT_PHASE_VERIFIED: SetpointPhase
SETPOINT_PHASE_WRITTEN: SetpointPhase

class BatteryControlState(_message.Message):
    __slots__ = ["active_instruction_id", "device_id", "epoch", "intended_source", "last_event", "last_telemetry_time", "manual_expire_time", "owner_replica", "reason", "reported_source", "site", "source_mismatch", "target_power_kw"]
    ACTIVE_INSTRUCTION_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    INTENDED_SOURCE_FIELD_NUMBER: _ClassVar[int]
    LAST_EVENT_FIELD_NUMBER: _ClassVar[int]
    LAST_TELEMETRY_TIME_FIELD_NUMBER: _ClassVar[int]
    MANUAL_EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    OWNER_REPLICA_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REPORTED_SOURCE_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_MISMATCH_FIELD_NUMBER: _ClassVar[int]
    TARGET_POWER_KW_FIELD_NUMBER: _ClassVar[int]
    active_instruction_id: str
    device_id: str
    epoch: int
    intended_source: _telemetry_pb2.CommandSource
    last_event: SetpointEvent
    last_telemetry_time: _timestamp_pb2.Timestamp
    manual_expire_time: _timestamp_pb2.Timestamp
    owner_replica: str
    reason: str
    reported_source: _telemetry_pb2.CommandSource
    site: str
    source_mismatch: bool
    target_power_kw: float
    def __init__(self, device_id: _Optional[str] = ..., site: _Optional[str] = ..., intended_source: _Optional[_Union[_telemetry_pb2.CommandSource, str]] = ..., reported_source: _Optional[_Union[_telemetry_pb2.CommandSource, str]] = ..., source_mismatch: bool = ..., target_power_kw: _Optional[float] = ..., active_instruction_id: _Optional[str] = ..., reason: _Optional[str] = ..., manual_expire_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., last_telemetry_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., last_event: _Optional[_Union[SetpointEvent, _Mapping]] = ..., owner_replica: _Optional[str] = ..., epoch: _Optional[int] = ...) -> None: ...

class CancelDispatchRequest(_message.Message):
    __slots__ = ["id", "reason"]
    ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    reason: str
    def __init__(self, id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class CancelDispatchResponse(_message.Message):
    __slots__ = ["instruction"]
    INSTRUCTION_FIELD_NUMBER: _ClassVar[int]
    instruction: DispatchInstruction
    def __init__(self, instruction: _Optional[_Union[DispatchInstruction, _Mapping]] = ...) -> None: ...

class DispatchInstruction(_message.Message):
    __slots__ = ["cancel_reason", "cancel_time", "create_time", "device_id", "id", "interval", "principal", "principal_name", "priority", "request_id", "site", "state"]
    CANCEL_REASON_FIELD_NUMBER: _ClassVar[int]
    CANCEL_TIME_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_NAME_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    cancel_reason: str
    cancel_time: _timestamp_pb2.Timestamp
    create_time: _timestamp_pb2.Timestamp
    device_id: str
    id: str
    interval: DispatchInterval
    principal: str
    principal_name: str
    priority: int
    request_id: str
    site: str
    state: DispatchState
    def __init__(self, id: _Optional[str] = ..., request_id: _Optional[str] = ..., site: _Optional[str] = ..., device_id: _Optional[str] = ..., interval: _Optional[_Union[DispatchInterval, _Mapping]] = ..., priority: _Optional[int] = ..., state: _Optional[_Union[DispatchState, str]] = ..., principal: _Optional[str] = ..., create_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., cancel_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., cancel_reason: _Optional[str] = ..., principal_name: _Optional[str] = ...) -> None: ...

class DispatchInterval(_message.Message):
    __slots__ = ["action", "end_time", "power_kw", "start_time"]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    POWER_KW_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    action: DispatchAction
    end_time: _timestamp_pb2.Timestamp
    power_kw: float
    start_time: _timestamp_pb2.Timestamp
    def __init__(self, start_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., power_kw: _Optional[float] = ..., action: _Optional[_Union[DispatchAction, str]] = ...) -> None: ...

class GetControlStateRequest(_message.Message):
    __slots__ = ["device_ids", "site"]
    DEVICE_IDS_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    device_ids: _containers.RepeatedScalarFieldContainer[str]
    site: str
    def __init__(self, site: _Optional[str] = ..., device_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class GetControlStateResponse(_message.Message):
    __slots__ = ["states"]
    STATES_FIELD_NUMBER: _ClassVar[int]
    states: _containers.RepeatedCompositeFieldContainer[BatteryControlState]
    def __init__(self, states: _Optional[_Iterable[_Union[BatteryControlState, _Mapping]]] = ...) -> None: ...

class GetDispatchRequest(_message.Message):
    __slots__ = ["id"]
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetDispatchResponse(_message.Message):
    __slots__ = ["instruction"]
    INSTRUCTION_FIELD_NUMBER: _ClassVar[int]
    instruction: DispatchInstruction
    def __init__(self, instruction: _Optional[_Union[DispatchInstruction, _Mapping]] = ...) -> None: ...

class GetSiteConfigRequest(_message.Message):
    __slots__ = ["site"]
    SITE_FIELD_NUMBER: _ClassVar[int]
    site: str
    def __init__(self, site: _Optional[str] = ...) -> None: ...

class GetSiteConfigResponse(_message.Message):
    __slots__ = ["config"]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    config: SiteConfig
    def __init__(self, config: _Optional[_Union[SiteConfig, _Mapping]] = ...) -> None: ...

class ListDispatchesRequest(_message.Message):
    __slots__ = ["device_id", "end_time", "page_size", "page_token", "site", "start_time", "state"]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    end_time: _timestamp_pb2.Timestamp
    page_size: int
    page_token: str
    site: str
    start_time: _timestamp_pb2.Timestamp
    state: DispatchState
    def __init__(self, site: _Optional[str] = ..., device_id: _Optional[str] = ..., state: _Optional[_Union[DispatchState, str]] = ..., start_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDispatchesResponse(_message.Message):
    __slots__ = ["instructions", "next_page_token"]
    INSTRUCTIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    instructions: _containers.RepeatedCompositeFieldContainer[DispatchInstruction]
    next_page_token: str
    def __init__(self, instructions: _Optional[_Iterable[_Union[DispatchInstruction, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListMarketDataRequest(_message.Message):
    __slots__ = ["end_time", "page_size", "page_token", "start_time", "types"]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    TYPES_FIELD_NUMBER: _ClassVar[int]
    end_time: _timestamp_pb2.Timestamp
    page_size: int
    page_token: str
    start_time: _timestamp_pb2.Timestamp
    types: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, types: _Optional[_Iterable[str]] = ..., start_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListMarketDataResponse(_message.Message):
    __slots__ = ["next_page_token", "points"]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    next_page_token: str
    points: _containers.RepeatedCompositeFieldContainer[MarketDataPoint]
    def __init__(self, points: _Optional[_Iterable[_Union[MarketDataPoint, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class MarketDataPoint(_message.Message):
    __slots__ = ["metadata", "time", "type", "value"]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    metadata: _struct_pb2.Struct
    time: _timestamp_pb2.Timestamp
    type: str
    value: float
    def __init__(self, time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., type: _Optional[str] = ..., value: _Optional[float] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class NivChaseConfig(_message.Message):
    __slots__ = ["enabled", "long_price_threshold", "long_target_soe_percent", "niv_threshold_mw", "short_price_threshold", "short_target_soe_percent"]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    LONG_PRICE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    LONG_TARGET_SOE_PERCENT_FIELD_NUMBER: _ClassVar[int]
    NIV_THRESHOLD_MW_FIELD_NUMBER: _ClassVar[int]
    SHORT_PRICE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    SHORT_TARGET_SOE_PERCENT_FIELD_NUMBER: _ClassVar[int]
    enabled: bool
    long_price_threshold: float
    long_target_soe_percent: float
    niv_threshold_mw: float
    short_price_threshold: float
    short_target_soe_percent: float
    def __init__(self, enabled: bool = ..., niv_threshold_mw: _Optional[float] = ..., short_price_threshold: _Optional[float] = ..., long_price_threshold: _Optional[float] = ..., short_target_soe_percent: _Optional[float] = ..., long_target_soe_percent: _Optional[float] = ...) -> None: ...

class PublishMarketDataRequest(_message.Message):
    __slots__ = ["points"]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    points: _containers.RepeatedCompositeFieldContainer[MarketDataPoint]
    def __init__(self, points: _Optional[_Iterable[_Union[MarketDataPoint, _Mapping]]] = ...) -> None: ...

class PublishMarketDataResponse(_message.Message):
    __slots__ = ["revised_count", "stored_count", "unchanged_count"]
    REVISED_COUNT_FIELD_NUMBER: _ClassVar[int]
    STORED_COUNT_FIELD_NUMBER: _ClassVar[int]
    UNCHANGED_COUNT_FIELD_NUMBER: _ClassVar[int]
    revised_count: int
    stored_count: int
    unchanged_count: int
    def __init__(self, stored_count: _Optional[int] = ..., unchanged_count: _Optional[int] = ..., revised_count: _Optional[int] = ...) -> None: ...

class SetControlModeRequest(_message.Message):
    __slots__ = ["device_id", "expire_time", "manual_power_kw", "mode", "reason"]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    MANUAL_POWER_KW_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    expire_time: _timestamp_pb2.Timestamp
    manual_power_kw: float
    mode: ControlMode
    reason: str
    def __init__(self, device_id: _Optional[str] = ..., mode: _Optional[_Union[ControlMode, str]] = ..., manual_power_kw: _Optional[float] = ..., expire_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class SetControlModeResponse(_message.Message):
    __slots__ = ["state"]
    STATE_FIELD_NUMBER: _ClassVar[int]
    state: BatteryControlState
    def __init__(self, state: _Optional[_Union[BatteryControlState, _Mapping]] = ...) -> None: ...

class SetSiteConfigRequest(_message.Message):
    __slots__ = ["config"]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    config: SiteConfig
    def __init__(self, config: _Optional[_Union[SiteConfig, _Mapping]] = ...) -> None: ...

class SetSiteConfigResponse(_message.Message):
    __slots__ = ["config"]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    config: SiteConfig
    def __init__(self, config: _Optional[_Union[SiteConfig, _Mapping]] = ...) -> None: ...

class SetpointEvent(_message.Message):
    __slots__ = ["command_source", "device_id", "elapsed", "instruction_id", "phase", "reason", "setpoint_id", "site", "target_power_kw", "time"]
    COMMAND_SOURCE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_FIELD_NUMBER: _ClassVar[int]
    INSTRUCTION_ID_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SETPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    TARGET_POWER_KW_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    command_source: _telemetry_pb2.CommandSource
    device_id: str
    elapsed: _duration_pb2.Duration
    instruction_id: str
    phase: SetpointPhase
    reason: str
    setpoint_id: str
    site: str
    target_power_kw: float
    time: _timestamp_pb2.Timestamp
    def __init__(self, setpoint_id: _Optional[str] = ..., device_id: _Optional[str] = ..., site: _Optional[str] = ..., phase: _Optional[_Union[SetpointPhase, str]] = ..., target_power_kw: _Optional[float] = ..., command_source: _Optional[_Union[_telemetry_pb2.CommandSource, str]] = ..., instruction_id: _Optional[str] = ..., time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., elapsed: _Optional[_Union[_duration_pb2.Duration, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class SiteConfig(_message.Message):
    __slots__ = ["avoid_export", "avoid_import", "export_limit_kw", "import_limit_kw", "niv_chase", "site", "soe_target"]
    AVOID_EXPORT_FIELD_NUMBER: _ClassVar[int]
    AVOID_IMPORT_FIELD_NUMBER: _ClassVar[int]
    EXPORT_LIMIT_KW_FIELD_NUMBER: _ClassVar[int]
    IMPORT_LIMIT_KW_FIELD_NUMBER: _ClassVar[int]
    NIV_CHASE_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    SOE_TARGET_FIELD_NUMBER: _ClassVar[int]
    avoid_export: bool
    avoid_import: bool
    export_limit_kw: float
    import_limit_kw: float
    niv_chase: NivChaseConfig
    site: str
    soe_target: SoeTargetConfig
    def __init__(self, site: _Optional[str] = ..., import_limit_kw: _Optional[float] = ..., export_limit_kw: _Optional[float] = ..., niv_chase: _Optional[_Union[NivChaseConfig, _Mapping]] = ..., soe_target: _Optional[_Union[SoeTargetConfig, _Mapping]] = ..., avoid_import: bool = ..., avoid_export: bool = ...) -> None: ...

class SoeTargetConfig(_message.Message):
    __slots__ = ["enabled", "max_power_kw", "soe_percent"]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    MAX_POWER_KW_FIELD_NUMBER: _ClassVar[int]
    SOE_PERCENT_FIELD_NUMBER: _ClassVar[int]
    enabled: bool
    max_power_kw: float
    soe_percent: float
    def __init__(self, enabled: bool = ..., soe_percent: _Optional[float] = ..., max_power_kw: _Optional[float] = ...) -> None: ...

class SubmitDispatchRequest(_message.Message):
    __slots__ = ["device_id", "intervals", "priority", "request_id", "site"]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    INTERVALS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    intervals: _containers.RepeatedCompositeFieldContainer[DispatchInterval]
    priority: int
    request_id: str
    site: str
    def __init__(self, request_id: _Optional[str] = ..., site: _Optional[str] = ..., device_id: _Optional[str] = ..., intervals: _Optional[_Iterable[_Union[DispatchInterval, _Mapping]]] = ..., priority: _Optional[int] = ...) -> None: ...

class SubmitDispatchResponse(_message.Message):
    __slots__ = ["instructions"]
    INSTRUCTIONS_FIELD_NUMBER: _ClassVar[int]
    instructions: _containers.RepeatedCompositeFieldContainer[DispatchInstruction]
    def __init__(self, instructions: _Optional[_Iterable[_Union[DispatchInstruction, _Mapping]]] = ...) -> None: ...

class WatchSetpointsRequest(_message.Message):
    __slots__ = ["device_id", "phases", "site"]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    PHASES_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    phases: _containers.RepeatedScalarFieldContainer[SetpointPhase]
    site: str
    def __init__(self, site: _Optional[str] = ..., device_id: _Optional[str] = ..., phases: _Optional[_Iterable[_Union[SetpointPhase, str]]] = ...) -> None: ...

class WatchSetpointsResponse(_message.Message):
    __slots__ = ["events"]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[SetpointEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[SetpointEvent, _Mapping]]] = ...) -> None: ...

class DispatchAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class DispatchState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class ControlMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class SetpointPhase(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
