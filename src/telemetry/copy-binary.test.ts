import { describe, expect, it } from 'vitest';
import { EncodedMeterRow, encodeBessCopy, encodeMeterCopy, MeterRowEncoder } from './copy-binary.ts';
import type { MeterRow } from './reading-batch.ts';

describe('binary COPY encoding', () => {
  it('writes the header, one tuple per row with exact float4 bytes, and the trailer', () => {
    const buf = encodeMeterCopy([
      { deviceId: '00112233-4455-6677-8899-aabbccddeeff', timeMicros: 946_684_800_000_001, values: [558.49, null] },
    ]);
    expect(buf.subarray(0, 11).toString('latin1')).toBe('PGCOPY\n\xff\r\n\0');
    let pos = 19;
    expect(buf.readInt16BE(pos)).toBe(5);
    pos += 2;
    expect([buf.readInt32BE(pos), buf.readInt32BE(pos + 4)]).toEqual([4, 0]);
    pos += 8;
    expect(buf.readInt32BE(pos)).toBe(16);
    expect(buf.subarray(pos + 4, pos + 20).toString('hex')).toBe('00112233445566778899aabbccddeeff');
    pos += 20;
    expect(buf.readBigInt64BE(pos + 4)).toBe(1n);
    pos += 12;
    expect(buf.readFloatBE(pos + 4)).toBe(Math.fround(558.49));
    pos += 8;
    expect(buf.readInt32BE(pos)).toBe(-1);
    pos += 4;
    expect(buf.readInt16BE(pos)).toBe(-1);
    expect(buf.length).toBe(pos + 2);
  });

  it('leaves the ord column out for a COPY straight into the readings table', () => {
    const withOrd = encodeBessCopy([
      {
        deviceId: '00112233-4455-6677-8899-aabbccddeeff',
        timeMicros: 0,
        soe: 1,
        targetPower: null,
        availableInverterBlocks: 2,
        commandSource: null,
      },
    ]);
    const without = encodeBessCopy(
      [
        {
          deviceId: '00112233-4455-6677-8899-aabbccddeeff',
          timeMicros: 0,
          soe: 1,
          targetPower: null,
          availableInverterBlocks: 2,
          commandSource: null,
        },
      ],
      false,
    );
    expect(withOrd.readInt16BE(19)).toBe(7);
    expect(without.readInt16BE(19)).toBe(6);
    expect(withOrd.length - without.length).toBe(8);
  });

  it('writes timestamps before and after 2000 exactly, without BigInt', () => {
    for (const micros of [0, 946_684_799_999_999, 946_684_800_000_000, 1_700_000_000_123_456, -1]) {
      const buf = encodeMeterCopy([{ deviceId: '00112233-4455-6677-8899-aabbccddeeff', timeMicros: micros, values: [] }], false);
      expect(buf.readBigInt64BE(19 + 2 + 20 + 4)).toBe(BigInt(micros) - 946_684_800_000_000n);
    }
  });

  it('encodes rows at validation time to the same bytes, with and without ord, and decodes their values', () => {
    const plain: MeterRow[] = [
      { deviceId: '00112233-4455-6677-8899-aabbccddeeff', timeMicros: 1_700_000_000_000_001, values: [558.49, null, 3] },
      { deviceId: '00112233-4455-6677-8899-aabbccddee00', timeMicros: 946_684_000_000_000, values: [null, 1e-3, -7.25] },
      { deviceId: '00112233-4455-6677-8899-aabbccddeeff', timeMicros: 1_700_000_000_000_002, values: [1, 2, 3] },
    ];
    // Room for one row only: the encoder grows, so rows span two buffers.
    const encoder = new MeterRowEncoder(1, 3);
    const encoded = plain.map((r) => encoder.add(r.deviceId, r.timeMicros, r.values));
    expect(encoded[0]).toBeInstanceOf(EncodedMeterRow);
    expect(encoded.map((r) => r.values)).toEqual(plain.map((r) => r.values.map((v) => (v === null ? null : Math.fround(v)))));
    expect(JSON.parse(JSON.stringify(encoded[1]))).toEqual({ ...plain[1], values: [null, Math.fround(1e-3), -7.25] });
    for (const withOrd of [true, false]) {
      expect(encodeMeterCopy(encoded, withOrd).equals(encodeMeterCopy(plain, withOrd))).toBe(true);
      // Out of order, a subset and mixed with plain rows: still the same bytes.
      const mixed = [encoded[2]!, plain[0]!, encoded[1]!];
      expect(encodeMeterCopy(mixed, withOrd).equals(encodeMeterCopy([plain[2]!, plain[0]!, plain[1]!], withOrd))).toBe(true);
    }
  });

  it('encodes a row from meter columns to the same bytes as from its values, absent ones as NULL', () => {
    const values = Float32Array.from([0, 558.49, 0, -7.25, 0, 1e-3]);
    const fromColumns = new MeterRowEncoder(1, 3).addColumns(
      '00112233-4455-6677-8899-aabbccddeeff',
      1_700_000_000_000_001,
      values,
      3,
      0b101,
      3,
    );
    const fromValues = new MeterRowEncoder(1, 3).add('00112233-4455-6677-8899-aabbccddeeff', 1_700_000_000_000_001, [
      -7.25,
      null,
      Math.fround(1e-3),
    ]);
    expect(fromColumns.values).toEqual([-7.25, null, Math.fround(1e-3)]);
    expect(encodeMeterCopy([fromColumns]).equals(encodeMeterCopy([fromValues]))).toBe(true);
  });
});
