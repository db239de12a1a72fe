from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor
DEVICE_TYPE_BESS: DeviceType
DEVICE_TYPE_METER: DeviceType
DEVICE_TYPE_UNSPECIFIED: DeviceType
REGISTER_PROFILE_CUSTOM: RegisterProfile
REGISTER_PROFILE_SUNSPEC: RegisterProfile
REGISTER_PROFILE_TESLA_POWERPACK: RegisterProfile
REGISTER_PROFILE_UNSPECIFIED: RegisterProfile
UPSERT_OUTCOME_CREATED: UpsertOutcome
UPSERT_OUTCOME_UNCHANGED: UpsertOutcome
UPSERT_OUTCOME_UNSPECIFIED: UpsertOutcome
UPSERT_OUTCOME_UPDATED: UpsertOutcome

class BatchUpsertDevicesRequest(_message.Message):
    __slots__ = ["devices", "request_id", "validate_only"]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    devices: _containers.RepeatedCompositeFieldContainer[Device]
    request_id: str
    validate_only: bool
    def __init__(self, devices: _Optional[_Iterable[_Union[Device, _Mapping]]] = ..., request_id: _Optional[str] = ..., validate_only: bool = ...) -> None: ...

class BatchUpsertDevicesResponse(_message.Message):
    __slots__ = ["created_count", "results", "unchanged_count", "updated_count", "validate_only"]
    CREATED_COUNT_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    UNCHANGED_COUNT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_COUNT_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    created_count: int
    results: _containers.RepeatedCompositeFieldContainer[DeviceUpsertResult]
    unchanged_count: int
    updated_count: int
    validate_only: bool
    def __init__(self, results: _Optional[_Iterable[_Union[DeviceUpsertResult, _Mapping]]] = ..., created_count: _Optional[int] = ..., updated_count: _Optional[int] = ..., unchanged_count: _Optional[int] = ..., validate_only: bool = ...) -> None: ...

class BessSpec(_message.Message):
    __slots__ = ["capacity_kwh", "inverter_block_count", "max_soe_percent", "min_soe_percent", "modbus", "ramp_rate_kw_per_s", "rated_charge_power_kw", "rated_discharge_power_kw", "reversion_timeout_s"]
    CAPACITY_KWH_FIELD_NUMBER: _ClassVar[int]
    INVERTER_BLOCK_COUNT_FIELD_NUMBER: _ClassVar[int]
    MAX_SOE_PERCENT_FIELD_NUMBER: _ClassVar[int]
    MIN_SOE_PERCENT_FIELD_NUMBER: _ClassVar[int]
    MODBUS_FIELD_NUMBER: _ClassVar[int]
    RAMP_RATE_KW_PER_S_FIELD_NUMBER: _ClassVar[int]
    RATED_CHARGE_POWER_KW_FIELD_NUMBER: _ClassVar[int]
    RATED_DISCHARGE_POWER_KW_FIELD_NUMBER: _ClassVar[int]
    REVERSION_TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    capacity_kwh: float
    inverter_block_count: int
    max_soe_percent: float
    min_soe_percent: float
    modbus: ModbusAccess
    ramp_rate_kw_per_s: float
    rated_charge_power_kw: float
    rated_discharge_power_kw: float
    reversion_timeout_s: int
    def __init__(self, rated_charge_power_kw: _Optional[float] = ..., rated_discharge_power_kw: _Optional[float] = ..., capacity_kwh: _Optional[float] = ..., min_soe_percent: _Optional[float] = ..., max_soe_percent: _Optional[float] = ..., inverter_block_count: _Optional[int] = ..., ramp_rate_kw_per_s: _Optional[float] = ..., modbus: _Optional[_Union[ModbusAccess, _Mapping]] = ..., reversion_timeout_s: _Optional[int] = ...) -> None: ...

class CreateDeviceRequest(_message.Message):
    __slots__ = ["device", "request_id"]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    device: Device
    request_id: str
    def __init__(self, device: _Optional[_Union[Device, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class CreateDeviceResponse(_message.Message):
    __slots__ = ["device"]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    device: Device
    def __init__(self, device: _Optional[_Union[Device, _Mapping]] = ...) -> None: ...

class DeactivateDeviceRequest(_message.Message):
    __slots__ = ["id", "reason"]
    ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    reason: str
    def __init__(self, id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class DeactivateDeviceResponse(_message.Message):
    __slots__ = ["device"]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    device: Device
    def __init__(self, device: _Optional[_Union[Device, _Mapping]] = ...) -> None: ...

class Device(_message.Message):
    __slots__ = ["active", "bess", "create_time", "id", "metadata", "meter", "name", "site", "type"]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    BESS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    METER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    active: bool
    bess: BessSpec
    create_time: _timestamp_pb2.Timestamp
    id: str
    metadata: _struct_pb2.Struct
    meter: MeterSpec
    name: str
    site: str
    type: DeviceType
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., type: _Optional[_Union[DeviceType, str]] = ..., site: _Optional[str] = ..., active: bool = ..., create_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., bess: _Optional[_Union[BessSpec, _Mapping]] = ..., meter: _Optional[_Union[MeterSpec, _Mapping]] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class DeviceUpsertResult(_message.Message):
    __slots__ = ["device", "outcome"]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    device: Device
    outcome: UpsertOutcome
    def __init__(self, device: _Optional[_Union[Device, _Mapping]] = ..., outcome: _Optional[_Union[UpsertOutcome, str]] = ...) -> None: ...

class GetDeviceRequest(_message.Message):
    __slots__ = ["id"]
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetDeviceResponse(_message.Message):
    __slots__ = ["device"]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    device: Device
    def __init__(self, device: _Optional[_Union[Device, _Mapping]] = ...) -> None: ...

class ListDevicesRequest(_message.Message):
    __slots__ = ["active", "page_size", "page_token", "site", "type"]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    active: bool
    page_size: int
    page_token: str
    site: str
    type: DeviceType
    def __init__(self, site: _Optional[str] = ..., type: _Optional[_Union[DeviceType, str]] = ..., active: bool = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDevicesResponse(_message.Message):
    __slots__ = ["devices", "next_page_token"]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    devices: _containers.RepeatedCompositeFieldContainer[Device]
    next_page_token: str
    def __init__(self, devices: _Optional[_Iterable[_Union[Device, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class MeterSpec(_message.Message):
    __slots__ = ["modbus"]
    MODBUS_FIELD_NUMBER: _ClassVar[int]
    modbus: ModbusAccess
    def __init__(self, modbus: _Optional[_Union[ModbusAccess, _Mapping]] = ...) -> None: ...

class ModbusAccess(_message.Message):
    __slots__ = ["endpoint", "polling_interval_ms", "register_map", "register_profile", "relay"]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    POLLING_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    REGISTER_MAP_FIELD_NUMBER: _ClassVar[int]
    REGISTER_PROFILE_FIELD_NUMBER: _ClassVar[int]
    RELAY_FIELD_NUMBER: _ClassVar[int]
    endpoint: ModbusEndpoint
    polling_interval_ms: int
    register_map: _struct_pb2.Struct
    register_profile: RegisterProfile
    relay: bool
    def __init__(self, endpoint: _Optional[_Union[ModbusEndpoint, _Mapping]] = ..., register_profile: _Optional[_Union[RegisterProfile, str]] = ..., register_map: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., polling_interval_ms: _Optional[int] = ..., relay: bool = ...) -> None: ...

class ModbusEndpoint(_message.Message):
    __slots__ = ["host", "port", "unit_id"]
    HOST_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    host: str
    port: int
    unit_id: int
    def __init__(self, host: _Optional[str] = ..., port: _Optional[int] = ..., unit_id: _Optional[int] = ...) -> None: ...

class UpdateDeviceRequest(_message.Message):
    __slots__ = ["device", "update_mask"]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    device: Device
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, device: _Optional[_Union[Device, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateDeviceResponse(_message.Message):
    __slots__ = ["device"]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    device: Device
    def __init__(self, device: _Optional[_Union[Device, _Mapping]] = ...) -> None: ...

class DeviceType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class RegisterProfile(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class UpsertOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
