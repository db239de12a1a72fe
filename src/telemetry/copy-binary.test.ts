import { describe, expect, it } from 'vitest';
import { encodeBessCopy, encodeMeterCopy } from './copy-binary.ts';

describe('binary COPY encoding', () => {
  it('writes the header, one tuple per row with exact float4 bytes, and the trailer', () => {
    const buf = encodeMeterCopy([{ deviceId: '00112233-4455-6677-8899-aabbccddeeff', timeMicros: 946_684_800_000_001, values: [558.49, null] }]);
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
    const withOrd = encodeBessCopy([{ deviceId: '00112233-4455-6677-8899-aabbccddeeff', timeMicros: 0, soe: 1, targetPower: null, availableInverterBlocks: 2, commandSource: null }]);
    const without = encodeBessCopy([{ deviceId: '00112233-4455-6677-8899-aabbccddeeff', timeMicros: 0, soe: 1, targetPower: null, availableInverterBlocks: 2, commandSource: null }], false);
    expect(withOrd.readInt16BE(19)).toBe(7);
    expect(without.readInt16BE(19)).toBe(6);
    expect(withOrd.length - without.length).toBe(8);
  });
});
