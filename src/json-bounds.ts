/**
 * Bounds on the free-form JSON the API stores (a device's `metadata` and `register_map`, a
 * market data point's `metadata`). Whatever is stored is later returned in listings and
 * decoded by every client: an unbounded value makes a page exceed the message limit, and a
 * deeply nested one breaks clients whose protobuf or JSON decoders recurse (a Struct costs
 * three message levels per JSON level; many decoders stop at 100). Pure.
 */
import { InvalidArgumentError } from './errors.ts';

/** The bounds one JSON field is checked against. */
export interface JsonBounds {
  /** Most bytes of the value as compact UTF-8 JSON. */
  readonly maxBytes: number;
  /** Most levels of objects and arrays, the field's own object being level 1. */
  readonly maxDepth: number;
  /** Most keys in any one object of the value. */
  readonly maxKeys: number;
}

/**
 * Bounds of free-form metadata (devices, market data points): 16 KiB as JSON, 8 levels,
 * 100 keys per object. Room for a location, firmware versions and an operator's notes;
 * anything larger belongs in a system of its own.
 */
export const METADATA_BOUNDS: JsonBounds = Object.freeze({ maxBytes: 16 * 1024, maxDepth: 8, maxKeys: 100 });

/**
 * Bounds of a custom register map: 256 KiB as JSON (room for its 1000 points with every
 * optional key of each set, about 200 bytes a point), 8 levels (a map uses 3) and 100 keys
 * per object (a point has at most 10).
 */
export const REGISTER_MAP_BOUNDS: JsonBounds = Object.freeze({ maxBytes: 256 * 1024, maxDepth: 8, maxKeys: 100 });

/** Unpaired UTF-16 surrogates: not UTF-8, refused by PostgreSQL's jsonb. */
const LONE_SURROGATE = /\p{Cs}/u;

/**
 * Throws an {@link InvalidArgumentError} naming `field` unless `value` is JSON within
 * `bounds`: finite numbers only, no NUL character or unpaired surrogate in a key or string
 * (PostgreSQL's jsonb refuses both), at most `maxDepth` levels and `maxKeys` keys per
 * object, and at most `maxBytes` serialized. Depth is checked before anything recurses
 * further, so a value nested thousands deep costs no more than one nested `maxDepth` deep.
 */
export function checkJsonBounds(field: string, value: unknown, bounds: JsonBounds): void {
  walk(field, value, 1, bounds);
  const bytes = Buffer.byteLength(JSON.stringify(value) ?? '', 'utf8');
  if (bytes > bounds.maxBytes) throw new InvalidArgumentError(field, bytes, `must be at most ${bounds.maxBytes} bytes as JSON`);
}

function walk(field: string, value: unknown, depth: number, bounds: JsonBounds): void {
  if (value === null || typeof value === 'boolean') return;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new InvalidArgumentError(field, value, 'must hold only finite numbers');
    return;
  }
  if (typeof value === 'string') {
    checkText(field, value);
    return;
  }
  if (typeof value !== 'object') throw new InvalidArgumentError(field, typeof value, 'must hold only JSON values');
  if (depth > bounds.maxDepth)
    throw new InvalidArgumentError(field, depth, `must nest objects and arrays at most ${bounds.maxDepth} levels deep`);
  if (Array.isArray(value)) {
    for (const item of value) walk(field, item, depth + 1, bounds);
    return;
  }
  const keys = Object.keys(value);
  if (keys.length > bounds.maxKeys)
    throw new InvalidArgumentError(field, keys.length, `must have at most ${bounds.maxKeys} keys in each object`);
  for (const key of keys) {
    checkText(field, key);
    walk(field, (value as Record<string, unknown>)[key], depth + 1, bounds);
  }
}

function checkText(field: string, text: string): void {
  if (text.includes('\u0000') || LONE_SURROGATE.test(text)) {
    throw new InvalidArgumentError(field, text, 'must not hold the NUL character or unpaired surrogates in its keys or strings');
  }
}
