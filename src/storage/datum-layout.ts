/**
 * Datum streams (SolarNetwork's design): a stream keeps one ordered list of property
 * names per classification, and each reading stores values in that order. Names are only
 * appended, so a value's position keeps its meaning forever.
 */

/** A reading's properties by classification. */
export interface DatumMaps {
  readonly instantaneous: Readonly<Record<string, number>>;
  readonly accumulating: Readonly<Record<string, number>>;
  readonly status: Readonly<Record<string, string>>;
}

/** A stream's property names by classification. */
export interface DatumNames {
  readonly i: readonly string[];
  readonly a: readonly string[];
  readonly s: readonly string[];
}

/** A reading's values in its stream's name order; null where the reading had none. */
export interface DatumArrays {
  readonly i: (number | null)[] | null;
  readonly a: (number | null)[] | null;
  readonly s: (string | null)[] | null;
}

/** Appends the names of `maps` that `names` lacks, in the order first seen. */
export function extendNames(names: DatumNames, maps: readonly DatumMaps[]): DatumNames {
  const add = (current: readonly string[], pick: (m: DatumMaps) => Readonly<Record<string, unknown>>) => {
    const seen = new Set(current);
    const next = [...current];
    for (const m of maps) {
      for (const name of Object.keys(pick(m))) {
        if (!seen.has(name)) {
          seen.add(name);
          next.push(name);
        }
      }
    }
    return next;
  };
  return { i: add(names.i, (m) => m.instantaneous), a: add(names.a, (m) => m.accumulating), s: add(names.s, (m) => m.status) };
}

/** True when `next` has names `names` lacks. */
export function namesGrew(names: DatumNames, next: DatumNames): boolean {
  return next.i.length !== names.i.length || next.a.length !== names.a.length || next.s.length !== names.s.length;
}

/** Lays out `maps` in the order of `names` (which must hold every name of `maps`); an empty group is null. */
export function toArrays(names: DatumNames, maps: DatumMaps): DatumArrays {
  const layout = <T>(order: readonly string[], map: Readonly<Record<string, T>>): (T | null)[] | null => {
    if (Object.keys(map).length === 0) return null;
    const values = order.map((name) => (Object.hasOwn(map, name) ? map[name]! : null));
    while (values.length > 0 && values.at(-1) === null) values.pop();
    return values;
  };
  return { i: layout(names.i, maps.instantaneous), a: layout(names.a, maps.accumulating), s: layout(names.s, maps.status) };
}

/** Reads stored arrays back into maps; nulls are absent properties. */
export function toMaps(names: DatumNames, arrays: DatumArrays): DatumMaps {
  const read = <T>(order: readonly string[], values: readonly (T | null)[] | null): Record<string, T> => {
    const map: Record<string, T> = {};
    values?.forEach((value, i) => {
      if (value !== null && order[i] !== undefined) map[order[i]!] = value;
    });
    return map;
  };
  return { instantaneous: read(names.i, arrays.i), accumulating: read(names.a, arrays.a), status: read(names.s, arrays.s) };
}

/** True when two readings hold the same properties with the same values. */
export function sameMaps(a: DatumMaps, b: DatumMaps): boolean {
  const same = (x: Readonly<Record<string, unknown>>, y: Readonly<Record<string, unknown>>) => {
    const keys = Object.keys(x);
    return keys.length === Object.keys(y).length && keys.every((k) => Object.hasOwn(y, k) && Object.is(x[k], y[k]));
  };
  return same(a.instantaneous, b.instantaneous) && same(a.accumulating, b.accumulating) && same(a.status, b.status);
}
