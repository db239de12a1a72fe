/**
 * The domain shape of readings on their way into storage. Times are whole microseconds
 * since the Unix epoch (PostgreSQL's resolution, exact in a double until year 2255), so
 * the idempotency key (device id, time) compares the same in JS and in SQL.
 */
import { METER_QUANTITIES } from '../storage/reading-columns.ts';

/** A reading's time as sent: seconds and nanoseconds since the epoch, or absent. */
export interface WireTime {
  readonly seconds: bigint;
  readonly nanos: number;
}

/** A meter reading: device, time and the quantities in {@link METER_QUANTITIES} order (null = unknown). */
export interface MeterRow {
  readonly deviceId: string;
  readonly timeMicros: number;
  readonly values: readonly (number | null)[];
}

/** A battery reading. `commandSource` is the CommandSource number; null when unspecified. */
export interface BessRow {
  readonly deviceId: string;
  readonly timeMicros: number;
  readonly soe: number | null;
  readonly targetPower: number | null;
  readonly availableInverterBlocks: number | null;
  readonly commandSource: number | null;
}

/** A datum-stream reading: property maps of one (device, source id) at one time. */
export interface DatumRow {
  readonly deviceId: string;
  readonly sourceId: string;
  readonly timeMicros: number;
  readonly instantaneous: Readonly<Record<string, number>>;
  readonly accumulating: Readonly<Record<string, number>>;
  readonly status: Readonly<Record<string, string>>;
}

/** Readings as decoded from the API, before validation (times unchecked, ids as sent). */
export interface RawBatch {
  readonly sequence: bigint;
  readonly meter: MeterColumns;
  readonly bess: readonly RawReading<RawBessValues>[];
  readonly datum: readonly RawDatum[];
}

/**
 * The meter readings of a batch as sent, column by column: a few typed arrays per batch
 * instead of an object, an array and a time per reading. Meter readings are nearly all
 * of ingest's traffic; decoding them this way (`wire-decode.ts`) leaves the garbage
 * collector almost nothing to do per reading.
 */
export interface MeterColumns {
  /** Readings held. */
  readonly count: number;
  /** The distinct device ids as sent, in order of first appearance. */
  readonly ids: readonly string[];
  /** Per reading: the index of its device id in `ids`. */
  readonly idIndex: Uint32Array;
  /** Per reading: 1 when it has a time. */
  readonly hasTime: Uint8Array;
  /** Per reading: the time's int64 seconds as its low 32 bits (as int32) and its high 32 bits. */
  readonly secondsLo: Int32Array;
  readonly secondsHi: Int32Array;
  /** Per reading: the time's nanos. */
  readonly nanos: Int32Array;
  /** Per reading: bit q set when quantity q ({@link METER_QUANTITIES} order) was sent. */
  readonly present: Uint32Array;
  /** Per reading, `METER_QUANTITIES.length` float32 values; those not `present` are 0. */
  readonly values: Float32Array;
}

/** Columns with room for `count` meter readings, all absent; `ids` is filled by the caller. */
export function createMeterColumns(count: number, ids: string[] = []): MeterColumns & { ids: string[] } {
  return {
    count,
    ids,
    idIndex: new Uint32Array(count),
    hasTime: new Uint8Array(count),
    secondsLo: new Int32Array(count),
    secondsHi: new Int32Array(count),
    nanos: new Int32Array(count),
    present: new Uint32Array(count),
    values: new Float32Array(count * METER_QUANTITIES.length),
  };
}

/**
 * Meter readings given one object each (decoded protobuf messages from JSON, tests) as
 * columns. `values` follow {@link METER_QUANTITIES}; undefined = absent.
 */
export function toMeterColumns(readings: readonly RawReading<readonly (number | undefined)[]>[]): MeterColumns {
  const columns = createMeterColumns(readings.length);
  const index = new Map<string, number>();
  const quantities = METER_QUANTITIES.length;
  readings.forEach((reading, i) => {
    let id = index.get(reading.deviceId);
    if (id === undefined) {
      id = columns.ids.push(reading.deviceId) - 1;
      index.set(reading.deviceId, id);
    }
    columns.idIndex[i] = id;
    if (reading.time) {
      columns.hasTime[i] = 1;
      const seconds = BigInt.asUintN(64, reading.time.seconds);
      columns.secondsLo[i] = Number(seconds & 0xffff_ffffn) | 0;
      columns.secondsHi[i] = Number(seconds >> 32n) | 0;
      columns.nanos[i] = reading.time.nanos;
    }
    let present = 0;
    for (let q = 0; q < quantities; q++) {
      const value = reading.values[q];
      if (value === undefined) continue;
      present |= 1 << q;
      columns.values[i * quantities + q] = value;
    }
    columns.present[i] = present >>> 0;
  });
  return columns;
}

/** The time of meter reading `i` as sent, undefined when it has none. */
export function meterTimeAt(columns: MeterColumns, i: number): WireTime | undefined {
  if (!columns.hasTime[i]) return undefined;
  const seconds = (BigInt(columns.secondsHi[i]!) << 32n) | BigInt(columns.secondsLo[i]! >>> 0);
  return { seconds, nanos: columns.nanos[i]! };
}

/** One reading as sent: its id, time and values. */
export interface RawReading<V> {
  readonly deviceId: string;
  readonly time: WireTime | undefined;
  readonly values: V;
}

/** The battery fields as sent. */
export interface RawBessValues {
  readonly soe: number | undefined;
  readonly targetPower: number | undefined;
  readonly availableInverterBlocks: number | undefined;
  readonly commandSource: number;
}

/** A datum reading as sent. */
export interface RawDatum extends RawReading<undefined> {
  readonly sourceId: string;
  readonly instantaneous: Readonly<Record<string, number>>;
  readonly accumulating: Readonly<Record<string, number>>;
  readonly status: Readonly<Record<string, string>>;
}

/** The list of a batch a reading came from. */
export type ReadingKind = 'meter' | 'bess' | 'datum';

/** Why a reading was not stored. */
export interface Rejection {
  readonly kind: ReadingKind;
  readonly index: number;
  readonly deviceId: string;
  readonly field: string;
  readonly value: string;
  readonly reason: string;
}

/** What happened to a batch: the ack's content. */
export interface BatchOutcome {
  readonly sequence: bigint;
  readonly stored: number;
  readonly duplicates: number;
  readonly conflicts: number;
  readonly rejections: readonly Rejection[];
}

/** Converts a wire time to microseconds since the epoch (nanoseconds truncated). */
export function toMicros(time: WireTime): number {
  return Number(time.seconds) * 1_000_000 + Math.floor(time.nanos / 1_000);
}
