import type { BessRow, MeterRow } from './reading-batch.ts';

/**
 * Encoders of PostgreSQL's binary COPY format for the staging tables. Binary rows carry
 * a proto `float` as the exact 4 bytes of a `real` (text would print 558.49 as
 * "558.489990234375" and cost a parse), timestamps as 8-byte microseconds since
 * 2000-01-01 and uuids as 16 bytes.
 */

const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');
/** Microseconds from the Unix epoch to PostgreSQL's epoch, 2000-01-01. */
const PG_EPOCH_MICROS = 946_684_800_000_000;
const uuidBytes = new Map<string, Buffer>();

/**
 * Growable big-endian buffer writer. Writes go through a DataView (inlined by V8, no
 * per-call bounds-check wrappers); room is reserved once per row with {@link ensure}.
 */
interface Writer {
  buf: Buffer;
  view: DataView;
  pos: number;
}

function viewOf(buf: Buffer): DataView {
  return new DataView(buf.buffer, buf.byteOffset, buf.length);
}

function ensure(w: Writer, bytes: number): void {
  if (w.pos + bytes <= w.buf.length) return;
  const next = Buffer.allocUnsafe(Math.max(w.buf.length * 2, w.pos + bytes));
  w.buf.copy(next, 0, 0, w.pos);
  w.buf = next;
  w.view = viewOf(next);
}

function start(capacity: number): Writer {
  // Not from Buffer's shared pool: a group's buffer is large and goes to the socket whole.
  const buf = Buffer.allocUnsafeSlow(capacity + 21);
  const w: Writer = { buf, view: viewOf(buf), pos: 0 };
  SIGNATURE.copy(w.buf, 0);
  w.view.setInt32(11, 0);
  w.view.setInt32(15, 0);
  w.pos = 19;
  return w;
}

function finish(w: Writer): Buffer {
  ensure(w, 2);
  w.view.setInt16(w.pos, -1);
  w.pos += 2;
  return w.buf.subarray(0, w.pos);
}

function uuidOf(id: string): Buffer {
  let bytes = uuidBytes.get(id);
  if (!bytes) {
    if (uuidBytes.size > 100_000) uuidBytes.clear();
    bytes = Buffer.from(id.replaceAll('-', ''), 'hex');
    uuidBytes.set(id, bytes);
  }
  return bytes;
}

function uuid(w: Writer, id: string): void {
  const bytes = uuidOf(id);
  w.view.setInt32(w.pos, 16);
  w.buf.set(bytes, w.pos + 4);
  w.pos += 20;
}

const TWO_32 = 4_294_967_296;

/** 8-byte timestamp without a BigInt: micros since 2000 split into two 32-bit words. */
function timestamp(w: Writer, micros: number): void {
  const v = micros - PG_EPOCH_MICROS;
  const hi = Math.floor(v / TWO_32);
  const view = w.view;
  view.setInt32(w.pos, 8);
  view.setInt32(w.pos + 4, hi);
  view.setUint32(w.pos + 8, v - hi * TWO_32);
  w.pos += 12;
}

function int4(w: Writer, value: number): void {
  w.view.setInt32(w.pos, 4);
  w.view.setInt32(w.pos + 4, value);
  w.pos += 8;
}

function float4(w: Writer, value: number | null): void {
  if (value === null) {
    w.view.setInt32(w.pos, -1);
    w.pos += 4;
    return;
  }
  w.view.setInt32(w.pos, 4);
  w.view.setFloat32(w.pos + 4, value);
  w.pos += 8;
}

function int2(w: Writer, value: number | null): void {
  if (value === null) {
    w.view.setInt32(w.pos, -1);
    w.pos += 4;
    return;
  }
  w.view.setInt32(w.pos, 2);
  w.view.setInt16(w.pos + 4, value);
  w.pos += 6;
}

/**
 * A meter row held as its binary COPY tuple for `flux.mg_meter_readings` (device_id,
 * time, the quantities), inside a buffer shared by the rows of its batch. Ingest keeps
 * these while a batch waits for its commit: one small object per reading instead of an
 * array of 25 numbers, and the group's COPY is a copy of bytes. `values` is decoded on
 * demand (conflicts, the staging path, PGlite).
 */
export class EncodedMeterRow implements MeterRow {
  readonly #block: Buffer;
  readonly #start: number;
  readonly #end: number;

  constructor(
    readonly deviceId: string,
    readonly timeMicros: number,
    block: Buffer,
    start: number,
    end: number,
  ) {
    this.#block = block;
    this.#start = start;
    this.#end = end;
  }

  /** The quantities (float4-exact), null where absent. */
  get values(): (number | null)[] {
    const block = this.#block;
    const count = block.readInt16BE(this.#start) - 2;
    const out: (number | null)[] = new Array(count);
    let pos = this.#start + 2 + 20 + 12;
    for (let i = 0; i < count; i++) {
      const len = block.readInt32BE(pos);
      if (len < 0) {
        out[i] = null;
        pos += 4;
      } else {
        out[i] = block.readFloatBE(pos + 4);
        pos += 8;
      }
    }
    return out;
  }

  /** Copies the tuple into `target` at `pos`; with `ord`, as a staging tuple with that ord first. Returns the new position. */
  copyTo(target: Buffer, pos: number, ord?: number): number {
    if (ord === undefined) return pos + this.#block.copy(target, pos, this.#start, this.#end);
    target.writeInt16BE(this.#block.readInt16BE(this.#start) + 1, pos);
    target.writeInt32BE(4, pos + 2);
    target.writeInt32BE(ord, pos + 6);
    return pos + 10 + this.#block.copy(target, pos + 10, this.#start + 2, this.#end);
  }

  /** The bytes `copyTo` writes without ord; consecutive rows of a batch are adjacent. */
  get span(): { block: Buffer; start: number; end: number } {
    return { block: this.#block, start: this.#start, end: this.#end };
  }

  get byteLength(): number {
    return this.#end - this.#start;
  }

  toJSON(): MeterRow {
    return { deviceId: this.deviceId, timeMicros: this.timeMicros, values: this.values };
  }
}

/** Encodes the meter rows of one batch into one buffer, as {@link EncodedMeterRow}s. */
export class MeterRowEncoder {
  readonly #w: Writer;

  /** Room for `rows` rows of `quantities` values each (grows if more are added). */
  constructor(rows: number, quantities: number) {
    const buf = Buffer.allocUnsafeSlow(Math.max(1, rows * (2 + 20 + 12 + quantities * 8)));
    this.#w = { buf, view: viewOf(buf), pos: 0 };
  }

  /** Encodes one row; `values` must all be finite numbers or null/undefined (absent). */
  add(deviceId: string, timeMicros: number, values: readonly (number | null | undefined)[]): EncodedMeterRow {
    const w = this.#w;
    const count = values.length;
    ensure(w, 2 + 20 + 12 + count * 8);
    const start = w.pos;
    w.view.setInt16(w.pos, 2 + count);
    w.pos += 2;
    uuid(w, deviceId);
    timestamp(w, timeMicros);
    for (let i = 0; i < count; i++) float4(w, values[i] ?? null);
    // Rows keep the buffer they were written to; a later growth moves only later rows.
    return new EncodedMeterRow(deviceId, timeMicros, w.buf, start, w.pos);
  }

  /**
   * Encodes one row from meter columns: `count` values from `values[base]` on, value q
   * present when bit q of `present` is set (null otherwise). The values must be finite.
   */
  addColumns(deviceId: string, timeMicros: number, values: Float32Array, base: number, present: number, count: number): EncodedMeterRow {
    const w = this.#w;
    ensure(w, 2 + 20 + 12 + count * 8);
    const start = w.pos;
    const view = w.view;
    view.setInt16(w.pos, 2 + count);
    w.pos += 2;
    uuid(w, deviceId);
    timestamp(w, timeMicros);
    let pos = w.pos;
    for (let q = 0; q < count; q++) {
      if ((present >>> q) & 1) {
        view.setInt32(pos, 4);
        view.setFloat32(pos + 4, values[base + q]!);
        pos += 8;
      } else {
        view.setInt32(pos, -1);
        pos += 4;
      }
    }
    w.pos = pos;
    return new EncodedMeterRow(deviceId, timeMicros, w.buf, start, pos);
  }
}

/**
 * Encodes meter rows as (ord int4, device_id uuid, time timestamptz, the 25 quantities
 * real), `ord` being the row's position in `rows`; without `ord` when `withOrd` is false
 * (for a COPY straight into `flux.mg_meter_readings`). Rows already encoded
 * ({@link EncodedMeterRow}) are copied as bytes, adjacent ones in one copy.
 */
export function encodeMeterCopy(rows: readonly MeterRow[], withOrd = true): Buffer {
  let capacity = 0;
  for (let ord = 0; ord < rows.length; ord++) {
    const row = rows[ord]!;
    capacity += row instanceof EncodedMeterRow ? row.byteLength + 8 : 2 + 8 + 20 + 12 + row.values.length * 8;
  }
  const w = start(capacity);
  let run: { block: Buffer; start: number; end: number } | undefined;
  const flush = () => {
    if (!run) return;
    w.pos += run.block.copy(w.buf, w.pos, run.start, run.end);
    run = undefined;
  };
  for (let ord = 0; ord < rows.length; ord++) {
    const row = rows[ord]!;
    if (row instanceof EncodedMeterRow) {
      if (!withOrd) {
        const span = row.span;
        if (run && run.block === span.block && run.end === span.start) run.end = span.end;
        else {
          flush();
          run = span;
        }
      } else {
        w.pos = row.copyTo(w.buf, w.pos, ord);
      }
      continue;
    }
    flush();
    const values = row.values;
    ensure(w, 2 + 8 + 20 + 12 + values.length * 8);
    w.view.setInt16(w.pos, (withOrd ? 3 : 2) + values.length);
    w.pos += 2;
    if (withOrd) int4(w, ord);
    uuid(w, row.deviceId);
    timestamp(w, row.timeMicros);
    for (let i = 0; i < values.length; i++) float4(w, values[i]!);
  }
  flush();
  return finish(w);
}

/**
 * Encodes battery rows as (ord int4, device_id uuid, time timestamptz, soe real,
 * target_power real, available_inverter_blocks smallint, command_source smallint);
 * without `ord` when `withOrd` is false.
 */
export function encodeBessCopy(rows: readonly BessRow[], withOrd = true): Buffer {
  const rowBytes = 2 + 8 + 20 + 12 + 8 + 8 + 6 + 6;
  const w = start(rows.length * rowBytes);
  for (let ord = 0; ord < rows.length; ord++) {
    const row = rows[ord]!;
    ensure(w, rowBytes);
    w.view.setInt16(w.pos, withOrd ? 7 : 6);
    w.pos += 2;
    if (withOrd) int4(w, ord);
    uuid(w, row.deviceId);
    timestamp(w, row.timeMicros);
    float4(w, row.soe);
    float4(w, row.targetPower);
    int2(w, row.availableInverterBlocks);
    int2(w, row.commandSource);
  }
  return finish(w);
}
