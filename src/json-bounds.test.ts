import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from './errors.ts';
import { checkJsonBounds, METADATA_BOUNDS, REGISTER_MAP_BOUNDS, type JsonBounds } from './json-bounds.ts';

/** `{ a: { a: ... { a: 1 } } }` with `levels` objects. */
function nested(levels: number): unknown {
  let value: unknown = 1;
  for (let i = 0; i < levels; i++) value = { a: value };
  return value;
}

const small: JsonBounds = { maxBytes: 64, maxDepth: 3, maxKeys: 4 };

describe('checkJsonBounds', () => {
  it.each([
    ['an empty object', {}],
    ['scalars of every kind', { s: 'text', n: 1.5, b: true, z: null }],
    ['exactly the deepest nesting allowed', nested(3)],
    ['arrays counted as levels', { a: [[1]] }],
    ['exactly the most keys allowed', { a: 1, b: 2, c: 3, d: 4 }],
    ['non-ASCII text and a surrogate pair', { name: 'Zürich ⚡ 🔋' }],
  ])('accepts %s', (_, value) => {
    expect(() => checkJsonBounds('metadata', value, small)).not.toThrow();
  });

  it.each([
    ['one level too deep', nested(4), 'must nest objects and arrays at most 3 levels deep (got 4)'],
    ['arrays nested too deep', { a: [[[1]]] }, 'at most 3 levels deep (got 4)'],
    ['one key too many', { a: 1, b: 2, c: 3, d: 4, e: 5 }, 'must have at most 4 keys in each object (got 5)'],
    ['too many keys in a nested object', { x: { a: 1, b: 2, c: 3, d: 4, e: 5 } }, 'at most 4 keys in each object'],
    ['too many bytes as JSON', { text: 'x'.repeat(60) }, 'must be at most 64 bytes as JSON (got 71)'],
    // 37 characters, 66 bytes.
    ['bytes counted as UTF-8, not characters', { t: 'é'.repeat(29) }, 'must be at most 64 bytes as JSON (got 66)'],
    ['a NUL in a string', { a: 'x\u0000y' }, 'must not hold the NUL character'],
    ['a NUL in a key', { 'a\u0000': 1 }, 'must not hold the NUL character'],
    ['an unpaired surrogate', { a: '\ud800' }, 'unpaired surrogates'],
    ['a number that is not finite', { a: Number.NaN }, 'must hold only finite numbers'],
  ])('refuses %s, naming the field', (_, value, message) => {
    let thrown: unknown;
    try {
      checkJsonBounds('device.metadata', value, small);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(InvalidArgumentError);
    expect((thrown as InvalidArgumentError).field).toBe('device.metadata');
    expect((thrown as Error).message).toContain(message);
    // The API's messages keep clear of the characters grpc-js leaves percent-encoded.
    expect((thrown as InvalidArgumentError).reason).not.toMatch(/[;/?:@&=+$,#]/);
  });

  it('refuses metadata nested 50 deep without recursing through all of it', () => {
    expect(() => checkJsonBounds('device.metadata', nested(50), METADATA_BOUNDS)).toThrow('at most 8 levels deep (got 9)');
    // Deep enough that following every level would overflow the stack.
    expect(() => checkJsonBounds('device.metadata', nested(200_000), METADATA_BOUNDS)).toThrow('at most 8 levels deep (got 9)');
  });

  it('lets a register map of 1000 points with every key set pass, and refuses 4 MB of metadata', () => {
    const point = (i: number) => ({
      name: `point${i}`,
      address: i,
      type: 'int16',
      scaleFactorPoint: `sf${i}`,
      unit: 'kW',
      access: 'RW',
      wordOrder: 'little',
      table: 'holding',
    });
    expect(() =>
      checkJsonBounds(
        'register_map',
        { name: 'controller', points: Array.from({ length: 1000 }, (_, i) => point(i)) },
        REGISTER_MAP_BOUNDS,
      ),
    ).not.toThrow();
    expect(() => checkJsonBounds('metadata', { blob: 'x'.repeat(3_900_000) }, METADATA_BOUNDS)).toThrow(
      'must be at most 16384 bytes as JSON',
    );
  });
});
