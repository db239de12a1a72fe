import { sql, type Kysely } from 'kysely';

/** Who holds a site's shard now. */
export interface ShardOwner {
  readonly shard: number;
  /** The replica holding the shard's lease; absent when none does (free, released or expired). */
  readonly replica?: string;
  /** The lease's epoch while held; 0 when no replica holds it. */
  readonly epoch: number;
}

/**
 * The current holder of each site's shard, by site, from `powerplane.shard_leases` joined
 * through `powerplane.site_shard(site, shard_count)`: one query, answered the same on any
 * replica. A lease past its `expires_at` (by the database's clock) is held by no one.
 */
export async function findShardOwners(db: Kysely<object>, sites: readonly string[]): Promise<Map<string, ShardOwner>> {
  if (sites.length === 0) return new Map();
  const { rows } = await sql<{ site: string; shard: number; owner: string | null; epoch: string }>`
    select s.site, l.shard, case when held then l.owner end as owner, case when held then l.epoch else 0 end::text as epoch
    from unnest(${[...new Set(sites)]}::text[]) s(site)
    cross join powerplane.cluster_settings c
    join powerplane.shard_leases l on l.shard = powerplane.site_shard(s.site, c.shard_count)
    cross join lateral (select l.owner is not null and l.expires_at > now() as held) h`.execute(db);
  return new Map(rows.map((r) => [r.site, { shard: r.shard, ...(r.owner !== null ? { replica: r.owner } : {}), epoch: Number(r.epoch) }]));
}
