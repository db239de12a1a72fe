from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

COMMAND_SOURCE_DISPATCH: CommandSource
COMMAND_SOURCE_FAILSAFE: CommandSource
COMMAND_SOURCE_LOCAL: CommandSource
COMMAND_SOURCE_MANUAL: CommandSource
COMMAND_SOURCE_UNSPECIFIED: CommandSource
DESCRIPTOR: _descriptor.FileDescriptor
READING_KIND_BESS: ReadingKind
READING_KIND_DATUM: ReadingKind
READING_KIND_METER: ReadingKind
READING_KIND_UNSPECIFIED: ReadingKind

class AgentHello(_message.Message):
    __slots__ = ["site"]
    SITE_FIELD_NUMBER: _ClassVar[int]
    site: str
    def __init__(self, site: _Optional[str] = ...) -> None: ...

class BessReading(_message.Message):
    __slots__ = ["available_inverter_blocks", "command_source", "device_id", "soe_percent", "target_power_kw", "time"]
    AVAILABLE_INVERTER_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    COMMAND_SOURCE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    SOE_PERCENT_FIELD_NUMBER: _ClassVar[int]
    TARGET_POWER_KW_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    available_inverter_blocks: int
    command_source: CommandSource
    device_id: str
    soe_percent: float
    target_power_kw: float
    time: _timestamp_pb2.Timestamp
    def __init__(self, device_id: _Optional[str] = ..., time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., soe_percent: _Optional[float] = ..., target_power_kw: _Optional[float] = ..., available_inverter_blocks: _Optional[int] = ..., command_source: _Optional[_Union[CommandSource, str]] = ...) -> None: ...

class DatumReading(_message.Message):
    __slots__ = ["accumulating", "device_id", "instantaneous", "source_id", "status", "time"]
    class AccumulatingEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class InstantaneousEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class StatusEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ACCUMULATING_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    INSTANTANEOUS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    accumulating: _containers.ScalarMap[str, float]
    device_id: str
    instantaneous: _containers.ScalarMap[str, float]
    source_id: str
    status: _containers.ScalarMap[str, str]
    time: _timestamp_pb2.Timestamp
    def __init__(self, device_id: _Optional[str] = ..., source_id: _Optional[str] = ..., time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., instantaneous: _Optional[_Mapping[str, float]] = ..., accumulating: _Optional[_Mapping[str, float]] = ..., status: _Optional[_Mapping[str, str]] = ...) -> None: ...

class MeterReading(_message.Message):
    __slots__ = ["current_phase_a_a", "current_phase_average_a", "current_phase_b_a", "current_phase_c_a", "device_id", "energy_exported_active_kwh", "energy_exported_apparent_kvah", "energy_exported_phase_a_active_kwh", "energy_exported_phase_b_active_kwh", "energy_exported_phase_c_active_kwh", "energy_exported_reactive_kvarh", "energy_imported_active_kwh", "energy_imported_apparent_kvah", "energy_imported_phase_a_active_kwh", "energy_imported_phase_b_active_kwh", "energy_imported_phase_c_active_kwh", "energy_imported_reactive_kvarh", "frequency_hz", "power_factor_total", "power_phase_a_active_kw", "power_phase_b_active_kw", "power_phase_c_active_kw", "power_total_active_kw", "power_total_apparent_kva", "power_total_reactive_kvar", "time", "voltage_line_average_v"]
    CURRENT_PHASE_AVERAGE_A_FIELD_NUMBER: _ClassVar[int]
    CURRENT_PHASE_A_A_FIELD_NUMBER: _ClassVar[int]
    CURRENT_PHASE_B_A_FIELD_NUMBER: _ClassVar[int]
    CURRENT_PHASE_C_A_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    ENERGY_EXPORTED_ACTIVE_KWH_FIELD_NUMBER: _ClassVar[int]
    ENERGY_EXPORTED_APPARENT_KVAH_FIELD_NUMBER: _ClassVar[int]
    ENERGY_EXPORTED_PHASE_A_ACTIVE_KWH_FIELD_NUMBER: _ClassVar[int]
    ENERGY_EXPORTED_PHASE_B_ACTIVE_KWH_FIELD_NUMBER: _ClassVar[int]
    ENERGY_EXPORTED_PHASE_C_ACTIVE_KWH_FIELD_NUMBER: _ClassVar[int]
    ENERGY_EXPORTED_REACTIVE_KVARH_FIELD_NUMBER: _ClassVar[int]
    ENERGY_IMPORTED_ACTIVE_KWH_FIELD_NUMBER: _ClassVar[int]
    ENERGY_IMPORTED_APPARENT_KVAH_FIELD_NUMBER: _ClassVar[int]
    ENERGY_IMPORTED_PHASE_A_ACTIVE_KWH_FIELD_NUMBER: _ClassVar[int]
    ENERGY_IMPORTED_PHASE_B_ACTIVE_KWH_FIELD_NUMBER: _ClassVar[int]
    ENERGY_IMPORTED_PHASE_C_ACTIVE_KWH_FIELD_NUMBER: _ClassVar[int]
    ENERGY_IMPORTED_REACTIVE_KVARH_FIELD_NUMBER: _ClassVar[int]
    FREQUENCY_HZ_FIELD_NUMBER: _ClassVar[int]
    POWER_FACTOR_TOTAL_FIELD_NUMBER: _ClassVar[int]
    POWER_PHASE_A_ACTIVE_KW_FIELD_NUMBER: _ClassVar[int]
    POWER_PHASE_B_ACTIVE_KW_FIELD_NUMBER: _ClassVar[int]
    POWER_PHASE_C_ACTIVE_KW_FIELD_NUMBER: _ClassVar[int]
    POWER_TOTAL_ACTIVE_KW_FIELD_NUMBER: _ClassVar[int]
    POWER_TOTAL_APPARENT_KVA_FIELD_NUMBER: _ClassVar[int]
    POWER_TOTAL_REACTIVE_KVAR_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    VOLTAGE_LINE_AVERAGE_V_FIELD_NUMBER: _ClassVar[int]
    current_phase_a_a: float
    current_phase_average_a: float
    current_phase_b_a: float
    current_phase_c_a: float
    device_id: str
    energy_exported_active_kwh: float
    energy_exported_apparent_kvah: float
    energy_exported_phase_a_active_kwh: float
    energy_exported_phase_b_active_kwh: float
    energy_exported_phase_c_active_kwh: float
    energy_exported_reactive_kvarh: float
    energy_imported_active_kwh: float
    energy_imported_apparent_kvah: float
    energy_imported_phase_a_active_kwh: float
    energy_imported_phase_b_active_kwh: float
    energy_imported_phase_c_active_kwh: float
    energy_imported_reactive_kvarh: float
    frequency_hz: float
    power_factor_total: float
    power_phase_a_active_kw: float
    power_phase_b_active_kw: float
    power_phase_c_active_kw: float
    power_total_active_kw: float
    power_total_apparent_kva: float
    power_total_reactive_kvar: float
    time: _timestamp_pb2.Timestamp
    voltage_line_average_v: float
    def __init__(self, device_id: _Optional[str] = ..., time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., frequency_hz: _Optional[float] = ..., voltage_line_average_v: _Optional[float] = ..., current_phase_a_a: _Optional[float] = ..., current_phase_b_a: _Optional[float] = ..., current_phase_c_a: _Optional[float] = ..., current_phase_average_a: _Optional[float] = ..., power_phase_a_active_kw: _Optional[float] = ..., power_phase_b_active_kw: _Optional[float] = ..., power_phase_c_active_kw: _Optional[float] = ..., power_total_active_kw: _Optional[float] = ..., power_total_reactive_kvar: _Optional[float] = ..., power_total_apparent_kva: _Optional[float] = ..., power_factor_total: _Optional[float] = ..., energy_imported_active_kwh: _Optional[float] = ..., energy_exported_active_kwh: _Optional[float] = ..., energy_imported_phase_a_active_kwh: _Optional[float] = ..., energy_exported_phase_a_active_kwh: _Optional[float] = ..., energy_imported_phase_b_active_kwh: _Optional[float] = ..., energy_exported_phase_b_active_kwh: _Optional[float] = ..., energy_imported_phase_c_active_kwh: _Optional[float] = ..., energy_exported_phase_c_active_kwh: _Optional[float] = ..., energy_imported_reactive_kvarh: _Optional[float] = ..., energy_exported_reactive_kvarh: _Optional[float] = ..., energy_imported_apparent_kvah: _Optional[float] = ..., energy_exported_apparent_kvah: _Optional[float] = ...) -> None: ...

class ReadingBatch(_message.Message):
    __slots__ = ["bess_readings", "datum_readings", "meter_readings", "sequence"]
    BESS_READINGS_FIELD_NUMBER: _ClassVar[int]
    DATUM_READINGS_FIELD_NUMBER: _ClassVar[int]
    METER_READINGS_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    bess_readings: _containers.RepeatedCompositeFieldContainer[BessReading]
    datum_readings: _containers.RepeatedCompositeFieldContainer[DatumReading]
    meter_readings: _containers.RepeatedCompositeFieldContainer[MeterReading]
    sequence: int
    def __init__(self, sequence: _Optional[int] = ..., meter_readings: _Optional[_Iterable[_Union[MeterReading, _Mapping]]] = ..., bess_readings: _Optional[_Iterable[_Union[BessReading, _Mapping]]] = ..., datum_readings: _Optional[_Iterable[_Union[DatumReading, _Mapping]]] = ...) -> None: ...

class ReadingsAck(_message.Message):
    __slots__ = ["conflict_count", "duplicate_count", "rejected_count", "rejections", "sequence", "stored_count"]
    CONFLICT_COUNT_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_COUNT_FIELD_NUMBER: _ClassVar[int]
    REJECTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    REJECTIONS_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    STORED_COUNT_FIELD_NUMBER: _ClassVar[int]
    conflict_count: int
    duplicate_count: int
    rejected_count: int
    rejections: _containers.RepeatedCompositeFieldContainer[RejectedReading]
    sequence: int
    stored_count: int
    def __init__(self, sequence: _Optional[int] = ..., stored_count: _Optional[int] = ..., duplicate_count: _Optional[int] = ..., conflict_count: _Optional[int] = ..., rejected_count: _Optional[int] = ..., rejections: _Optional[_Iterable[_Union[RejectedReading, _Mapping]]] = ...) -> None: ...

class RejectedReading(_message.Message):
    __slots__ = ["device_id", "field", "index", "kind", "reason", "value"]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    field: str
    index: int
    kind: ReadingKind
    reason: str
    value: str
    def __init__(self, kind: _Optional[_Union[ReadingKind, str]] = ..., index: _Optional[int] = ..., device_id: _Optional[str] = ..., field: _Optional[str] = ..., value: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RelaySetpoint(_message.Message):
    __slots__ = ["device_id", "epoch", "expire_time", "release", "setpoint_id", "target_power_kw"]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    SETPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_POWER_KW_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    epoch: int
    expire_time: _timestamp_pb2.Timestamp
    release: bool
    setpoint_id: str
    target_power_kw: float
    def __init__(self, setpoint_id: _Optional[str] = ..., device_id: _Optional[str] = ..., target_power_kw: _Optional[float] = ..., expire_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., release: bool = ..., epoch: _Optional[int] = ...) -> None: ...

class SetpointOutcome(_message.Message):
    __slots__ = ["reason", "setpoint_id", "time", "verified"]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SETPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_FIELD_NUMBER: _ClassVar[int]
    reason: str
    setpoint_id: str
    time: _timestamp_pb2.Timestamp
    verified: bool
    def __init__(self, setpoint_id: _Optional[str] = ..., verified: bool = ..., reason: _Optional[str] = ..., time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class StreamReadingsRequest(_message.Message):
    __slots__ = ["batch", "hello", "setpoint_outcome"]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    HELLO_FIELD_NUMBER: _ClassVar[int]
    SETPOINT_OUTCOME_FIELD_NUMBER: _ClassVar[int]
    batch: ReadingBatch
    hello: AgentHello
    setpoint_outcome: SetpointOutcome
    def __init__(self, batch: _Optional[_Union[ReadingBatch, _Mapping]] = ..., setpoint_outcome: _Optional[_Union[SetpointOutcome, _Mapping]] = ..., hello: _Optional[_Union[AgentHello, _Mapping]] = ...) -> None: ...

class StreamReadingsResponse(_message.Message):
    __slots__ = ["ack", "relay_setpoint"]
    ACK_FIELD_NUMBER: _ClassVar[int]
    RELAY_SETPOINT_FIELD_NUMBER: _ClassVar[int]
    ack: ReadingsAck
    relay_setpoint: RelaySetpoint
    def __init__(self, ack: _Optional[_Union[ReadingsAck, _Mapping]] = ..., relay_setpoint: _Optional[_Union[RelaySetpoint, _Mapping]] = ...) -> None: ...

class WriteReadingsRequest(_message.Message):
    __slots__ = ["batch"]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    batch: ReadingBatch
    def __init__(self, batch: _Optional[_Union[ReadingBatch, _Mapping]] = ...) -> None: ...

class WriteReadingsResponse(_message.Message):
    __slots__ = ["ack"]
    ACK_FIELD_NUMBER: _ClassVar[int]
    ack: ReadingsAck
    def __init__(self, ack: _Optional[_Union[ReadingsAck, _Mapping]] = ...) -> None: ...

class CommandSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class ReadingKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
