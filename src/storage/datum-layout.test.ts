import { describe, expect, it } from 'vitest';
import { extendNames, namesGrew, sameMaps, toArrays, toMaps } from './datum-layout.ts';

const empty = { instantaneous: {}, accumulating: {}, status: {} };

describe('datum streams', () => {
  it('appends new names in the order first seen and never reorders old ones', () => {
    const names = { i: ['b'], a: [], s: [] };
    const next = extendNames(names, [
      { ...empty, instantaneous: { c: 1, b: 2 } },
      { ...empty, instantaneous: { a: 1 }, status: { alarm: 'x' } },
    ]);
    expect(next).toEqual({ i: ['b', 'c', 'a'], a: [], s: ['alarm'] });
    expect(namesGrew(names, next)).toBe(true);
    expect(namesGrew(next, extendNames(next, [{ ...empty, instantaneous: { a: 3 } }]))).toBe(false);
  });

  it.each([
    [
      { instantaneous: { a: 1, c: 3 }, accumulating: {}, status: {} },
      { i: [1, null, 3], a: null, s: null },
    ],
    [
      { instantaneous: { a: 1 }, accumulating: { n: 7 }, status: { alarm: 'ok' } },
      { i: [1], a: [7], s: ['ok'] },
    ],
    [
      { instantaneous: { b: 2 }, accumulating: {}, status: {} },
      { i: [null, 2], a: null, s: null },
    ],
  ])('lays out %j as arrays and reads it back', (maps, arrays) => {
    const names = { i: ['a', 'b', 'c'], a: ['n'], s: ['alarm'] };
    expect(toArrays(names, maps)).toEqual(arrays);
    expect(toMaps(names, toArrays(names, maps))).toEqual(maps);
  });

  it.each([
    [{ ...empty, instantaneous: { a: 1 } }, { ...empty, instantaneous: { a: 1 } }, true],
    [{ ...empty, instantaneous: { a: 1 } }, { ...empty, instantaneous: { a: 2 } }, false],
    [{ ...empty, instantaneous: { a: 1 } }, { ...empty, instantaneous: { a: 1, b: 1 } }, false],
    [{ ...empty, status: { s: 'x' } }, { ...empty, accumulating: { s: 1 } }, false],
  ])('compares readings %j and %j: %s', (a, b, same) => {
    expect(sameMaps(a, b)).toBe(same);
  });
});
