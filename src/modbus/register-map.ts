/**
 * Flat register maps: how a device that does not speak SunSpec lays out its points. A map is
 * data (stored in a device's metadata), checked once by {@link parseRegisterMap} and then
 * decoded by the one codec. Point names double as roles: the poller and the setpoint writer
 * find telemetry and control points by the names listed in {@link BESS_POINT_NAMES},
 * {@link METER_POINT_NAMES} and {@link RegisterMapControl}.
 */
import { RegisterMapError } from './errors.ts';
import type { CodecPoint } from './map-codec.ts';
import { type WordOrder, isPointType, isScalable, registerCount } from './point-types.ts';

/** Who may access a point: read only, read and write, or write only. */
export type PointAccess = 'R' | 'RW' | 'W';

/** One point of a flat register map: what the codec needs, plus its unit and access. */
export interface RegisterPoint extends CodecPoint {
  /** Engineering unit after scaling: `W`, `kW`, `Wh`, `kWh`, `var`, `VA`, `V`, `A`, `Hz`, `%`, `s`, ... */
  unit?: string;
  /** Access; default `R`. */
  access: PointAccess;
}

/**
 * How the setpoint writer commands a register-map device. Values are point names.
 */
export interface RegisterMapControl {
  /** Point receiving the power setpoint (unit `W` or `kW`; positive = discharge). */
  powerPoint: string;
  /** Point read back to verify the setpoint took; default `powerPoint`. */
  readbackPoint?: string;
  /** Point selecting the control mode, written before every setpoint. */
  modePoint?: string;
  /** Value of `modePoint` that puts the device under direct power control; default 1. */
  modeEnableValue?: number;
  /** Value of `modePoint` written on release; default 0. */
  modeDisableValue?: number;
  /** Point written with the heartbeat on every command and at the heartbeat interval. */
  heartbeatPoint?: string;
  /** `toggle` alternates `heartbeatValues` (default 0xAA55 / 0x55AA); `increment` counts up. Default `toggle`. */
  heartbeat?: 'toggle' | 'increment';
  /** The two values a toggling heartbeat alternates between; default [0xAA55, 0x55AA]. */
  heartbeatValues?: [number, number];
  /** Point receiving the communication timeout in seconds (the device's fallback). */
  timeoutPoint?: string;
}

/** A validated flat register map. */
export interface RegisterMap {
  /** Human name of the map, e.g. the controller model. */
  name?: string;
  /** Default word order of multi-register points; default `big`. */
  wordOrder: WordOrder;
  /** Whether SunSpec not-implemented raw values decode as unknown; default false for flat maps. */
  notImplemented: boolean;
  /** The points. */
  points: RegisterPoint[];
  /** How to command the device; absent for read-only devices such as meters. */
  control?: RegisterMapControl;
}

/** Point names read into {@link BessTelemetry} (powers in `W` or `kW`, energies in `Wh` or `kWh`). */
export const BESS_POINT_NAMES = [
  'soePercent',
  'targetPower',
  'activePower',
  'availableInverterBlocks',
  'commandSource',
  'nominalEnergy',
] as const;

/** Point names read into {@link MeterTelemetry}: the 25 quantities of `flux.mg_meter_readings`. */
export const METER_POINT_NAMES = [
  'frequency',
  'voltageLineAverage',
  'currentPhaseA',
  'currentPhaseB',
  'currentPhaseC',
  'currentPhaseAverage',
  'powerPhaseAActive',
  'powerPhaseBActive',
  'powerPhaseCActive',
  'powerTotalActive',
  'powerTotalReactive',
  'powerTotalApparent',
  'powerFactorTotal',
  'energyImportedActive',
  'energyExportedActive',
  'energyImportedPhaseAActive',
  'energyExportedPhaseAActive',
  'energyImportedPhaseBActive',
  'energyExportedPhaseBActive',
  'energyImportedPhaseCActive',
  'energyExportedPhaseCActive',
  'energyImportedReactive',
  'energyExportedReactive',
  'energyImportedApparent',
  'energyExportedApparent',
] as const;

const POINT_KEYS = new Set(['name', 'address', 'type', 'length', 'scale', 'scaleFactorPoint', 'unit', 'access', 'wordOrder', 'table']);
const MAP_KEYS = new Set(['name', 'wordOrder', 'notImplemented', 'points', 'control']);
const CONTROL_KEYS = new Set([
  'powerPoint',
  'readbackPoint',
  'modePoint',
  'modeEnableValue',
  'modeDisableValue',
  'heartbeatPoint',
  'heartbeat',
  'heartbeatValues',
  'timeoutPoint',
]);

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function checkKeys(obj: Record<string, unknown>, allowed: Set<string>, path: string): void {
  for (const key of Object.keys(obj)) {
    if (!allowed.has(key)) throw new RegisterMapError(`${path}${path ? '.' : ''}${key}`, obj[key], 'is not a known field');
  }
}

function isInt(value: unknown, min: number, max: number): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max;
}

function parseWordOrder(value: unknown, path: string): WordOrder | undefined {
  if (value === undefined) return undefined;
  if (value === 'big' || value === 'little') return value;
  throw new RegisterMapError(path, value, "must be 'big' or 'little'");
}

function parsePoint(raw: unknown, path: string): RegisterPoint {
  if (!isRecord(raw)) throw new RegisterMapError(path, raw, 'must be an object');
  checkKeys(raw, POINT_KEYS, path);
  const { name, address, type, length, scale, scaleFactorPoint, unit, access, wordOrder, table } = raw;
  if (typeof name !== 'string' || name.trim() === '') throw new RegisterMapError(`${path}.name`, name, 'must be a non-empty string');
  if (!isInt(address, 0, 65535)) throw new RegisterMapError(`${path}.address`, address, 'must be an integer 0..65535');
  if (!isPointType(type))
    throw new RegisterMapError(
      `${path}.type`,
      type,
      'must be a point type (uint16, int16, uint32, int32, acc32, uint64, float32, enum16, bitfield16, bitfield32, sunssf, string, pad)',
    );
  if (type === 'string' && !isInt(length, 1, 125))
    throw new RegisterMapError(`${path}.length`, length, 'must be an integer 1..125 for a string point');
  if (type !== 'string' && length !== undefined) throw new RegisterMapError(`${path}.length`, length, 'is only allowed on string points');
  const count = registerCount(type, typeof length === 'number' ? length : undefined);
  if (address + count - 1 > 65535) throw new RegisterMapError(`${path}.address`, address, `leaves no room for ${count} registers`);
  if (scale !== undefined && (typeof scale !== 'number' || !Number.isFinite(scale) || scale === 0))
    throw new RegisterMapError(`${path}.scale`, scale, 'must be a finite non-zero number');
  if ((scale !== undefined || scaleFactorPoint !== undefined) && !isScalable(type))
    throw new RegisterMapError(`${path}.type`, type, 'cannot be scaled');
  if (scale !== undefined && scaleFactorPoint !== undefined)
    throw new RegisterMapError(`${path}.scaleFactorPoint`, scaleFactorPoint, 'cannot be combined with scale');
  if (scaleFactorPoint !== undefined && (typeof scaleFactorPoint !== 'string' || scaleFactorPoint === ''))
    throw new RegisterMapError(`${path}.scaleFactorPoint`, scaleFactorPoint, 'must be a point name');
  if (unit !== undefined && typeof unit !== 'string') throw new RegisterMapError(`${path}.unit`, unit, 'must be a string');
  const acc = access ?? 'R';
  if (acc !== 'R' && acc !== 'RW' && acc !== 'W') throw new RegisterMapError(`${path}.access`, access, "must be 'R', 'RW' or 'W'");
  if (table !== undefined && table !== 'holding' && table !== 'input')
    throw new RegisterMapError(`${path}.table`, table, "must be 'holding' or 'input'");
  if (table === 'input' && acc !== 'R') throw new RegisterMapError(`${path}.access`, access, 'must be R for an input register');
  const point: RegisterPoint = { name, address, type, access: acc };
  if (typeof length === 'number') point.length = length;
  if (typeof scale === 'number') point.scale = scale;
  if (typeof scaleFactorPoint === 'string') point.scaleFactorPoint = scaleFactorPoint;
  if (typeof unit === 'string') point.unit = unit;
  const order = parseWordOrder(wordOrder, `${path}.wordOrder`);
  if (order) point.wordOrder = order;
  if (table === 'input' || table === 'holding') point.table = table;
  return point;
}

function parseControl(raw: unknown, byName: Map<string, RegisterPoint>): RegisterMapControl {
  const path = 'control';
  if (!isRecord(raw)) throw new RegisterMapError(path, raw, 'must be an object');
  checkKeys(raw, CONTROL_KEYS, path);
  const ref = (key: string, writable: boolean): string | undefined => {
    const value = raw[key];
    if (value === undefined) return undefined;
    const point = typeof value === 'string' ? byName.get(value) : undefined;
    if (!point) throw new RegisterMapError(`${path}.${key}`, value, 'must name a point of the map');
    if (writable && point.access === 'R') throw new RegisterMapError(`${path}.${key}`, value, 'must name a writable point');
    return point.name;
  };
  const powerPoint = ref('powerPoint', true);
  if (!powerPoint) throw new RegisterMapError(`${path}.powerPoint`, raw.powerPoint, 'is required');
  const power = byName.get(powerPoint);
  if (power && (!isScalable(power.type) || (power.unit !== 'W' && power.unit !== 'kW'))) {
    throw new RegisterMapError(`${path}.powerPoint`, powerPoint, "must name a numeric point with unit 'W' or 'kW'");
  }
  const control: RegisterMapControl = { powerPoint };
  const readbackPoint = ref('readbackPoint', false);
  if (readbackPoint) control.readbackPoint = readbackPoint;
  const modePoint = ref('modePoint', true);
  if (modePoint) control.modePoint = modePoint;
  const heartbeatPoint = ref('heartbeatPoint', true);
  if (heartbeatPoint) control.heartbeatPoint = heartbeatPoint;
  // A device Powerplane drives must fall back on its own when Powerplane goes quiet: without
  // a timeout register there is nothing to arm, and a stopped writer would leave the last
  // setpoint on the battery for good.
  const timeoutPoint = ref('timeoutPoint', true);
  if (!timeoutPoint)
    throw new RegisterMapError(
      `${path}.timeoutPoint`,
      raw.timeoutPoint,
      'is required (the device must revert on its own when Powerplane goes quiet)',
    );
  control.timeoutPoint = timeoutPoint;
  for (const key of ['modeEnableValue', 'modeDisableValue'] as const) {
    const value = raw[key];
    if (value === undefined) continue;
    if (!isInt(value, -0x80000000, 0xffffffff)) throw new RegisterMapError(`${path}.${key}`, value, 'must be an integer');
    control[key] = value;
  }
  if (raw.heartbeat !== undefined) {
    if (raw.heartbeat !== 'toggle' && raw.heartbeat !== 'increment')
      throw new RegisterMapError(`${path}.heartbeat`, raw.heartbeat, "must be 'toggle' or 'increment'");
    control.heartbeat = raw.heartbeat;
  }
  if (raw.heartbeatValues !== undefined) {
    const v = raw.heartbeatValues;
    if (!Array.isArray(v) || v.length !== 2 || !isInt(v[0], 0, 0xffff) || !isInt(v[1], 0, 0xffff) || v[0] === v[1]) {
      throw new RegisterMapError(`${path}.heartbeatValues`, v, 'must be two different integers 0..65535');
    }
    control.heartbeatValues = [v[0], v[1]];
  }
  return control;
}

/**
 * Validates untrusted JSON (device metadata) into a {@link RegisterMap}. Throws
 * {@link RegisterMapError} whose message names the offending field path and value, e.g.
 * `points[2].type must be a point type (...) (got "int8")`. Unknown fields are rejected so a
 * typo never silently drops a setting. Defaults: `wordOrder` big, `notImplemented` false,
 * point `access` R.
 */
export function parseRegisterMap(json: unknown): RegisterMap {
  if (!isRecord(json)) throw new RegisterMapError('map', json, 'must be an object');
  checkKeys(json, MAP_KEYS, '');
  if (json.name !== undefined && typeof json.name !== 'string') throw new RegisterMapError('name', json.name, 'must be a string');
  const wordOrder = parseWordOrder(json.wordOrder, 'wordOrder') ?? 'big';
  if (json.notImplemented !== undefined && typeof json.notImplemented !== 'boolean')
    throw new RegisterMapError('notImplemented', json.notImplemented, 'must be a boolean');
  if (!Array.isArray(json.points) || json.points.length === 0)
    throw new RegisterMapError('points', json.points, 'must be a non-empty array');
  if (json.points.length > 1000) throw new RegisterMapError('points', json.points.length, 'must hold at most 1000 points');
  const points = json.points.map((p, i) => parsePoint(p, `points[${i}]`));
  const byName = new Map<string, RegisterPoint>();
  points.forEach((p, i) => {
    if (byName.has(p.name)) throw new RegisterMapError(`points[${i}].name`, p.name, 'is used by another point');
    byName.set(p.name, p);
  });
  points.forEach((p, i) => {
    if (p.scaleFactorPoint === undefined) return;
    const sf = byName.get(p.scaleFactorPoint);
    if (!sf || sf.type !== 'sunssf')
      throw new RegisterMapError(`points[${i}].scaleFactorPoint`, p.scaleFactorPoint, 'must name a sunssf point of the map');
  });
  const map: RegisterMap = { wordOrder, notImplemented: json.notImplemented === true, points };
  if (typeof json.name === 'string') map.name = json.name;
  if (json.control !== undefined) map.control = parseControl(json.control, byName);
  return map;
}
