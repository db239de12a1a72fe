import { create, fromBinary, toBinary, type MessageInitShape } from '@bufbuild/protobuf';
import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  BessReadingSchema,
  DatumReadingSchema,
  MeterReadingSchema,
  ReadingBatchSchema,
  type BessReading,
  type DatumReading,
} from '../../gen/powerplane/v1/telemetry_pb.ts';
import { InvalidArgumentError } from '../errors.ts';
import { METER_QUANTITIES } from '../storage/reading-columns.ts';
import { fromPbBatch, METER_FIELDS } from './telemetry.service.ts';
import { decodeReadingBatch } from './wire-decode.ts';

/** The reference: protobuf-es's own decoder, mapped as JSON requests are. */
const reference = (bytes: Uint8Array) => fromPbBatch(fromBinary(ReadingBatchSchema, bytes));

const UUIDS = ['9b2a4a55-0000-4000-8000-000000000001', '9B2A4A55-0000-4000-8000-000000000002', '0e7c1d2f-1111-4222-8333-444455556666'];
const deviceId = fc.oneof(fc.constantFrom(...UUIDS), fc.string({ maxLength: 40 }), fc.string({ unit: 'binary', maxLength: 12 }));
const int64 = fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n });
const int32 = fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 });
const time = fc.option(
  fc.record({
    seconds: fc.oneof(int64, fc.bigInt({ min: 1_600_000_000n, max: 1_900_000_000n })),
    nanos: fc.oneof(int32, fc.integer({ min: 0, max: 999_999_999 })),
  }),
  { nil: undefined },
);
const float = fc.float();

const meterReading = fc
  .record({
    deviceId,
    time,
    quantities: fc.array(fc.option(float, { nil: undefined }), { minLength: METER_FIELDS.length, maxLength: METER_FIELDS.length }),
  })
  .map(({ deviceId, time, quantities }) => {
    const init: Record<string, unknown> = { deviceId, time };
    METER_FIELDS.forEach((field, q) => {
      if (quantities[q] !== undefined) init[field] = quantities[q];
    });
    return create(MeterReadingSchema, init as MessageInitShape<typeof MeterReadingSchema>);
  });

const bessReading = fc
  .record({
    deviceId,
    time,
    soePercent: fc.option(float, { nil: undefined }),
    targetPowerKw: fc.option(float, { nil: undefined }),
    availableInverterBlocks: fc.option(fc.integer({ min: 0, max: 2 ** 32 - 1 }), { nil: undefined }),
    commandSource: int32,
  })
  .map((init) => create(BessReadingSchema, init as MessageInitShape<typeof BessReadingSchema>));

const names = fc.string({ maxLength: 8 });
const datumReading = fc
  .record({
    deviceId,
    sourceId: fc.string({ maxLength: 20 }),
    time,
    instantaneous: fc.dictionary(names, fc.double(), { maxKeys: 4, noNullPrototype: true }),
    accumulating: fc.dictionary(names, fc.double(), { maxKeys: 3, noNullPrototype: true }),
    status: fc.dictionary(names, fc.string({ maxLength: 10 }), { maxKeys: 3, noNullPrototype: true }),
  })
  .map((init) => create(DatumReadingSchema, init as MessageInitShape<typeof DatumReadingSchema>));

const batch = fc
  .record({
    sequence: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
    meterReadings: fc.array(meterReading, { maxLength: 30 }),
    bessReadings: fc.array(bessReading, { maxLength: 5 }),
    datumReadings: fc.array(datumReading, { maxLength: 5 }),
  })
  .map((init) => create(ReadingBatchSchema, init));

/** A field protobuf-es does not know in any of these messages, of any wire type (groups nested once). */
type Unknown = { no: number; wire: 'varint' | 'i64' | 'len' | 'i32' | 'group'; value: bigint };
const unknown = fc.record({
  no: fc.integer({ min: 30, max: 5_000 }),
  wire: fc.constantFrom<Unknown['wire']>('varint', 'i64', 'len', 'i32', 'group'),
  value: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
});

function writeUnknown(w: BinaryWriter, u: Unknown): void {
  switch (u.wire) {
    case 'varint':
      w.tag(u.no, WireType.Varint).uint64(u.value);
      break;
    case 'i64':
      w.tag(u.no, WireType.Bit64).fixed64(u.value);
      break;
    case 'len':
      w.tag(u.no, WireType.LengthDelimited).bytes(new Uint8Array(Number(u.value % 17n)).fill(0xff));
      break;
    case 'i32':
      w.tag(u.no, WireType.Bit32).fixed32(Number(u.value % 2n ** 32n));
      break;
    case 'group':
      w.tag(u.no, WireType.StartGroup)
        .tag(u.no + 1, WireType.StartGroup)
        .tag(1, WireType.Varint)
        .uint64(u.value)
        .tag(u.no + 1, WireType.EndGroup)
        .tag(u.no, WireType.EndGroup);
      break;
  }
}

/**
 * A meter reading written field by field in any order: fields repeated (the last wins),
 * the time split over several messages (merged), unknown fields between them.
 */
type MeterEntry =
  | { kind: 'id'; id: string }
  | { kind: 'time'; seconds: bigint | undefined; nanos: number | undefined }
  | { kind: 'quantity'; q: number; value: number }
  | { kind: 'unknown'; field: Unknown };
const meterEntry: fc.Arbitrary<MeterEntry> = fc.oneof(
  deviceId.map((id) => ({ kind: 'id' as const, id })),
  fc.record({
    kind: fc.constant('time' as const),
    seconds: fc.option(int64, { nil: undefined }),
    nanos: fc.option(int32, { nil: undefined }),
  }),
  fc.record({ kind: fc.constant('quantity' as const), q: fc.integer({ min: 0, max: METER_QUANTITIES.length - 1 }), value: float }),
  unknown.map((field) => ({ kind: 'unknown' as const, field })),
);

function writeMeterEntries(entries: readonly MeterEntry[]): Uint8Array {
  const w = new BinaryWriter();
  for (const e of entries) {
    if (e.kind === 'id') w.tag(1, WireType.LengthDelimited).string(e.id);
    else if (e.kind === 'quantity') w.tag(3 + e.q, WireType.Bit32).float(e.value);
    else if (e.kind === 'unknown') writeUnknown(w, e.field);
    else {
      w.tag(2, WireType.LengthDelimited).fork();
      if (e.seconds !== undefined) w.tag(1, WireType.Varint).int64(e.seconds);
      if (e.nanos !== undefined) w.tag(2, WireType.Varint).int32(e.nanos);
      w.join();
    }
  }
  return w.finish();
}

type BatchEntry =
  | { kind: 'sequence'; value: bigint }
  | { kind: 'meter'; entries: MeterEntry[] }
  | { kind: 'bess'; reading: BessReading }
  | { kind: 'datum'; reading: DatumReading }
  | { kind: 'unknown'; field: Unknown };
const batchEntries = fc.array(
  fc.oneof(
    { arbitrary: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map((value) => ({ kind: 'sequence' as const, value })), weight: 1 },
    { arbitrary: fc.array(meterEntry, { maxLength: 40 }).map((entries) => ({ kind: 'meter' as const, entries })), weight: 6 },
    { arbitrary: bessReading.map((reading) => ({ kind: 'bess' as const, reading })), weight: 1 },
    { arbitrary: datumReading.map((reading) => ({ kind: 'datum' as const, reading })), weight: 1 },
    { arbitrary: unknown.map((field) => ({ kind: 'unknown' as const, field })), weight: 1 },
  ),
  { maxLength: 25 },
);

function writeBatchEntries(entries: readonly BatchEntry[]): Uint8Array {
  const w = new BinaryWriter();
  for (const e of entries) {
    if (e.kind === 'sequence') w.tag(1, WireType.Varint).uint64(e.value);
    else if (e.kind === 'meter') w.tag(2, WireType.LengthDelimited).bytes(writeMeterEntries(e.entries));
    else if (e.kind === 'bess') w.tag(3, WireType.LengthDelimited).bytes(toBinary(BessReadingSchema, e.reading));
    else if (e.kind === 'datum') w.tag(4, WireType.LengthDelimited).bytes(toBinary(DatumReadingSchema, e.reading));
    else writeUnknown(w, e.field);
  }
  return w.finish();
}

describe('decodeReadingBatch', () => {
  it('decodes random batches as protobuf-es does', () => {
    fc.assert(
      fc.property(batch, (message) => {
        const bytes = toBinary(ReadingBatchSchema, message);
        expect(decodeReadingBatch(bytes)).toEqual(reference(bytes));
      }),
      { numRuns: 300 },
    );
  });

  it('decodes fields in any order, repeated, merged and among unknown fields as protobuf-es does', () => {
    fc.assert(
      fc.property(batchEntries, (entries) => {
        const bytes = writeBatchEntries(entries);
        expect(decodeReadingBatch(bytes)).toEqual(reference(bytes));
      }),
      { numRuns: 300 },
    );
  });

  it('reads every meter quantity into its column and bit, and leaves absent ones unset', () => {
    const values = METER_FIELDS.map((_, q) => Math.fround(q * 1.5 - 3));
    const init: Record<string, number> = {};
    METER_FIELDS.forEach((field, q) => (init[field] = values[q]!));
    const bytes = toBinary(
      ReadingBatchSchema,
      create(ReadingBatchSchema, {
        meterReadings: [create(MeterReadingSchema, { deviceId: UUIDS[0], ...init }), create(MeterReadingSchema, { deviceId: UUIDS[0] })],
      }),
    );
    const { meter } = decodeReadingBatch(bytes);
    expect(meter.count).toBe(2);
    expect([...meter.values.subarray(0, METER_QUANTITIES.length)]).toEqual(values);
    expect(meter.present[0]).toBe(2 ** METER_QUANTITIES.length - 1);
    expect(meter.present[1]).toBe(0);
    expect(meter.hasTime[0]).toBe(0);
  });

  it('keeps each distinct device id once, past the number it compares as bytes', () => {
    const ids = Array.from({ length: 100 }, (_, i) => `9b2a4a55-0000-4000-8000-${String(i).padStart(12, '0')}`);
    const readings = Array.from({ length: 300 }, (_, i) => create(MeterReadingSchema, { deviceId: ids[(i * 7) % ids.length]! }));
    const bytes = toBinary(ReadingBatchSchema, create(ReadingBatchSchema, { meterReadings: readings }));
    const { meter } = decodeReadingBatch(bytes);
    expect(new Set(meter.ids).size).toBe(meter.ids.length);
    expect(meter.ids).toHaveLength(100);
    expect(Array.from(meter.idIndex, (k) => meter.ids[k])).toEqual(readings.map((r) => r.deviceId));
  });

  it('skips a known field sent with another wire type, as unknown', () => {
    const w = new BinaryWriter();
    w.tag(2, WireType.LengthDelimited)
      .fork()
      .tag(1, WireType.LengthDelimited)
      .string(UUIDS[0]!)
      .tag(3, WireType.Varint)
      .uint32(7)
      .tag(4, WireType.Bit32)
      .float(1.5)
      .join();
    const { meter } = decodeReadingBatch(w.finish());
    expect(meter.present[0]).toBe(0b10);
    expect(meter.values[1]).toBe(1.5);
  });

  const valid = toBinary(
    ReadingBatchSchema,
    create(ReadingBatchSchema, {
      sequence: 3n,
      meterReadings: [create(MeterReadingSchema, { deviceId: UUIDS[0], frequencyHz: 50, time: { seconds: 1n } })],
    }),
  );
  it.each([
    ['cut short', valid.subarray(0, valid.length - 3), 'runs past'],
    ['a varint longer than 10 bytes', Uint8Array.from([0x08, ...new Array(11).fill(0xff), 0x01]), 'longer than 10 bytes'],
    ['a varint cut short', Uint8Array.from([0x08, 0xff]), 'ends inside a varint'],
    ['field number 0', Uint8Array.from([0x00, 0x01]), 'is not a field'],
    ['wire type 7', Uint8Array.from([0x0f, 0x01]), 'is not a field'],
    ['an end-group tag without a group', Uint8Array.from([0x0c]), 'has no group'],
    ['a group that never ends', Uint8Array.from([0x5b, 0x08, 0x01]), 'has no end'],
    ['a device id that is not UTF-8', Uint8Array.from([0x12, 0x04, 0x0a, 0x02, 0xc3, 0x28]), 'not valid UTF-8'],
    ['a length running past its reading', Uint8Array.from([0x12, 0x03, 0x0a, 0x05, 0x41, 0x42, 0x43, 0x44, 0x45]), 'runs past its message'],
  ])('refuses %s with INVALID_ARGUMENT naming the batch', (_name, bytes, reason) => {
    let caught: unknown;
    try {
      decodeReadingBatch(bytes);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(InvalidArgumentError);
    expect((caught as InvalidArgumentError).field).toBe('batch');
    expect((caught as InvalidArgumentError).message).toContain(reason);
    expect((caught as InvalidArgumentError).message).not.toMatch(/[;/?:@&=+$,#]/);
  });
});
