import type { DeviceFacts } from './validation.ts';

/** Registry facts of devices, cached briefly so validation costs no query per reading. */
export interface DeviceCache {
  /** Facts of `ids` (lower-case UUIDs); unknown ids are absent. One query for those not cached. */
  get(ids: Iterable<string>): Promise<Map<string, DeviceFacts>>;
}

/** Options of {@link createDeviceCache}. */
export interface DeviceCacheOptions {
  /** Looks up ids not cached; absent from the answer means unknown. */
  readonly lookup: (ids: readonly string[]) => Promise<Map<string, DeviceFacts>>;
  /** How long an answer (known or unknown) is reused, ms. */
  readonly ttlMs: number;
  /** The clock, ms. Default `Date.now`. */
  readonly now?: () => number;
  /** Most ids kept; the cache is emptied when it would grow past this. Default 100000. */
  readonly maxEntries?: number;
}

/**
 * Creates a cache of device facts. A device registered, deactivated or changed is seen
 * by ingest within `ttlMs`.
 */
export function createDeviceCache(options: DeviceCacheOptions): DeviceCache {
  const now = options.now ?? Date.now;
  const maxEntries = options.maxEntries ?? 100_000;
  const entries = new Map<string, { facts: DeviceFacts | undefined; expires: number }>();
  return {
    async get(ids) {
      const t = now();
      const result = new Map<string, DeviceFacts>();
      const missing = new Set<string>();
      for (const id of ids) {
        const entry = entries.get(id);
        if (entry && entry.expires > t) {
          if (entry.facts) result.set(id, entry.facts);
        } else {
          missing.add(id);
        }
      }
      if (missing.size === 0) return result;
      const found = await options.lookup([...missing]);
      if (entries.size + missing.size > maxEntries) entries.clear();
      const expires = now() + options.ttlMs;
      for (const id of missing) {
        const facts = found.get(id);
        entries.set(id, { facts, expires });
        if (facts) result.set(id, facts);
      }
      return result;
    },
  };
}
