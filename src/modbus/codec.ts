/**
 * The one codec of the Modbus domain: raw 16-bit registers ⇄ values for every
 * {@link PointType}, with word order, SunSpec "not implemented" detection and scaling.
 * Pure functions, no I/O; register maps and SunSpec models are data fed through here.
 */
import { CodecRangeError } from './errors.ts';
import { type PointType, type WordOrder, registerCount } from './point-types.ts';

/** A decoded value: a number, a string (type `string`) or `undefined` for unknown / not implemented. */
export type PointValue = number | string | undefined;

/** Options of {@link decodeRaw} and {@link encodeRaw}. */
export interface CodecOptions {
  /** Word order of multi-register types; default `big` (most significant word first, as SunSpec). */
  wordOrder?: WordOrder;
  /** Length in registers for `string` points; ignored for other types. */
  length?: number;
  /**
   * Whether SunSpec "not implemented" raw values (0xFFFF for uint16/enum16/bitfield16,
   * 0x8000 for int16/sunssf, 0x80000000 int32, 0xFFFFFFFF uint32/bitfield32, 0 acc32,
   * all-ones uint64, NaN float32, all-NUL string) decode to `undefined`. Default true.
   */
  notImplemented?: boolean;
}

/** Largest and smallest SunSpec scale factor exponents; values outside decode as unknown. */
export const SUNSSF_MIN = -10;
export const SUNSSF_MAX = 10;

/**
 * Reads the words of a point at `offset` as an unsigned integer (up to 64 bits, exact to
 * 2^53), honouring word order.
 */
function readUnsigned(regs: ArrayLike<number>, offset: number, words: number, order: WordOrder): number {
  let value = 0;
  for (let i = 0; i < words; i++) {
    const index = order === 'big' ? offset + i : offset + words - 1 - i;
    const word = regs[index];
    if (word === undefined) throw new CodecRangeError(`register ${index} is outside the ${regs.length} registers read`);
    value = value * 0x10000 + (word & 0xffff);
  }
  return value;
}

function splitUnsigned(value: number, words: number, order: WordOrder): number[] {
  const out = new Array<number>(words);
  let rest = value;
  for (let i = words - 1; i >= 0; i--) {
    out[i] = rest % 0x10000;
    rest = Math.floor(rest / 0x10000);
  }
  return order === 'big' ? out : out.reverse();
}

/**
 * Decodes the raw value of one point from `regs` starting at `offset`, without scaling.
 * Returns `undefined` for SunSpec not-implemented values (unless disabled), never a number
 * standing in for "unknown".
 */
export function decodeRaw(regs: ArrayLike<number>, offset: number, type: PointType, options: CodecOptions = {}): PointValue {
  const order = options.wordOrder ?? 'big';
  const ni = options.notImplemented ?? true;
  const words = registerCount(type, options.length);
  switch (type) {
    case 'uint16':
    case 'enum16':
    case 'bitfield16': {
      const v = readUnsigned(regs, offset, 1, order);
      return ni && v === 0xffff ? undefined : v;
    }
    case 'int16':
    case 'sunssf':
    case 'pad': {
      const u = readUnsigned(regs, offset, 1, order);
      if (ni && u === 0x8000) return undefined;
      const v = u >= 0x8000 ? u - 0x10000 : u;
      if (type === 'sunssf' && (v < SUNSSF_MIN || v > SUNSSF_MAX)) return undefined;
      return v;
    }
    case 'uint32':
    case 'bitfield32': {
      const v = readUnsigned(regs, offset, 2, order);
      return ni && v === 0xffffffff ? undefined : v;
    }
    case 'acc32': {
      const v = readUnsigned(regs, offset, 2, order);
      return ni && v === 0 ? undefined : v;
    }
    case 'int32': {
      const u = readUnsigned(regs, offset, 2, order);
      if (ni && u === 0x80000000) return undefined;
      return u >= 0x80000000 ? u - 0x100000000 : u;
    }
    case 'uint64': {
      const hi = readUnsigned(regs, order === 'big' ? offset : offset + 2, 2, order);
      const lo = readUnsigned(regs, order === 'big' ? offset + 2 : offset, 2, order);
      if (ni && hi === 0xffffffff && lo === 0xffffffff) return undefined;
      return hi * 0x100000000 + lo;
    }
    case 'float32': {
      const bits = readUnsigned(regs, offset, 2, order);
      const view = new DataView(new ArrayBuffer(4));
      view.setUint32(0, bits);
      const v = view.getFloat32(0);
      return Number.isNaN(v) && ni ? undefined : v;
    }
    case 'string': {
      const bytes: number[] = [];
      for (let i = 0; i < words; i++) {
        const word = readUnsigned(regs, offset + i, 1, 'big');
        bytes.push(word >> 8, word & 0xff);
      }
      const end = bytes.indexOf(0);
      const text = Buffer.from(end === -1 ? bytes : bytes.slice(0, end)).toString('latin1');
      return ni && text.length === 0 ? undefined : text;
    }
    default: {
      const never: never = type;
      throw new CodecRangeError(`unknown point type ${String(never)}`);
    }
  }
}

function checkInteger(value: number, min: number, max: number, type: PointType): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new CodecRangeError(`${value} does not fit ${type} (${min}..${max})`);
  }
  return value;
}

/**
 * Encodes a raw (already unscaled) value of `type` into registers. `undefined` encodes the
 * type's not-implemented value. Throws {@link CodecRangeError} when the value does not fit:
 * a negative power written to an `int32` point becomes two's complement, never a wrap.
 */
export function encodeRaw(value: number | string | undefined, type: PointType, options: CodecOptions = {}): number[] {
  const order = options.wordOrder ?? 'big';
  if (value === undefined) return notImplementedRegisters(type, options);
  if (type === 'string') {
    if (typeof value !== 'string') throw new CodecRangeError(`string point needs a string, got ${typeof value}`);
    const words = registerCount(type, options.length);
    const bytes = Buffer.from(value, 'latin1');
    if (bytes.length > words * 2) throw new CodecRangeError(`"${value}" is longer than ${words * 2} characters`);
    const out: number[] = [];
    for (let i = 0; i < words; i++) out.push(((bytes[2 * i] ?? 0) << 8) | (bytes[2 * i + 1] ?? 0));
    return out;
  }
  if (typeof value !== 'number' || Number.isNaN(value)) throw new CodecRangeError(`${type} point needs a number, got ${String(value)}`);
  switch (type) {
    case 'uint16':
    case 'enum16':
    case 'bitfield16':
      return [checkInteger(value, 0, 0xffff, type)];
    case 'int16':
    case 'sunssf':
    case 'pad': {
      const v = checkInteger(value, -0x8000, 0x7fff, type);
      return [v < 0 ? v + 0x10000 : v];
    }
    case 'uint32':
    case 'acc32':
    case 'bitfield32':
      return splitUnsigned(checkInteger(value, 0, 0xffffffff, type), 2, order);
    case 'int32': {
      const v = checkInteger(value, -0x80000000, 0x7fffffff, type);
      return splitUnsigned(v < 0 ? v + 0x100000000 : v, 2, order);
    }
    case 'uint64':
      return splitUnsigned(checkInteger(value, 0, Number.MAX_SAFE_INTEGER, type), 4, order);
    case 'float32': {
      if (!Number.isFinite(value)) throw new CodecRangeError(`${value} does not fit float32`);
      const view = new DataView(new ArrayBuffer(4));
      view.setFloat32(0, value);
      return splitUnsigned(view.getUint32(0), 2, order);
    }
    default: {
      const never: never = type;
      throw new CodecRangeError(`unknown point type ${String(never)}`);
    }
  }
}

/** The registers of the SunSpec not-implemented value of `type`. */
export function notImplementedRegisters(type: PointType, options: CodecOptions = {}): number[] {
  const words = registerCount(type, options.length);
  switch (type) {
    case 'uint16':
    case 'enum16':
    case 'bitfield16':
      return [0xffff];
    case 'int16':
    case 'sunssf':
    case 'pad':
      return [0x8000];
    case 'int32':
      return splitUnsigned(0x80000000, 2, options.wordOrder ?? 'big');
    case 'acc32':
      return [0, 0];
    case 'float32':
      return splitUnsigned(0x7fc00000, 2, options.wordOrder ?? 'big');
    case 'string':
      return new Array<number>(words).fill(0);
    default:
      return new Array<number>(words).fill(0xffff);
  }
}

/**
 * Applies a power-of-ten scale factor: `raw × 10^sf`. Negative exponents divide, which keeps
 * `123, -1` at exactly `12.3`.
 */
export function applyScaleFactor(raw: number, sf: number): number {
  if (sf === 0) return raw;
  return sf < 0 ? raw / 10 ** -sf : raw * 10 ** sf;
}

/** The inverse of {@link applyScaleFactor}, rounded to the nearest integer register value. */
export function removeScaleFactor(value: number, sf: number): number {
  const raw = sf < 0 ? value * 10 ** -sf : value / 10 ** sf;
  return Math.round(raw);
}

/** A point's scaling: a fixed multiplier (`scale`, default 1) or a SunSpec exponent (`sf`). */
export interface Scaling {
  /** Fixed multiplier applied after decoding, e.g. 0.1; default 1. */
  scale?: number;
  /** Power-of-ten exponent, usually read from a `*_SF` point; `undefined` scale factor makes the value unknown. */
  sf?: number | undefined;
  /** Whether the point uses a scale-factor point at all (then an unknown `sf` means an unknown value). */
  usesScaleFactor?: boolean;
}

/** Scales a decoded raw value to engineering units; unknown stays unknown, strings pass through. */
export function scaleValue(raw: PointValue, scaling: Scaling): PointValue {
  if (raw === undefined || typeof raw === 'string') return raw;
  let value = raw;
  if (scaling.usesScaleFactor) {
    if (scaling.sf === undefined) return undefined;
    value = applyScaleFactor(value, scaling.sf);
  }
  if (scaling.scale !== undefined && scaling.scale !== 1) value = roundFloat(value * scaling.scale);
  return value;
}

/** Turns an engineering value back into the raw integer (or float) to write; inverse of {@link scaleValue}. */
export function unscaleValue(value: number, type: PointType, scaling: Scaling): number {
  let raw = value;
  if (scaling.scale !== undefined && scaling.scale !== 1) raw = raw / scaling.scale;
  if (scaling.usesScaleFactor) {
    if (scaling.sf === undefined) throw new CodecRangeError('scale factor is unknown');
    raw = scaling.sf < 0 ? raw * 10 ** -scaling.sf : raw / 10 ** scaling.sf;
  }
  return type === 'float32' ? raw : Math.round(raw);
}

function roundFloat(value: number): number {
  return Number.parseFloat(value.toPrecision(12));
}
