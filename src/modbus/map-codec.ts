/**
 * Pure helpers that turn a list of points into Modbus requests and back: which register blocks
 * to read, how to decode them (scale factors resolved inside the same point set), and which
 * contiguous writes carry a set of values. Used for flat register maps and SunSpec models alike.
 */
import { type PointValue, decodeRaw, encodeRaw, scaleValue, unscaleValue } from './codec.ts';
import { CodecRangeError } from './errors.ts';
import { type PointType, type WordOrder, registerCount } from './point-types.ts';

/** The minimum a point needs to be read or written; both {@link RegisterPoint} and SunSpec points fit. */
export interface CodecPoint {
  /** Unique name inside the map; well-known names give the point a telemetry role. */
  name: string;
  /** Zero-based protocol address of the first register (0..65535). */
  address: number;
  /** Codec type of the point. */
  type: PointType;
  /** Length in registers, required for `string` points. */
  length?: number;
  /** Fixed multiplier from raw to engineering value (e.g. 0.1); default 1. */
  scale?: number;
  /** Name of a `sunssf` point in the same map holding a power-of-ten exponent. */
  scaleFactorPoint?: string;
  /** Word order of this point; default the map's. */
  wordOrder?: WordOrder;
  /** Register table: holding (function 3, default) or input (function 4, read only). */
  table?: 'holding' | 'input';
}

/** One read request: `count` registers from `address` of `table`. */
export interface ReadBlock {
  table: 'holding' | 'input';
  address: number;
  count: number;
}

/** Registers returned for a {@link ReadBlock}. */
export interface ReadResult extends ReadBlock {
  registers: ArrayLike<number>;
}

/** One write request (function 16): `values` from `address`. */
export interface WriteBlock {
  address: number;
  values: number[];
}

/** Options of the codec helpers. */
export interface PointCodecOptions {
  /** Default word order; default `big`. */
  wordOrder?: WordOrder;
  /** Whether SunSpec not-implemented values decode as unknown; default true. */
  notImplemented?: boolean;
}

/**
 * Groups points into as few reads as possible: at most `maxRegisters` (default 125, the
 * Modbus limit) per read, bridging gaps of up to `maxGap` registers (default 16).
 */
export function planReads(points: readonly CodecPoint[], maxRegisters = 125, maxGap = 16): ReadBlock[] {
  const blocks: ReadBlock[] = [];
  for (const table of ['holding', 'input'] as const) {
    const sorted = points.filter((p) => (p.table ?? 'holding') === table).sort((a, b) => a.address - b.address);
    let current: ReadBlock | undefined;
    for (const p of sorted) {
      const end = p.address + registerCount(p.type, p.length);
      if (current && p.address <= current.address + current.count + maxGap && end - current.address <= maxRegisters) {
        current.count = Math.max(current.count, end - current.address);
      } else {
        current = { table, address: p.address, count: end - p.address };
        blocks.push(current);
      }
    }
  }
  return blocks;
}

function findRegisters(results: readonly ReadResult[], p: CodecPoint): { regs: ArrayLike<number>; offset: number } | undefined {
  const table = p.table ?? 'holding';
  const count = registerCount(p.type, p.length);
  for (const r of results) {
    if (r.table === table && p.address >= r.address && p.address + count <= r.address + r.registers.length) {
      return { regs: r.registers, offset: p.address - r.address };
    }
  }
  return undefined;
}

/**
 * Decodes `points` from read results into engineering values keyed by point name. Scale-factor
 * points are decoded first; a value whose scale factor is unknown (or was not read) is
 * unknown. Points not covered by the results are unknown.
 */
export function decodePoints(
  points: readonly CodecPoint[],
  results: readonly ReadResult[],
  options: PointCodecOptions = {},
): Record<string, PointValue> {
  const raw: Record<string, PointValue> = {};
  for (const p of points) {
    const at = findRegisters(results, p);
    raw[p.name] = at
      ? decodeRaw(at.regs, at.offset, p.type, {
          wordOrder: p.wordOrder ?? options.wordOrder ?? 'big',
          length: p.length ?? 1,
          notImplemented: options.notImplemented ?? true,
        })
      : undefined;
  }
  const out: Record<string, PointValue> = {};
  for (const p of points) {
    const sf = p.scaleFactorPoint === undefined ? undefined : raw[p.scaleFactorPoint];
    out[p.name] = scaleValue(raw[p.name], {
      ...(p.scale === undefined ? {} : { scale: p.scale }),
      usesScaleFactor: p.scaleFactorPoint !== undefined,
      sf: typeof sf === 'number' ? sf : undefined,
    });
  }
  return out;
}

/**
 * Encodes engineering values into write requests, merging points that sit next to each other
 * into one function-16 write (so a setpoint and its heartbeat travel together). `scaleFactors`
 * gives the current value of each scale-factor point used. Throws {@link CodecRangeError}
 * when a value does not fit its point.
 */
export function encodeWrites(
  points: readonly CodecPoint[],
  values: Readonly<Record<string, number | string | undefined>>,
  scaleFactors: Readonly<Record<string, number | undefined>> = {},
  options: PointCodecOptions = {},
): WriteBlock[] {
  const parts: WriteBlock[] = [];
  for (const [name, value] of Object.entries(values)) {
    const p = points.find((q) => q.name === name);
    if (!p) throw new CodecRangeError(`no point named ${name}`);
    let raw: number | string | undefined = value;
    if (typeof value === 'number') {
      const usesScaleFactor = p.scaleFactorPoint !== undefined;
      raw = unscaleValue(value, p.type, {
        ...(p.scale === undefined ? {} : { scale: p.scale }),
        usesScaleFactor,
        sf: usesScaleFactor ? scaleFactors[p.scaleFactorPoint ?? ''] : undefined,
      });
    }
    parts.push({
      address: p.address,
      values: encodeRaw(raw, p.type, { wordOrder: p.wordOrder ?? options.wordOrder ?? 'big', length: p.length ?? 1 }),
    });
  }
  parts.sort((a, b) => a.address - b.address);
  const merged: WriteBlock[] = [];
  for (const part of parts) {
    const last = merged[merged.length - 1];
    if (last && last.address + last.values.length === part.address && last.values.length + part.values.length <= 123) {
      last.values.push(...part.values);
    } else {
      merged.push({ address: part.address, values: [...part.values] });
    }
  }
  return merged;
}
