import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { applyScaleFactor, decodeRaw, encodeRaw, removeScaleFactor, scaleValue, unscaleValue } from './codec.ts';
import { CodecRangeError } from './errors.ts';
import type { PointType, WordOrder } from './point-types.ts';

interface Case {
  type: PointType;
  value: number | string;
  regs: number[];
  wordOrder?: WordOrder;
  length?: number;
}

const roundTrips: Case[] = [
  { type: 'uint16', value: 0, regs: [0] },
  { type: 'uint16', value: 65534, regs: [0xfffe] },
  { type: 'int16', value: -1, regs: [0xffff] },
  { type: 'int16', value: -32767, regs: [0x8001] },
  { type: 'int16', value: 32767, regs: [0x7fff] },
  { type: 'uint32', value: 0x12345678, regs: [0x1234, 0x5678] },
  { type: 'uint32', value: 0x12345678, regs: [0x5678, 0x1234], wordOrder: 'little' },
  { type: 'int32', value: -5000, regs: [0xffff, 0xec78] },
  { type: 'int32', value: -5000, regs: [0xec78, 0xffff], wordOrder: 'little' },
  { type: 'int32', value: 2147483647, regs: [0x7fff, 0xffff] },
  { type: 'acc32', value: 1, regs: [0, 1] },
  { type: 'acc32', value: 4294967295, regs: [0xffff, 0xffff] },
  { type: 'uint64', value: 2 ** 40 + 5, regs: [0, 0x100, 0, 5] },
  { type: 'uint64', value: 2 ** 40 + 5, regs: [5, 0, 0x100, 0], wordOrder: 'little' },
  { type: 'float32', value: 1.5, regs: [0x3fc0, 0] },
  { type: 'float32', value: -2, regs: [0, 0xc000], wordOrder: 'little' },
  { type: 'enum16', value: 3, regs: [3] },
  { type: 'bitfield16', value: 0x8001, regs: [0x8001] },
  { type: 'bitfield32', value: 0x80000001, regs: [0x8000, 1] },
  { type: 'sunssf', value: -2, regs: [0xfffe] },
  { type: 'sunssf', value: 3, regs: [3] },
  { type: 'string', value: 'SunS', regs: [0x5375, 0x6e53] },
  { type: 'string', value: 'abc', regs: [0x6162, 0x6300, 0], length: 3 },
];

const notImplemented: Array<{ type: PointType; regs: number[]; length?: number }> = [
  { type: 'uint16', regs: [0xffff] },
  { type: 'int16', regs: [0x8000] },
  { type: 'uint32', regs: [0xffff, 0xffff] },
  { type: 'int32', regs: [0x8000, 0] },
  { type: 'acc32', regs: [0, 0] },
  { type: 'uint64', regs: [0xffff, 0xffff, 0xffff, 0xffff] },
  { type: 'float32', regs: [0x7fc0, 0] },
  { type: 'enum16', regs: [0xffff] },
  { type: 'bitfield16', regs: [0xffff] },
  { type: 'bitfield32', regs: [0xffff, 0xffff] },
  { type: 'sunssf', regs: [0x8000] },
  { type: 'string', regs: [0, 0], length: 2 },
];

describe('codec', () => {
  it.each(roundTrips)('decodes $type $value from its registers ($wordOrder)', ({ type, value, regs, wordOrder, length }) => {
    const options = { wordOrder: wordOrder ?? 'big', length: length ?? regs.length };
    expect(decodeRaw(regs, 0, type, options)).toBe(value);
  });

  it.each(roundTrips)('encodes $type $value into its registers ($wordOrder)', ({ type, value, regs, wordOrder, length }) => {
    const options = { wordOrder: wordOrder ?? 'big', length: length ?? regs.length };
    expect(encodeRaw(value, type, options)).toEqual(regs);
  });

  it.each(notImplemented)('decodes the SunSpec not-implemented value of $type as unknown', ({ type, regs, length }) => {
    expect(decodeRaw(regs, 0, type, { length: length ?? regs.length })).toBeUndefined();
  });

  it.each(notImplemented)('encodes unknown $type as its not-implemented value', ({ type, regs, length }) => {
    expect(encodeRaw(undefined, type, { length: length ?? regs.length })).toEqual(regs);
  });

  it('keeps not-implemented raw values as numbers when a flat map turns detection off', () => {
    expect(decodeRaw([0xffff], 0, 'uint16', { notImplemented: false })).toBe(65535);
    expect(decodeRaw([0x8000, 0], 0, 'int32', { notImplemented: false })).toBe(-2147483648);
  });

  it('decodes a point at an offset inside a longer register block', () => {
    expect(decodeRaw([9, 9, 0xffff, 0xfc18], 2, 'int32')).toBe(-1000);
  });

  it('treats scale factors outside -10..10 as unknown', () => {
    expect(decodeRaw([11], 0, 'sunssf')).toBeUndefined();
  });

  it.each<[number, PointType]>([
    [65536, 'uint16'],
    [-1, 'uint16'],
    [32768, 'int16'],
    [2 ** 31, 'int32'],
    [-1, 'acc32'],
    [1.5, 'int16'],
  ])('refuses to encode %d as %s', (value, type) => {
    expect(() => encodeRaw(value, type)).toThrow(CodecRangeError);
  });

  it('refuses a string longer than its registers', () => {
    expect(() => encodeRaw('abcde', 'string', { length: 2 })).toThrow(CodecRangeError);
  });

  it.each<[number, number, number]>([
    [123, -1, 12.3],
    [5, 0, 5],
    [5, 3, 5000],
    [-25, -2, -0.25],
  ])('scales raw %d by 10^%d to %d', (raw, sf, value) => {
    expect(applyScaleFactor(raw, sf)).toBe(value);
    expect(removeScaleFactor(value, sf)).toBe(raw);
  });

  it('makes a value unknown when its scale factor is unknown', () => {
    expect(scaleValue(100, { usesScaleFactor: true, sf: undefined })).toBeUndefined();
    expect(scaleValue(100, { usesScaleFactor: true, sf: 1 })).toBe(1000);
  });

  it('applies fixed scales both ways', () => {
    expect(scaleValue(215, { scale: 0.1 })).toBe(21.5);
    expect(unscaleValue(21.5, 'int16', { scale: 0.1 })).toBe(215);
    expect(unscaleValue(1000, 'int32', { usesScaleFactor: true, sf: 1 })).toBe(100);
  });

  it('round-trips every int32 in both word orders', () => {
    fc.assert(
      fc.property(fc.integer({ min: -(2 ** 31) + 1, max: 2 ** 31 - 1 }), fc.constantFrom<WordOrder>('big', 'little'), (v, wordOrder) => {
        expect(decodeRaw(encodeRaw(v, 'int32', { wordOrder }), 0, 'int32', { wordOrder })).toBe(v);
      }),
    );
  });

  it('round-trips float32 values exactly representable in 32 bits', () => {
    fc.assert(
      fc.property(fc.float({ noNaN: true, noDefaultInfinity: true }), (v) => {
        expect(decodeRaw(encodeRaw(v, 'float32'), 0, 'float32')).toBe(v === 0 ? v : Math.fround(v));
      }),
    );
  });
});
