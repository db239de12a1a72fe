import { sql, type Kysely } from 'kysely';
import type { Fence } from '../../src/cluster/cluster.types.ts';
import { siteShard } from '../../src/cluster/shard.ts';

/** The fence functions a controller takes, for a replica that holds every shard. */
export interface HeldShards {
  readonly fenceOf: (site: string) => Fence | undefined;
  readonly shardOf: (site: string) => number;
}

/**
 * Takes every shard's lease for `replica` in the database itself, for tests that run a
 * controller without a lease manager: a real lease row (epoch incremented, never
 * expiring), so fenced writes hold exactly as under a lease manager.
 */
export async function holdAllShards(db: Kysely<object>, replica = 'test-replica'): Promise<HeldShards> {
  const { rows } = await sql<{ shard: number; epoch: string; shard_count: number }>`
    update powerplane.shard_leases l set owner = ${replica}, epoch = l.epoch + 1, expires_at = 'infinity', released = false
    from powerplane.cluster_settings c
    returning l.shard, l.epoch, c.shard_count`.execute(db);
  const shardCount = rows[0]!.shard_count;
  const epochs = new Map(rows.map((r) => [r.shard, Number(r.epoch)]));
  const shardOf = (site: string) => siteShard(site, shardCount);
  return { shardOf, fenceOf: (site) => ({ replica, shard: shardOf(site), epoch: epochs.get(shardOf(site))! }) };
}
