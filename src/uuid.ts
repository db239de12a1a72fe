import { InvalidArgumentError } from './errors.ts';

/** A UUID in its canonical text form, either case. The one pattern every id check uses. */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Whether `value` is a UUID in canonical text form (either case). */
export function isUuid(value: string): boolean {
  return UUID.test(value);
}

/** Throws INVALID_ARGUMENT naming `field` unless `value` is a UUID; returns it lower-cased. */
export function requireUuid(field: string, value: string): string {
  if (!isUuid(value)) throw new InvalidArgumentError(field, value, 'must be a UUID');
  return value.toLowerCase();
}

/** Ids already normalized: a batch names the same few devices a thousand times. */
const normalized = new Map<string, string>();

/** Lower-cases a UUID; undefined when `id` is not one. */
export function normalizeDeviceId(id: string): string | undefined {
  const known = normalized.get(id);
  if (known !== undefined) return known;
  if (!isUuid(id)) return undefined;
  const lower = id.toLowerCase();
  if (normalized.size >= 100_000) normalized.clear();
  normalized.set(id, lower);
  return lower;
}
