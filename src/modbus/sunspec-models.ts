/**
 * SunSpec point tables derived from the model definitions in `./sunspec/*.json`
 * (SunSpec Alliance, Apache-2.0, see `./sunspec/LICENSE`): names, offsets, types, units,
 * scale-factor points and access — the facts, not the prose. Loaded once per process from
 * the JSON shipped with the package.
 */
import { readFileSync } from 'node:fs';
import { isPointType, registerCount, type PointType } from './point-types.ts';

/** The SunSpec models Powerplane uses: common, DER measurement, DER AC controls, storage capacity, battery, three-phase meter. */
export const SUNSPEC_MODEL_IDS = [1, 701, 704, 713, 802, 203] as const;

/** One point of a SunSpec model; `offset` counts registers from the model's `ID` register. */
export interface SunSpecPoint {
  name: string;
  offset: number;
  type: PointType;
  size: number;
  /** Name of the scale-factor point in the same model. */
  sf?: string;
  units?: string;
  access: 'R' | 'RW';
  mandatory: boolean;
  /** Enumerated or bit symbols, name → value. */
  symbols?: Readonly<Record<string, number>>;
}

/** One SunSpec model: id, name, `length` (the `L` register: registers after ID and L) and points. */
export interface SunSpecModel {
  id: number;
  name: string;
  length: number;
  points: readonly SunSpecPoint[];
  /** Points by name (group points as `Group.Point`). */
  byName: ReadonlyMap<string, SunSpecPoint>;
}

interface JsonPoint {
  name: string;
  type: string;
  size?: number;
  sf?: string | number;
  units?: string;
  access?: string;
  mandatory?: string;
  symbols?: Array<{ name: string; value: number }>;
  count?: number | string;
}
interface JsonGroup {
  name: string;
  points?: JsonPoint[];
  groups?: JsonGroup[];
  count?: number | string;
}

function flatten(group: JsonGroup, prefix: string, start: number, out: SunSpecPoint[]): number {
  let offset = start;
  for (const p of group.points ?? []) {
    const type = p.type === 'acc64' ? 'uint64' : p.type;
    if (!isPointType(type)) throw new Error(`SunSpec point ${prefix}${p.name} has unsupported type ${p.type}`);
    const size = p.size ?? registerCount(type);
    const point: SunSpecPoint = {
      name: `${prefix}${p.name}`,
      offset,
      type,
      size,
      access: p.access === 'RW' ? 'RW' : 'R',
      mandatory: p.mandatory === 'M',
    };
    if (typeof p.sf === 'string') point.sf = `${prefix && !group.points?.some((q) => q.name === p.sf) ? '' : prefix}${p.sf}`;
    if (p.units) point.units = p.units;
    if (p.symbols) point.symbols = Object.freeze(Object.fromEntries(p.symbols.map((s) => [s.name, s.value])));
    out.push(point);
    offset += size;
  }
  for (const g of group.groups ?? []) {
    const count = typeof g.count === 'number' ? g.count : 1;
    for (let i = 0; i < count; i++) {
      offset = flatten(g, count === 1 ? `${prefix}${g.name}.` : `${prefix}${g.name}[${i}].`, offset, out);
    }
  }
  return offset;
}

/** Builds a {@link SunSpecModel} from a parsed SunSpec JSON definition. */
export function modelFromJson(json: unknown): SunSpecModel {
  const def = json as { id: number; group: JsonGroup };
  if (typeof def?.id !== 'number' || typeof def.group?.name !== 'string') throw new Error('not a SunSpec model definition');
  const points: SunSpecPoint[] = [];
  const total = flatten(def.group, '', 0, points);
  return Object.freeze({
    id: def.id,
    name: def.group.name,
    length: total - 2,
    points: Object.freeze(points),
    byName: new Map(points.map((p) => [p.name, p])),
  });
}

function load(id: number): SunSpecModel {
  const url = new URL(`./sunspec/model_${id}.json`, import.meta.url);
  return modelFromJson(JSON.parse(readFileSync(url, 'utf8')));
}

/** The models of {@link SUNSPEC_MODEL_IDS}, keyed by id. */
export const SUNSPEC_MODELS: ReadonlyMap<number, SunSpecModel> = new Map(SUNSPEC_MODEL_IDS.map((id) => [id, load(id)]));

/** Returns the definition of model `id`; throws when Powerplane does not ship it. */
export function getSunSpecModel(id: number): SunSpecModel {
  const model = SUNSPEC_MODELS.get(id);
  if (!model) throw new Error(`SunSpec model ${id} is not known`);
  return model;
}

/** Returns point `name` of model `id`; throws when absent (a programming error, not device input). */
export function getSunSpecPoint(id: number, name: string): SunSpecPoint {
  const point = getSunSpecModel(id).byName.get(name);
  if (!point) throw new Error(`SunSpec model ${id} has no point ${name}`);
  return point;
}
