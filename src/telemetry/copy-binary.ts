import type { BessRow, MeterRow } from './readings.ts';

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

/** Growable big-endian buffer writer. */
interface Writer {
  buf: Buffer;
  pos: number;
}

function ensure(w: Writer, bytes: number): void {
  if (w.pos + bytes <= w.buf.length) return;
  const next = Buffer.allocUnsafe(Math.max(w.buf.length * 2, w.pos + bytes));
  w.buf.copy(next, 0, 0, w.pos);
  w.buf = next;
}

function start(capacity: number): Writer {
  const w: Writer = { buf: Buffer.allocUnsafe(capacity + 21), pos: 0 };
  SIGNATURE.copy(w.buf, 0);
  w.buf.writeInt32BE(0, 11);
  w.buf.writeInt32BE(0, 15);
  w.pos = 19;
  return w;
}

function finish(w: Writer): Buffer {
  ensure(w, 2);
  w.buf.writeInt16BE(-1, w.pos);
  w.pos += 2;
  return w.buf.subarray(0, w.pos);
}

function uuid(w: Writer, id: string): void {
  let bytes = uuidBytes.get(id);
  if (!bytes) {
    if (uuidBytes.size > 100_000) uuidBytes.clear();
    bytes = Buffer.from(id.replaceAll('-', ''), 'hex');
    uuidBytes.set(id, bytes);
  }
  w.buf.writeInt32BE(16, w.pos);
  bytes.copy(w.buf, w.pos + 4);
  w.pos += 20;
}

function timestamp(w: Writer, micros: number): void {
  w.buf.writeInt32BE(8, w.pos);
  w.buf.writeBigInt64BE(BigInt(micros - PG_EPOCH_MICROS), w.pos + 4);
  w.pos += 12;
}

function int4(w: Writer, value: number): void {
  w.buf.writeInt32BE(4, w.pos);
  w.buf.writeInt32BE(value, w.pos + 4);
  w.pos += 8;
}

function float4(w: Writer, value: number | null): void {
  if (value === null) {
    w.buf.writeInt32BE(-1, w.pos);
    w.pos += 4;
    return;
  }
  w.buf.writeInt32BE(4, w.pos);
  w.buf.writeFloatBE(value, w.pos + 4);
  w.pos += 8;
}

function int2(w: Writer, value: number | null): void {
  if (value === null) {
    w.buf.writeInt32BE(-1, w.pos);
    w.pos += 4;
    return;
  }
  w.buf.writeInt32BE(2, w.pos);
  w.buf.writeInt16BE(value, w.pos + 4);
  w.pos += 6;
}

/**
 * Encodes meter rows as (ord int4, device_id uuid, time timestamptz, the 25 quantities
 * real), `ord` being the row's position in `rows`; without `ord` when `withOrd` is false
 * (for a COPY straight into `flux.mg_meter_readings`).
 */
export function encodeMeterCopy(rows: readonly MeterRow[], withOrd = true): Buffer {
  const quantities = rows[0]?.values.length ?? 0;
  const rowBytes = 2 + 8 + 20 + 12 + quantities * 8;
  const w = start(rows.length * rowBytes);
  for (let ord = 0; ord < rows.length; ord++) {
    const row = rows[ord]!;
    ensure(w, rowBytes);
    w.buf.writeInt16BE((withOrd ? 3 : 2) + row.values.length, w.pos);
    w.pos += 2;
    if (withOrd) int4(w, ord);
    uuid(w, row.deviceId);
    timestamp(w, row.timeMicros);
    for (const value of row.values) float4(w, value);
  }
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
    w.buf.writeInt16BE(withOrd ? 7 : 6, w.pos);
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
