/**
 * A hand-written protobuf decoder for `powerplane.v1.ReadingBatch`, the message nearly all
 * of ingest's bytes arrive in. protobuf-es decodes reflectively: a message object per
 * reading, a Timestamp object with a BigInt per time, 25 optional properties per meter
 * reading; profiling showed that and the garbage it leaves costing about two thirds of the
 * server's CPU per reading. This decoder reads the bytes straight into the columns ingest
 * validates ({@link MeterColumns}): a handful of typed arrays per batch.
 *
 * It follows the protobuf wire rules: fields in any order, the last value of a repeated
 * scalar wins, a repeated message field (a reading's `time`) is merged, unknown fields are
 * skipped (groups included), strings must be valid UTF-8 (proto3), an enum keeps unknown
 * numbers. A known field sent with another wire type is skipped as unknown, as protobuf's
 * C++ parser does. Anything malformed throws INVALID_ARGUMENT naming `batch`. The tests
 * compare it with protobuf-es's own decoder on random messages (`wire-decode.test.ts`).
 */
import { InvalidArgumentError } from '../errors.ts';
import {
  createMeterColumns,
  type MeterColumns,
  type RawBatch,
  type RawBessValues,
  type RawDatum,
  type RawReading,
  type WireTime,
} from './reading-batch.ts';
import { METER_QUANTITIES } from '../storage/reading-columns.ts';

const VARINT = 0;
const I64 = 1;
const LEN = 2;
const SGROUP = 3;
const EGROUP = 4;
const I32 = 5;

/** Field numbers of telemetry.proto. */
const BATCH_SEQUENCE = 1;
const BATCH_METER = 2;
const BATCH_BESS = 3;
const BATCH_DATUM = 4;
/** MeterReading's quantities are fields 3 to 27 in METER_QUANTITIES order. */
const FIRST_QUANTITY_FIELD = 3;
const QUANTITIES = METER_QUANTITIES.length;

/** Distinct device ids compared as bytes before decoding; beyond this many, ids are decoded and looked up by text. */
const MAX_ID_SCAN = 32;

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Where decoding is: the bytes, the position and the scratch of the last 64-bit varint. */
interface Cursor {
  readonly buf: Uint8Array;
  readonly view: DataView;
  pos: number;
  /** Low and high 32 bits of the last {@link varint64}. */
  lo: number;
  hi: number;
}

/** Thrown inside the decoder; turned into an InvalidArgumentError naming `batch`. */
class Malformed extends Error {}

/**
 * Decodes an encoded ReadingBatch into the domain's unvalidated batch. Throws
 * INVALID_ARGUMENT (field `batch`) when the bytes are not a valid ReadingBatch.
 */
export function decodeReadingBatch(bytes: Uint8Array): RawBatch {
  const c: Cursor = { buf: bytes, view: new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), pos: 0, lo: 0, hi: 0 };
  try {
    return readBatch(c);
  } catch (err) {
    if (!(err instanceof Malformed)) throw err;
    throw new InvalidArgumentError('batch', `${bytes.length} bytes`, `is not a valid ReadingBatch - ${err.message}`);
  }
}

function readBatch(c: Cursor): RawBatch {
  const end = c.buf.length;
  // First pass: count the meter readings, so their columns are allocated once.
  let meterCount = 0;
  while (c.pos < end) {
    const tag = readTag(c);
    if (tag >>> 3 === BATCH_METER && (tag & 7) === LEN) meterCount++;
    skip(c, tag, end, 0);
  }
  c.pos = 0;
  let sequence = 0n;
  const meter = createMeterColumns(meterCount);
  const ids = new IdTable(meter.ids);
  const bess: RawReading<RawBessValues>[] = [];
  const datum: RawDatum[] = [];
  let m = 0;
  while (c.pos < end) {
    const tag = readTag(c);
    const field = tag >>> 3;
    const wire = tag & 7;
    if (field === BATCH_SEQUENCE && wire === VARINT) {
      varint64(c);
      sequence = (BigInt(c.hi >>> 0) << 32n) | BigInt(c.lo >>> 0);
    } else if (field === BATCH_METER && wire === LEN) {
      const len = length(c, end);
      readMeter(c, c.pos + len, meter, m, ids);
      m++;
    } else if (field === BATCH_BESS && wire === LEN) {
      const len = length(c, end);
      bess.push(readBess(c, c.pos + len));
    } else if (field === BATCH_DATUM && wire === LEN) {
      const len = length(c, end);
      datum.push(readDatum(c, c.pos + len));
    } else {
      skip(c, tag, end, 0);
    }
  }
  return { sequence, meter, bess, datum };
}

function readMeter(c: Cursor, end: number, columns: MeterColumns, i: number, ids: IdTable): void {
  // The hot loop: the position in a local, and a tag of one or two bytes (fields 1 to
  // 2047) read inline; everything else through the general path.
  const buf = c.buf;
  const view = c.view;
  const values = columns.values;
  const base = i * QUANTITIES;
  let present = 0;
  // The id's bytes; looked up once the reading is read, as a later device_id would win.
  let idStart = 0;
  let idLength = 0;
  let pos = c.pos;
  while (pos < end) {
    const start = pos;
    let tag = buf[pos]!;
    if (tag < 0x80) pos += 1;
    else if (pos + 1 < buf.length && buf[pos + 1]! < 0x80) {
      tag = (tag & 0x7f) | (buf[pos + 1]! << 7);
      pos += 2;
    } else {
      c.pos = pos;
      tag = readTag(c);
      pos = c.pos;
    }
    if (tag >>> 3 === 0 || (tag & 7) > 5) throw new Malformed(`the tag at byte ${start} is not a field`);
    const field = tag >>> 3;
    const wire = tag & 7;
    const q = field - FIRST_QUANTITY_FIELD;
    if (q >= 0 && q < QUANTITIES && wire === I32) {
      if (pos + 4 > end) throw new Malformed('a float runs past its reading');
      values[base + q] = view.getFloat32(pos, true);
      pos += 4;
      present |= 1 << q;
      continue;
    }
    c.pos = pos;
    if (field === 1 && wire === LEN) {
      idLength = length(c, end);
      idStart = c.pos;
      c.pos += idLength;
    } else if (field === 2 && wire === LEN) {
      readMeterTime(c, length(c, end), columns, i);
    } else {
      skip(c, tag, end, 0);
    }
    pos = c.pos;
  }
  if (pos !== end) throw new Malformed('a field runs past its meter reading');
  c.pos = pos;
  columns.idIndex[i] = ids.indexOf(buf, idStart, idLength);
  columns.present[i] = present >>> 0;
}

/** A meter reading's `time`, merged into what an earlier `time` of the same reading set, as protobuf merges. */
function readMeterTime(c: Cursor, len: number, columns: MeterColumns, i: number): void {
  columns.hasTime[i] = 1;
  let lo = columns.secondsLo[i]!;
  let hi = columns.secondsHi[i]!;
  let nanos = columns.nanos[i]!;
  const end = c.pos + len;
  while (c.pos < end) {
    const tag = readTag(c);
    if (tag === ((1 << 3) | VARINT)) {
      varint64(c);
      lo = c.lo;
      hi = c.hi;
    } else if (tag === ((2 << 3) | VARINT)) {
      nanos = varint32(c) | 0;
    } else {
      skip(c, tag, end, 0);
    }
  }
  if (c.pos !== end) throw new Malformed('a field runs past its time');
  columns.secondsLo[i] = lo;
  columns.secondsHi[i] = hi;
  columns.nanos[i] = nanos;
}

function readBess(c: Cursor, end: number): RawReading<RawBessValues> {
  let deviceId = '';
  let time: WireTime | undefined;
  let soe: number | undefined;
  let targetPower: number | undefined;
  let availableInverterBlocks: number | undefined;
  let commandSource = 0;
  while (c.pos < end) {
    const tag = readTag(c);
    const field = tag >>> 3;
    const wire = tag & 7;
    if (field === 1 && wire === LEN) deviceId = readString(c, end);
    else if (field === 2 && wire === LEN) time = readTimestamp(c, end, time);
    else if (field === 3 && wire === I32) soe = readFloat(c, end);
    else if (field === 4 && wire === I32) targetPower = readFloat(c, end);
    else if (field === 5 && wire === VARINT) availableInverterBlocks = varint32(c);
    else if (field === 6 && wire === VARINT) commandSource = varint32(c) | 0;
    else skip(c, tag, end, 0);
  }
  if (c.pos !== end) throw new Malformed('a field runs past its battery reading');
  return { deviceId, time, values: { soe, targetPower, availableInverterBlocks, commandSource } };
}

function readDatum(c: Cursor, end: number): RawDatum {
  let deviceId = '';
  let sourceId = '';
  let time: WireTime | undefined;
  const instantaneous: Record<string, number> = {};
  const accumulating: Record<string, number> = {};
  const status: Record<string, string> = {};
  while (c.pos < end) {
    const tag = readTag(c);
    const field = tag >>> 3;
    const wire = tag & 7;
    if (field === 1 && wire === LEN) deviceId = readString(c, end);
    else if (field === 2 && wire === LEN) sourceId = readString(c, end);
    else if (field === 3 && wire === LEN) time = readTimestamp(c, end, time);
    else if (field === 4 && wire === LEN) readMapEntry(c, end, instantaneous, false);
    else if (field === 5 && wire === LEN) readMapEntry(c, end, accumulating, false);
    else if (field === 6 && wire === LEN) readMapEntry(c, end, status, true);
    else skip(c, tag, end, 0);
  }
  if (c.pos !== end) throw new Malformed('a field runs past its datum reading');
  return { deviceId, sourceId, time, values: undefined, instantaneous, accumulating, status };
}

/** One entry of a `map<string, double>` (or `map<string, string>` when `text`): key 1, value 2; absent ones are the zero value. */
function readMapEntry(c: Cursor, outer: number, map: Record<string, number | string>, text: boolean): void {
  const len = length(c, outer);
  const end = c.pos + len;
  let key = '';
  let value: number | string = text ? '' : 0;
  while (c.pos < end) {
    const tag = readTag(c);
    if (tag === ((1 << 3) | LEN)) key = readString(c, end);
    else if (text && tag === ((2 << 3) | LEN)) value = readString(c, end);
    else if (!text && tag === ((2 << 3) | I64)) {
      if (c.pos + 8 > end) throw new Malformed('a double runs past its map entry');
      value = c.view.getFloat64(c.pos, true);
      c.pos += 8;
    } else skip(c, tag, end, 0);
  }
  if (c.pos !== end) throw new Malformed('a field runs past its map entry');
  map[key] = value;
}

/** A Timestamp, merged into `into` when the field came before. */
function readTimestamp(c: Cursor, outer: number, into: WireTime | undefined): WireTime {
  const len = length(c, outer);
  const end = c.pos + len;
  let seconds = into?.seconds ?? 0n;
  let nanos = into?.nanos ?? 0;
  while (c.pos < end) {
    const tag = readTag(c);
    if (tag === ((1 << 3) | VARINT)) {
      varint64(c);
      seconds = (BigInt(c.hi) << 32n) | BigInt(c.lo >>> 0);
    } else if (tag === ((2 << 3) | VARINT)) {
      nanos = varint32(c) | 0;
    } else skip(c, tag, end, 0);
  }
  if (c.pos !== end) throw new Malformed('a field runs past its time');
  return { seconds, nanos };
}

function readFloat(c: Cursor, end: number): number {
  if (c.pos + 4 > end) throw new Malformed('a float runs past its reading');
  const value = c.view.getFloat32(c.pos, true);
  c.pos += 4;
  return value;
}

function readString(c: Cursor, outer: number): string {
  const len = length(c, outer);
  const text = decodeText(c.buf, c.pos, len);
  c.pos += len;
  return text;
}

/** UTF-8 text, which proto3 requires of strings (protobuf-es checks it too). */
function decodeText(buf: Uint8Array, start: number, len: number): string {
  if (len === 0) return '';
  try {
    return utf8.decode(buf.subarray(start, start + len));
  } catch {
    throw new Malformed(`the string at byte ${start} is not valid UTF-8`);
  }
}

/** A length prefix, checked to end inside `outer`. */
function length(c: Cursor, outer: number): number {
  const len = varint32(c);
  if (c.pos + len > outer) throw new Malformed(`a length of ${len} at byte ${c.pos} runs past its message`);
  return len;
}

/** A tag: field number above 0 and a wire type from 0 to 5, in a uint32 varint of at most 5 bytes. */
function readTag(c: Cursor): number {
  const start = c.pos;
  const tag = varint32(c);
  if (c.pos - start > 5 || (c.pos - start === 5 && c.buf[c.pos - 1]! > 0x0f))
    throw new Malformed(`the tag at byte ${start} overflows 32 bits`);
  if (tag >>> 3 === 0 || (tag & 7) > 5) throw new Malformed(`the tag at byte ${start} is not a field`);
  return tag;
}

/** A varint's low 32 bits, unsigned (as protobuf reads uint32 and, with `| 0`, int32 and enums). */
function varint32(c: Cursor): number {
  const buf = c.buf;
  let pos = c.pos;
  let result = 0;
  for (let shift = 0; shift < 70; shift += 7) {
    if (pos >= buf.length) throw new Malformed('the message ends inside a varint');
    const b = buf[pos++]!;
    if (shift < 32) result |= (b & 0x7f) << shift;
    if ((b & 0x80) === 0) {
      c.pos = pos;
      return result >>> 0;
    }
  }
  throw new Malformed(`the varint at byte ${c.pos} is longer than 10 bytes`);
}

/** A varint's 64 bits into `c.lo` (unsigned low word) and `c.hi` (high word, as int32). */
function varint64(c: Cursor): void {
  const buf = c.buf;
  let pos = c.pos;
  let lo = 0;
  let hi = 0;
  for (let shift = 0; shift < 70; shift += 7) {
    if (pos >= buf.length) throw new Malformed('the message ends inside a varint');
    const b = buf[pos++]!;
    const bits = b & 0x7f;
    if (shift < 28) lo |= bits << shift;
    else if (shift === 28) {
      lo |= bits << 28;
      hi |= bits >>> 4;
    } else hi |= bits << (shift - 32);
    if ((b & 0x80) === 0) {
      c.pos = pos;
      c.lo = lo >>> 0;
      c.hi = hi | 0;
      return;
    }
  }
  throw new Malformed(`the varint at byte ${c.pos} is longer than 10 bytes`);
}

/** Skips the value of a field whose tag was just read, groups included (nested at most 64 deep). */
function skip(c: Cursor, tag: number, end: number, depth: number): void {
  switch (tag & 7) {
    case VARINT:
      varint32(c);
      break;
    case I64:
      c.pos += 8;
      break;
    case LEN: {
      const len = length(c, end);
      c.pos += len;
      break;
    }
    case I32:
      c.pos += 4;
      break;
    case SGROUP: {
      if (depth >= 64) throw new Malformed('groups nest too deep');
      for (;;) {
        if (c.pos >= end) throw new Malformed('a group has no end');
        const inner = readTag(c);
        if ((inner & 7) === EGROUP) {
          if (inner >>> 3 !== tag >>> 3) throw new Malformed('a group ends with another field number');
          break;
        }
        skip(c, inner, end, depth + 1);
      }
      break;
    }
    default:
      throw new Malformed(`an end-group tag has no group at byte ${c.pos}`);
  }
  if (c.pos > end) throw new Malformed('a field runs past its message');
}

/**
 * The distinct device ids of a batch. A batch names a few devices a thousand times, so an
 * id is first compared as bytes with those seen (starting after the last match, as agents
 * interleave their devices) and decoded to a string only the first time.
 */
class IdTable {
  readonly #ids: string[];
  readonly #bytes: Uint8Array[] = [];
  #byText: Map<string, number> | undefined;
  #last = 0;

  constructor(ids: string[]) {
    this.#ids = ids;
  }

  indexOf(buf: Uint8Array, start: number, len: number): number {
    const known = this.#bytes;
    const n = known.length;
    if (n <= MAX_ID_SCAN) {
      for (let k = 0; k < n; k++) {
        const at = (this.#last + 1 + k) % n;
        if (sameBytes(known[at]!, buf, start, len)) return (this.#last = at);
      }
    }
    return this.indexOfText(decodeText(buf, start, len), buf.subarray(start, start + len));
  }

  indexOfText(text: string, bytes?: Uint8Array): number {
    if (!this.#byText) {
      this.#byText = new Map();
      this.#ids.forEach((id, i) => this.#byText!.set(id, i));
    }
    let index = this.#byText.get(text);
    if (index === undefined) {
      index = this.#ids.push(text) - 1;
      this.#byText.set(text, index);
      this.#bytes.push(bytes ?? new TextEncoder().encode(text));
    }
    return (this.#last = index);
  }
}

function sameBytes(known: Uint8Array, buf: Uint8Array, start: number, len: number): boolean {
  if (known.length !== len) return false;
  for (let i = 0; i < len; i++) if (known[i] !== buf[start + i]) return false;
  return true;
}
