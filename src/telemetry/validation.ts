import { MeterRowEncoder } from './copy-binary.ts';
import {
  meterTimeAt,
  toMicros,
  type BessRow,
  type DatumRow,
  type RawBatch,
  type RawDatum,
  type ReadingKind,
  type Rejection,
  type WireTime,
  type MeterRow,
} from './reading-batch.ts';
import { METER_QUANTITIES } from '../storage/reading-columns.ts';
import { unstorableReason, textProblem } from '../text.ts';
import { normalizeDeviceId } from '../uuid.ts';

/** What validation needs to know about a device. */
export interface DeviceFacts {
  readonly type: string;
  readonly active: boolean;
  readonly site: string;
}

/** The sites whose devices a caller may write readings for; `'*'` for every site. */
export type WritableSites = ReadonlySet<string> | '*';

/** The limits readings are checked against. */
export interface ValidationLimits {
  /** Now, in microseconds since the epoch. */
  readonly nowMicros: number;
  /** How far back a reading may be, in microseconds. */
  readonly backfillMicros: number;
  /** How far ahead of `nowMicros` a reading may be, in microseconds. */
  readonly aheadMicros: number;
}

/** The readings of a batch that passed, each with its position in the batch, and the rejections. */
export interface ValidatedBatch {
  readonly meter: MeterRow[];
  readonly meterIndex: number[];
  readonly bess: BessRow[];
  readonly bessIndex: number[];
  readonly datum: DatumRow[];
  readonly datumIndex: number[];
  readonly rejections: Rejection[];
}

/** Largest `available_inverter_blocks` (the column is a smallint). */
export const MAX_INVERTER_BLOCKS = 32_767;
/** Highest CommandSource number the API defines. */
export const MAX_COMMAND_SOURCE = 4;
/** Longest datum property name. */
export const MAX_DATUM_NAME = 64;
/** Longest datum source id. */
export const MAX_SOURCE_ID = 200;
/** Longest text value of a datum `status` property. */
export const MAX_DATUM_STATUS = 1_000;

/** A reason a reading fails, before its kind and index are attached. */
type Problem = { field: string; value: string; reason: string };

const BACKFILL_DAYS = (micros: number) => {
  const hours = micros / 3_600_000_000;
  return hours >= 24 && hours % 24 === 0 ? `${hours / 24} days` : `${hours} hours`;
};

/**
 * Checks every reading of `batch` against the device registry facts in `devices` (keyed by
 * lower-case id; absent = unknown), the sites the caller may write (`sites`, default every
 * site) and `limits`. A reading is rejected on its first problem with the field, the
 * value as text and the reason; the others pass, converted to rows. Pure: no clock and
 * no I/O.
 */
export function validateBatch(
  batch: RawBatch,
  devices: ReadonlyMap<string, DeviceFacts>,
  limits: ValidationLimits,
  sites: WritableSites = '*',
): ValidatedBatch {
  const out: ValidatedBatch = { meter: [], meterIndex: [], bess: [], bessIndex: [], datum: [], datumIndex: [], rejections: [] };
  const reject = (kind: ReadingKind, index: number, deviceId: string, problem: Problem) =>
    out.rejections.push({ kind, index, deviceId, ...problem });

  // The hot loop of ingest: columns in, no closure or object per reading but the row, and
  // each valid row written at once as its binary COPY tuple into one buffer for the batch
  // (see EncodedMeterRow). Devices are checked once per distinct id.
  const meter = batch.meter;
  const deviceOf = meter.ids.map((sent) => checkDevice(sent, devices, 'meter', sites));
  const { idIndex, hasTime, secondsLo, secondsHi, nanos, present, values } = meter;
  const quantities = METER_QUANTITIES.length;
  const oldest = limits.nowMicros - limits.backfillMicros;
  const newest = limits.nowMicros + limits.aheadMicros;
  let encoder: MeterRowEncoder | undefined;
  meters: for (let index = 0; index < meter.count; index++) {
    const id = deviceOf[idIndex[index]!]!;
    if (typeof id !== 'string') {
      reject('meter', index, meter.ids[idIndex[index]!]!, id);
      continue;
    }
    // Seconds as a double: exact while the time can be valid at all (|micros| < 2^53).
    // The common case here, the rest (and every message) by checkTime.
    const n = nanos[index]!;
    let micros = (secondsHi[index]! * 4_294_967_296 + (secondsLo[index]! >>> 0)) * 1_000_000 + Math.floor(n / 1_000);
    if (!hasTime[index] || n < 0 || n > 999_999_999 || !Number.isSafeInteger(micros) || micros < oldest || micros > newest) {
      const time = checkTime(meterTimeAt(meter, index), limits);
      if (typeof time !== 'number') {
        reject('meter', index, meter.ids[idIndex[index]!]!, time);
        continue;
      }
      micros = time;
    }
    const sent = present[index]!;
    const base = index * quantities;
    for (let q = 0; q < quantities; q++) {
      if ((sent >>> q) & 1 && !Number.isFinite(values[base + q]!)) {
        reject('meter', index, meter.ids[idIndex[index]!]!, {
          field: METER_QUANTITIES[q]!.field,
          value: String(values[base + q]),
          reason: 'must be a finite number',
        });
        continue meters;
      }
    }
    encoder ??= new MeterRowEncoder(meter.count - index, quantities);
    out.meter.push(encoder.addColumns(id, micros, values, base, sent, quantities));
    out.meterIndex.push(index);
  }

  batch.bess.forEach((reading, index) => {
    const id = checkDevice(reading.deviceId, devices, 'bess', sites);
    if (typeof id !== 'string') return reject('bess', index, reading.deviceId, id);
    const time = checkTime(reading.time, limits);
    if (typeof time !== 'number') return reject('bess', index, reading.deviceId, time);
    const v = reading.values;
    const problem =
      checkFinite('soe_percent', v.soe) ??
      (v.soe !== undefined && (v.soe < 0 || v.soe > 100)
        ? { field: 'soe_percent', value: String(v.soe), reason: 'must be between 0 and 100' }
        : undefined) ??
      checkFinite('target_power_kw', v.targetPower) ??
      (v.availableInverterBlocks !== undefined && v.availableInverterBlocks > MAX_INVERTER_BLOCKS
        ? {
            field: 'available_inverter_blocks',
            value: String(v.availableInverterBlocks),
            reason: `must be from 0 to ${MAX_INVERTER_BLOCKS}`,
          }
        : undefined) ??
      (!Number.isInteger(v.commandSource) || v.commandSource < 0 || v.commandSource > MAX_COMMAND_SOURCE
        ? { field: 'command_source', value: String(v.commandSource), reason: 'is not a known CommandSource' }
        : undefined);
    if (problem) return reject('bess', index, reading.deviceId, problem);
    out.bess.push({
      deviceId: id,
      timeMicros: time,
      soe: v.soe ?? null,
      targetPower: v.targetPower ?? null,
      availableInverterBlocks: v.availableInverterBlocks ?? null,
      commandSource: v.commandSource === 0 ? null : v.commandSource,
    });
    out.bessIndex.push(index);
  });

  batch.datum.forEach((reading, index) => {
    const id = checkDevice(reading.deviceId, devices, undefined, sites);
    if (typeof id !== 'string') return reject('datum', index, reading.deviceId, id);
    const time = checkTime(reading.time, limits);
    if (typeof time !== 'number') return reject('datum', index, reading.deviceId, time);
    const problem = checkDatum(reading);
    if (problem) return reject('datum', index, reading.deviceId, problem);
    out.datum.push({
      deviceId: id,
      sourceId: reading.sourceId,
      timeMicros: time,
      instantaneous: reading.instantaneous,
      accumulating: reading.accumulating,
      status: reading.status,
    });
    out.datumIndex.push(index);
  });
  return out;
}

function checkDevice(
  deviceId: string,
  devices: ReadonlyMap<string, DeviceFacts>,
  type: string | undefined,
  sites: WritableSites,
): string | Problem {
  const id = normalizeDeviceId(deviceId);
  if (!id) return { field: 'device_id', value: deviceId, reason: 'must be a UUID' };
  const device = devices.get(id);
  // For a caller bound to sites, another site's device reads exactly like an unknown one
  // (checked before its state and type): the caller learns nothing of other sites' devices.
  if (sites !== '*' && (!device || !sites.has(device.site))) {
    return { field: 'device_id', value: deviceId, reason: 'names no registered device at the sites this caller may write' };
  }
  if (!device) return { field: 'device_id', value: deviceId, reason: 'names no registered device' };
  if (!device.active) return { field: 'device_id', value: deviceId, reason: 'names an inactive device' };
  if (type !== undefined && device.type !== type)
    return { field: 'device_id', value: deviceId, reason: `names a ${device.type} device, not a ${type}` };
  return id;
}

function checkTime(time: WireTime | undefined, limits: ValidationLimits): number | Problem {
  if (!time) return { field: 'time', value: '', reason: 'is required' };
  if (!Number.isInteger(time.nanos) || time.nanos < 0 || time.nanos > 999_999_999) {
    return { field: 'time', value: wireText(time), reason: 'must have nanos from 0 to 999999999' };
  }
  const micros = toMicros(time);
  if (!Number.isSafeInteger(micros)) return { field: 'time', value: wireText(time), reason: 'is out of range' };
  if (micros < limits.nowMicros - limits.backfillMicros) {
    return { field: 'time', value: isoOf(micros), reason: `is older than the backfill window of ${BACKFILL_DAYS(limits.backfillMicros)}` };
  }
  if (micros > limits.nowMicros + limits.aheadMicros) {
    return {
      field: 'time',
      value: isoOf(micros),
      reason: `is more than ${limits.aheadMicros / 60_000_000} minutes ahead of the server clock`,
    };
  }
  return micros;
}

function wireText(time: WireTime): string {
  return `${time.seconds}s ${time.nanos}ns`;
}

function isoOf(micros: number): string {
  const date = new Date(Math.floor(micros / 1_000));
  return Number.isNaN(date.getTime()) ? String(micros) : date.toISOString();
}

function checkFinite(field: string, value: number | undefined): Problem | undefined {
  return value !== undefined && !Number.isFinite(value) ? { field, value: String(value), reason: 'must be a finite number' } : undefined;
}

function checkDatum(reading: RawDatum): Problem | undefined {
  if (reading.sourceId.length < 1 || reading.sourceId.length > MAX_SOURCE_ID) {
    return { field: 'source_id', value: reading.sourceId, reason: `must be 1 to ${MAX_SOURCE_ID} characters` };
  }
  const sourceProblem = unstorableReason(reading.sourceId);
  if (sourceProblem !== undefined) return { field: 'source_id', value: reading.sourceId, reason: sourceProblem };
  const groups = [
    ['instantaneous', reading.instantaneous],
    ['accumulating', reading.accumulating],
    ['status', reading.status],
  ] as const;
  let count = 0;
  for (const [group, map] of groups) {
    for (const [name, value] of Object.entries(map)) {
      count++;
      if (name.length < 1 || name.length > MAX_DATUM_NAME) {
        return { field: `${group}`, value: name, reason: `has a property name that is not 1 to ${MAX_DATUM_NAME} characters` };
      }
      const nameProblem = unstorableReason(name);
      if (nameProblem !== undefined) return { field: `${group}`, value: name, reason: `has a property name that ${nameProblem}` };
      if (typeof value === 'number' && !Number.isFinite(value)) {
        return { field: `${group}.${name}`, value: String(value), reason: 'must be a finite number' };
      }
      if (typeof value === 'string') {
        const valueProblem = textProblem(value, MAX_DATUM_STATUS);
        if (valueProblem !== undefined) return { field: `${group}.${name}`, value, reason: valueProblem };
      }
    }
  }
  if (count === 0) return { field: 'instantaneous', value: '', reason: 'must hold at least one property (with accumulating and status)' };
  return undefined;
}
