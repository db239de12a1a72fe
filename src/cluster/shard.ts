/**
 * Which shard a site belongs to. A site is planned as a whole (its limits couple its
 * batteries), so the site is the unit of ownership; sites map to a fixed number of shards
 * and shards are leased to replicas. The hash is FNV-1a (32-bit) of the site name's UTF-8
 * bytes: stable across processes, versions and platforms, and computed identically by
 * `powerplane.site_shard` in SQL (migration 0016).
 */

const FNV_OFFSET = 2_166_136_261;
const FNV_PRIME = 16_777_619;
const encoder = new TextEncoder();
/**
 * Hashes of the site names seen, since every plan asks for the shard of every site's
 * battery; emptied when it grows past {@link MAX_CACHED_SITES} (sites are far fewer).
 */
const hashes = new Map<string, number>();
const MAX_CACHED_SITES = 100_000;

/** The shard of `site` among `shardCount` shards (0 ≤ shard < shardCount). */
export function siteShard(site: string, shardCount: number): number {
  if (!Number.isInteger(shardCount) || shardCount < 1) throw new RangeError(`shardCount must be a positive integer (got ${shardCount})`);
  let h = hashes.get(site);
  if (h === undefined) {
    h = FNV_OFFSET;
    for (const byte of encoder.encode(site)) h = Math.imul(h ^ byte, FNV_PRIME) >>> 0;
    if (hashes.size >= MAX_CACHED_SITES) hashes.clear();
    hashes.set(site, h);
  }
  return h % shardCount;
}
