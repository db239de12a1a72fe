/**
 * The register image of a simulated SunSpec device: the `SunS` marker, the chosen models laid
 * out from their point tables (every point starts as "not implemented"), and the end marker.
 */
import { decodeRaw, encodeRaw, type PointValue } from '../modbus/codec.ts';
import { getSunSpecModel, type SunSpecPoint } from '../modbus/sunspec-models.ts';
import { ModbusServerException } from './modbus-request.ts';

/** Register address of the `SunS` marker the simulator uses (the first place clients look). */
export const SUNSPEC_BASE = 40000;

/** A SunSpec register image with typed access by model and point name. */
export interface SunSpecImage {
  readonly base: number;
  /** Registers from `base` to the end marker inclusive. */
  readonly regs: Uint16Array;
  /** Address of the `ID` register of model `id`. */
  modelAddress(id: number): number;
  /** Writes a raw (unscaled) value into a point. */
  set(modelId: number, point: string, raw: number | string | undefined): void;
  /** Reads the raw value of a point (undefined when not implemented). */
  get(modelId: number, point: string): PointValue;
  /** The point covering `address`, if any. */
  pointAt(address: number): { modelId: number; point: SunSpecPoint } | undefined;
  /** Copies `count` registers from `address`; throws exception 02 outside the image. */
  read(address: number, count: number): Uint16Array;
}

/** Builds the image of `modelIds` (in order) starting at `base` (default 40000). */
export function createSunSpecImage(modelIds: readonly number[], base = SUNSPEC_BASE): SunSpecImage {
  const models = modelIds.map((id) => getSunSpecModel(id));
  const size = 2 + models.reduce((n, m) => n + m.length + 2, 0) + 2;
  const regs = new Uint16Array(size);
  regs.set([0x5375, 0x6e53], 0);
  const starts = new Map<number, number>();
  const owners: Array<{ modelId: number; point: SunSpecPoint } | undefined> = new Array(size);
  let offset = 2;
  for (const m of models) {
    starts.set(m.id, offset);
    for (const p of m.points) {
      regs.set(encodeRaw(undefined, p.type, { length: p.size }), offset + p.offset);
      for (let i = 0; i < p.size; i++) owners[offset + p.offset + i] = { modelId: m.id, point: p };
    }
    regs[offset] = m.id;
    regs[offset + 1] = m.length;
    offset += m.length + 2;
  }
  regs[offset] = 0xffff;
  regs[offset + 1] = 0;

  const locate = (modelId: number, name: string): { at: number; point: SunSpecPoint } => {
    const start = starts.get(modelId);
    const point = getSunSpecModel(modelId).byName.get(name);
    if (start === undefined || !point) throw new Error(`image has no ${modelId}.${name}`);
    return { at: start + point.offset, point };
  };

  return {
    base,
    regs,
    modelAddress: (id) => {
      const start = starts.get(id);
      if (start === undefined) throw new Error(`image has no model ${id}`);
      return base + start;
    },
    set: (modelId, name, raw) => {
      const { at, point } = locate(modelId, name);
      regs.set(encodeRaw(raw, point.type, { length: point.size }), at);
    },
    get: (modelId, name) => {
      const { at, point } = locate(modelId, name);
      return decodeRaw(regs, at, point.type, { length: point.size });
    },
    pointAt: (address) => owners[address - base],
    read: (address, count) => {
      const from = address - base;
      if (from < 0 || from + count > size) throw new ModbusServerException(2);
      return regs.subarray(from, from + count);
    },
  };
}
