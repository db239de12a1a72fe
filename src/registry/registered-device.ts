import { InvalidArgumentError } from '../errors.ts';
import { checkJsonBounds, METADATA_BOUNDS, REGISTER_MAP_BOUNDS } from '../json-bounds.ts';
import { RegisterMapError } from '../modbus/errors.ts';
import { parseRegisterMap } from '../modbus/register-map.ts';
import { REGISTER_PROFILE_NAMES, type RegisterProfileName } from '../modbus/register-profile.ts';

/** The kinds of device Powerplane knows, as stored in `mg_device_registry.type`. */
export const DEVICE_TYPES = ['bess', 'meter'] as const;
export type DeviceType = (typeof DEVICE_TYPES)[number];

/** How a device's registers are laid out (the names `modbus/register-profile.ts` turns into a profile). */
export const REGISTER_PROFILES = REGISTER_PROFILE_NAMES;
export type { RegisterProfileName };

/** JSON as stored in `metadata`. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

/** Where and how a device is reached over Modbus TCP. */
export interface ModbusAccess {
  readonly host: string;
  /** TCP port, 1–65535. */
  readonly port: number;
  /** Modbus unit id, 1–247. */
  readonly unitId: number;
  readonly registerProfile: RegisterProfileName;
  /** The flat register map of a `custom` device; absent otherwise. */
  readonly registerMap?: JsonObject;
  /** Telemetry polling interval, ms. */
  readonly pollingIntervalMs: number;
  /**
   * Relay mode (batteries only): the control plane cannot reach this controller, so its
   * setpoints go down the site agent's telemetry stream and the agent writes them to the
   * endpoint as it reaches it. Absent means false.
   */
  readonly relay?: boolean;
}

/** Ratings and limits of a battery; powers are non-negative magnitudes. */
export interface BessSpec {
  readonly ratedChargePowerKw: number;
  readonly ratedDischargePowerKw: number;
  readonly capacityKwh: number;
  readonly minSoePercent: number;
  readonly maxSoePercent: number;
  readonly inverterBlockCount: number;
  /** kW per second; 0 = no ramp limit. */
  readonly rampRateKwPerS: number;
  readonly reversionTimeoutS: number;
  readonly modbus: ModbusAccess;
}

/** How a meter is reached. */
export interface MeterSpec {
  readonly modbus: ModbusAccess;
}

/** A registered device. */
export interface Device {
  readonly id: string;
  readonly name: string;
  readonly type: DeviceType;
  readonly site: string;
  readonly active: boolean;
  readonly createdAt: Date;
  readonly bess?: BessSpec;
  readonly meter?: MeterSpec;
  /** Free-form metadata; never holds the reserved keys `bess` and `meter`. */
  readonly metadata: JsonObject;
}

/** The fields a caller supplies to create or change a device. */
export type DeviceInput = Pick<Device, 'name' | 'type' | 'site' | 'bess' | 'meter' | 'metadata'>;

/** Defaults applied where the API's zero value means "not given". */
export const DEVICE_DEFAULTS = Object.freeze({
  modbusPort: 502,
  unitId: 1,
  pollingIntervalMs: 1_000,
  inverterBlockCount: 1,
  reversionTimeoutS: 30,
  maxSoePercent: 100,
});

/**
 * Which free-form JSON of a device a call supplies, so is checked against its bounds
 * (`METADATA_BOUNDS`, `REGISTER_MAP_BOUNDS`): everything on create, the fields named in
 * the mask on update. JSON stored before the bounds existed is not refused when a call
 * leaves it as it is, so such a device can still be renamed or moved.
 */
export interface SuppliedJson {
  /** `metadata` is supplied. */
  readonly metadata: boolean;
  /** The typed specification (`bess` or `meter`, with its register map) is supplied. */
  readonly spec: boolean;
}

/**
 * Checks a device as a whole and throws an {@link InvalidArgumentError} naming the first
 * bad field (with the API's field path, e.g. `device.bess.min_soe_percent`). The JSON the
 * call supplies (all of it by default) must be within its bounds. Pure.
 */
export function validateDevice(
  input: DeviceInput,
  prefix = 'device',
  supplied: SuppliedJson = { metadata: true, spec: true },
): DeviceInput {
  requireText(`${prefix}.name`, input.name);
  requireText(`${prefix}.site`, input.site);
  if (!DEVICE_TYPES.includes(input.type)) {
    throw new InvalidArgumentError(`${prefix}.type`, input.type, `must be one of ${DEVICE_TYPES.join(' | ')}`);
  }
  if (supplied.metadata) checkJsonBounds(`${prefix}.metadata`, input.metadata, METADATA_BOUNDS);
  if (supplied.spec) {
    const modbus = input.bess?.modbus ?? input.meter?.modbus;
    const field = input.bess ? `${prefix}.bess.modbus.register_map` : `${prefix}.meter.modbus.register_map`;
    if (modbus?.registerMap) checkJsonBounds(field, modbus.registerMap, REGISTER_MAP_BOUNDS);
  }
  for (const key of ['bess', 'meter']) {
    if (key in input.metadata)
      throw new InvalidArgumentError(`${prefix}.metadata.${key}`, input.metadata[key], 'is reserved for the typed specification');
  }
  if (input.type === 'bess') {
    if (!input.bess) throw new InvalidArgumentError(`${prefix}.bess`, undefined, 'is required for a bess device');
    if (input.meter) throw new InvalidArgumentError(`${prefix}.meter`, 'set', 'must be empty for a bess device');
    validateBess(input.bess, `${prefix}.bess`);
  } else {
    if (!input.meter) throw new InvalidArgumentError(`${prefix}.meter`, undefined, 'is required for a meter device');
    if (input.bess) throw new InvalidArgumentError(`${prefix}.bess`, 'set', 'must be empty for a meter device');
    validateModbus(input.meter.modbus, `${prefix}.meter.modbus`);
    // Only setpoints are relayed; a meter is polled by the agent whatever this says.
    if (input.meter.modbus.relay)
      throw new InvalidArgumentError(`${prefix}.meter.modbus.relay`, true, 'must be false for a meter (only batteries take setpoints)');
  }
  return input;
}

function validateBess(bess: BessSpec, prefix: string): void {
  positive(`${prefix}.rated_charge_power_kw`, bess.ratedChargePowerKw);
  positive(`${prefix}.rated_discharge_power_kw`, bess.ratedDischargePowerKw);
  positive(`${prefix}.capacity_kwh`, bess.capacityKwh);
  percent(`${prefix}.min_soe_percent`, bess.minSoePercent);
  percent(`${prefix}.max_soe_percent`, bess.maxSoePercent);
  if (bess.minSoePercent > bess.maxSoePercent) {
    throw new InvalidArgumentError(
      `${prefix}.min_soe_percent`,
      bess.minSoePercent,
      `must not be above max_soe_percent (${bess.maxSoePercent})`,
    );
  }
  integer(`${prefix}.inverter_block_count`, bess.inverterBlockCount, 1, 1_000);
  if (!Number.isFinite(bess.rampRateKwPerS) || bess.rampRateKwPerS < 0) {
    throw new InvalidArgumentError(`${prefix}.ramp_rate_kw_per_s`, bess.rampRateKwPerS, 'must be a finite number not below 0');
  }
  integer(`${prefix}.reversion_timeout_s`, bess.reversionTimeoutS, 1, 3_600);
  validateModbus(bess.modbus, `${prefix}.modbus`);
}

function validateModbus(modbus: ModbusAccess | undefined, prefix: string): void {
  if (!modbus) throw new InvalidArgumentError(prefix, undefined, 'is required');
  requireText(`${prefix}.endpoint.host`, modbus.host, 253);
  if (/\s/.test(modbus.host)) throw new InvalidArgumentError(`${prefix}.endpoint.host`, modbus.host, 'must not contain spaces');
  integer(`${prefix}.endpoint.port`, modbus.port, 1, 65_535);
  integer(`${prefix}.endpoint.unit_id`, modbus.unitId, 1, 247);
  if (!REGISTER_PROFILES.includes(modbus.registerProfile)) {
    throw new InvalidArgumentError(`${prefix}.register_profile`, modbus.registerProfile, `must be one of ${REGISTER_PROFILES.join(' | ')}`);
  }
  if (modbus.registerProfile === 'custom' && !modbus.registerMap) {
    throw new InvalidArgumentError(`${prefix}.register_map`, undefined, 'is required for the custom register profile');
  }
  if (modbus.registerMap && modbus.registerProfile === 'custom') {
    try {
      parseRegisterMap(modbus.registerMap);
    } catch (err) {
      if (!(err instanceof RegisterMapError)) throw err;
      throw new InvalidArgumentError(`${prefix}.register_map.${err.path}`, err.value, err.problem);
    }
  }
  if (modbus.registerProfile !== 'custom' && modbus.registerMap) {
    throw new InvalidArgumentError(`${prefix}.register_map`, modbus.registerMap, `must be empty for the ${modbus.registerProfile} profile`);
  }
  integer(`${prefix}.polling_interval_ms`, modbus.pollingIntervalMs, 100, 3_600_000);
}

function requireText(field: string, value: string, max = 200): void {
  if (typeof value !== 'string' || value.trim() === '') throw new InvalidArgumentError(field, value, 'is required');
  if (value.length > max) throw new InvalidArgumentError(field, value, `must be at most ${max} characters`);
}

function positive(field: string, value: number): void {
  if (!Number.isFinite(value) || value <= 0) throw new InvalidArgumentError(field, value, 'must be a finite number > 0');
}

function percent(field: string, value: number): void {
  if (!Number.isFinite(value) || value < 0 || value > 100) throw new InvalidArgumentError(field, value, 'must be between 0 and 100');
}

function integer(field: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new InvalidArgumentError(field, value, `must be a whole number from ${min} to ${max}`);
  }
}
