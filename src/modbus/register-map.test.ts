import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { RegisterMapError } from './errors.ts';
import { parseRegisterMap } from './register-map.ts';
import { TESLA_POWERPACK_MAP } from './tesla-profile.ts';

const point = { name: 'power', address: 10, type: 'int32', unit: 'W', access: 'RW' };
const timeout = { name: 'timeout', address: 20, type: 'uint16', unit: 's', access: 'RW' };

describe('parseRegisterMap', () => {
  it('accepts a minimal map and applies the defaults', () => {
    expect(parseRegisterMap({ points: [{ name: 'soePercent', address: 1, type: 'uint16' }] })).toEqual({
      wordOrder: 'big',
      notImplemented: false,
      points: [{ name: 'soePercent', address: 1, type: 'uint16', access: 'R' }],
    });
  });

  it.each<[string, unknown, RegExp]>([
    ['a non-object', 42, /^map must be an object \(got 42\)/],
    ['no points', { points: [] }, /^points must be a non-empty array/],
    ['an unknown point type', { points: [{ ...point, type: 'int8' }] }, /^points\[0\]\.type must be a point type .*\(got "int8"\)/],
    [
      'an address out of range',
      { points: [{ ...point, address: 70000 }] },
      /^points\[0\]\.address must be an integer 0\.\.65535 \(got 70000\)/,
    ],
    ['a 32-bit point at the last register', { points: [{ ...point, address: 65535 }] }, /^points\[0\]\.address leaves no room/],
    ['a misspelt field', { points: [{ ...point, adress: 3 }] }, /^points\[0\]\.adress is not a known field \(got 3\)/],
    [
      'a string without length',
      { points: [{ name: 's', address: 0, type: 'string' }] },
      /^points\[0\]\.length must be an integer 1\.\.125/,
    ],
    ['a bad word order', { wordOrder: 'middle', points: [point] }, /^wordOrder must be 'big' or 'little' \(got "middle"\)/],
    ['a duplicate name', { points: [point, { ...point, address: 20 }] }, /^points\[1\]\.name is used by another point \(got "power"\)/],
    [
      'a scale factor point that is not sunssf',
      { points: [{ ...point, scaleFactorPoint: 'power' }] },
      /^points\[0\]\.scaleFactorPoint must name a sunssf point/,
    ],
    ['a zero scale', { points: [{ ...point, scale: 0 }] }, /^points\[0\]\.scale must be a finite non-zero number \(got 0\)/],
    [
      'a control power point that is read only',
      { points: [{ ...point, access: 'R' }], control: { powerPoint: 'power' } },
      /^control\.powerPoint must name a writable point \(got "power"\)/,
    ],
    [
      'a control point that does not exist',
      { points: [point], control: { powerPoint: 'nope' } },
      /^control\.powerPoint must name a point of the map \(got "nope"\)/,
    ],
    [
      'equal heartbeat values',
      { points: [point, timeout], control: { powerPoint: 'power', timeoutPoint: 'timeout', heartbeatValues: [1, 1] } },
      /^control\.heartbeatValues must be two different integers/,
    ],
    [
      'a control without a timeout point',
      { points: [point], control: { powerPoint: 'power' } },
      /^control\.timeoutPoint is required \(the device must revert on its own/,
    ],
  ])('rejects %s with the field path and value', (_what, json, message) => {
    expect(() => parseRegisterMap(json)).toThrow(RegisterMapError);
    expect(() => parseRegisterMap(json)).toThrow(message);
  });

  it('accepts a complete custom battery map (the README example) with its scale factor and control section', () => {
    const example = JSON.parse(readFileSync(new URL('../../test/fixtures/acme-bc500.register-map.json', import.meta.url), 'utf8')) as {
      control: unknown;
    };
    const map = parseRegisterMap(example);
    expect(map).toMatchObject({ name: 'acme-bc500', wordOrder: 'big', notImplemented: false, control: example.control });
    expect(map.points.find((p) => p.name === 'nominalEnergy')).toEqual({
      name: 'nominalEnergy',
      address: 105,
      type: 'uint32',
      unit: 'kWh',
      wordOrder: 'little',
      access: 'R',
    });
    expect(map.points.find((p) => p.name === 'powerSetpoint')).toMatchObject({ scaleFactorPoint: 'powerSf', access: 'RW' });
  });

  it('round-trips the built-in Tesla-style map through JSON', () => {
    expect(parseRegisterMap(JSON.parse(JSON.stringify(TESLA_POWERPACK_MAP)))).toEqual(TESLA_POWERPACK_MAP);
  });
});
