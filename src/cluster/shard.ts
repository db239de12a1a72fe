/**
 * Which shard a site belongs to. A site is planned as a whole (its limits couple its
 * batteries), so the site is the unit of ownership; sites map to a fixed number of shards
 * and shards are leased to replicas. The hash is FNV-1a (32-bit) of the site name's UTF-8
 * bytes: stable across processes, versions and platforms, and computed identically by
 * `powerplane.site_shard` in SQL (migration 0016).
 */

const FNV_OFFSET = 2_166_136_261;
const FNV_PRIME = 16_777_619;

/** The shard of `site` among `shardCount` shards (0 ≤ shard < shardCount). */
export function siteShard(site: string, shardCount: number): number {
  if (!Number.isInteger(shardCount) || shardCount < 1) throw new RangeError(`shardCount must be a positive integer (got ${shardCount})`);
  let h = FNV_OFFSET;
  for (const byte of new TextEncoder().encode(site)) h = Math.imul(h ^ byte, FNV_PRIME) >>> 0;
  return h % shardCount;
}
