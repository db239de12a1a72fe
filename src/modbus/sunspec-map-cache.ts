/**
 * The SunSpec model chains this process has discovered, by device: a writer made again for
 * the same battery (its shard moved away and back, a reconnection) checks the headers of
 * the models it uses instead of walking the whole chain again — two reads instead of one
 * per model. A device whose headers no longer match is discovered afresh.
 */
import { ModbusExceptionError } from './errors.ts';
import type { ModbusClient } from './modbus-client.ts';
import type { SunSpecMap, SunSpecModelInstance } from './sunspec-discovery.ts';

/** Bumped when what discovery records changes, so no entry of an older shape is used. */
const CACHE_VERSION = 1;
/** Devices remembered; past this the oldest entries are forgotten. */
export const MAX_CACHED_MAPS = 50_000;

const maps = new Map<string, SunSpecMap>();

/** The cache key of the device `deviceKey` at `endpoint` (a changed address or unit id is another device). */
export function sunSpecMapKey(deviceKey: string, endpoint: { host: string; port: number; unitId: number }): string {
  return `${CACHE_VERSION}|${deviceKey}|${endpoint.host}:${endpoint.port}|${endpoint.unitId}`;
}

/** Remembers `map` for `key`. */
export function rememberSunSpecMap(key: string, map: SunSpecMap): void {
  maps.delete(key);
  maps.set(key, map);
  if (maps.size > MAX_CACHED_MAPS) maps.delete(maps.keys().next().value!);
}

/** Forgets every remembered map (tests). */
export function forgetSunSpecMaps(): void {
  maps.clear();
}

/**
 * The map remembered for `key` when it holds every one of `models` and the device behind
 * `client` still shows their headers (id and length) where discovery found them;
 * undefined, and forgotten, when not. A map without one of `models` is never used: a
 * device updated since to offer it (a heartbeat model, say) is found only by discovery.
 * A Modbus exception on the check means another layout; connection errors and timeouts are
 * thrown, as discovery would throw them.
 */
export async function cachedSunSpecMap(client: ModbusClient, key: string, models: readonly number[]): Promise<SunSpecMap | undefined> {
  const map = maps.get(key);
  if (!map) return undefined;
  const instances = models.map((id) => map.find(id)).filter((m): m is SunSpecModelInstance => m !== undefined);
  if (instances.length !== models.length) return forget(key);
  try {
    for (const m of instances) {
      const [id, length] = await client.readHoldingRegisters(m.address, 2);
      if (id !== m.id || length !== m.length) return forget(key);
    }
  } catch (err) {
    if (err instanceof ModbusExceptionError) return forget(key);
    throw err;
  }
  return map;
}

function forget(key: string): undefined {
  maps.delete(key);
  return undefined;
}
