import { sql, type Kysely, type RawBuilder } from 'kysely';

/**
 * The SQL of shard leases (`powerplane.shard_leases`, `powerplane.replicas`, migration 0016).
 * Every time here is the database's (`now()`): replicas' clocks may disagree, the
 * database's is the one they share. Every change of owner increments the shard's epoch.
 */

/** A shard this replica holds under `epoch`. */
export interface HeldLease {
  readonly shard: number;
  readonly epoch: number;
}

/** What one renewal statement found. */
export interface Renewal {
  /** The shards whose leases were extended; a held shard missing here is no longer this replica's. */
  readonly renewed: readonly number[];
  /** Replicas whose row has not expired, this one included. */
  readonly live: number;
  /** Lease rows free (never held, released) or expired: what a claim may take. */
  readonly claimable: number;
  /** How long the statement ran in the database, ms (`clock_timestamp() - statement_timestamp()`). */
  readonly dbMs: number;
}

/** A shard a claim took. */
export interface ClaimedLease extends HeldLease {
  /**
   * True when no earlier owner can still be writing: the row was never held, or its last
   * owner released it after its writers had stopped.
   */
  readonly handedOver: boolean;
  /**
   * How long the previous lease had still to run by the database's clock, ms: negative
   * when it had already expired (by as much, at most a day).
   */
  readonly remainingMs: number;
}

/** A shard to let go of, and whether its writers are known to have stopped. */
export interface Release extends HeldLease {
  /** The writers stopped: the next owner may write at once (`released = true`). */
  readonly clean: boolean;
}

const leaseInterval = (leaseMs: number) => sql`(${leaseMs}::int * interval '1 millisecond')`;

/**
 * The update that extends the leases of `held` by `leaseMs`, each only while its row still
 * names `replicaId` as owner under the same epoch and has not expired; it returns the
 * shards renewed. A stale owner's renewal therefore changes nothing.
 */
function renewalUpdate(replicaId: string, leaseMs: number, held: readonly HeldLease[]): RawBuilder<unknown> {
  return sql`
    update powerplane.shard_leases l set expires_at = now() + ${leaseInterval(leaseMs)}
    from unnest(${held.map((h) => h.shard)}::int[], ${held.map((h) => h.epoch)}::bigint[]) as o(shard, epoch)
    where l.shard = o.shard and l.epoch = o.epoch and l.owner = ${replicaId} and l.expires_at > now()
    returning l.shard`;
}

/** Renews `held` only (no heartbeat): the shards whose leases were extended. */
export async function renewShards(db: Kysely<object>, replicaId: string, leaseMs: number, held: readonly HeldLease[]): Promise<number[]> {
  const { rows } = await sql<{ shard: number }>`
    with renewed as (${renewalUpdate(replicaId, leaseMs, held)}) select shard from renewed order by shard`.execute(db);
  return rows.map((r) => r.shard);
}

/**
 * One renewal, in one statement: this replica's heartbeat (its `replicas` row, expiring
 * `leaseMs` from now), the leases of `held` (see {@link renewShards}), and housekeeping
 * for replicas that are gone: agent streams of replicas no longer live are deleted (their
 * streams ended with them) and so are replica rows expired for over an hour. It also
 * counts the live replicas and the claimable rows, which decide whether to claim or shed.
 * The counts see the rows as they were before the statement, so this replica is counted
 * apart from its own, possibly new, row.
 */
export async function heartbeatAndRenew(
  db: Kysely<object>,
  replicaId: string,
  leaseMs: number,
  held: readonly HeldLease[],
): Promise<Renewal> {
  const { rows } = await sql<{ renewed: number[]; live: number; claimable: number; db_ms: number }>`
    with heartbeat as (
      insert into powerplane.replicas as r (id, expires_at) values (${replicaId}, now() + ${leaseInterval(leaseMs)})
      on conflict (id) do update set heartbeat_at = now(), expires_at = excluded.expires_at
      returning r.id
    ), renewed as (${renewalUpdate(replicaId, leaseMs, held)}
    ), dead_streams as (
      delete from powerplane.agent_streams s
      where s.replica <> ${replicaId}
        and not exists (select 1 from powerplane.replicas r where r.id = s.replica and r.expires_at > now())
    ), long_gone as (
      delete from powerplane.replicas r where r.id <> ${replicaId} and r.expires_at < now() - interval '1 hour'
    )
    select
      array(select shard from renewed order by shard) as renewed,
      (select count(*)::int + 1 from powerplane.replicas r where r.id <> ${replicaId} and r.expires_at > now()) as live,
      (select count(*)::int from powerplane.shard_leases l where l.owner is null or l.expires_at < now()) as claimable,
      extract(epoch from clock_timestamp() - statement_timestamp())::float8 * 1000 as db_ms
  `.execute(db);
  const row = rows[0]!;
  return { renewed: row.renewed.map(Number), live: Number(row.live), claimable: Number(row.claimable), dbMs: Number(row.db_ms) };
}

/**
 * Takes up to `limit` free or expired shards for `replicaId`, lowest numbers first,
 * skipping rows another replica is claiming at the same moment (`for update skip locked`):
 * each gets `epoch + 1`, a lease of `leaseMs` and `released = false`. Returns each shard
 * with what its new owner must wait out before writing (see {@link ClaimedLease}).
 */
export async function claimShards(db: Kysely<object>, replicaId: string, leaseMs: number, limit: number): Promise<ClaimedLease[]> {
  if (limit <= 0) return [];
  const { rows } = await sql<{ shard: number; epoch: string | number; handed_over: boolean; remaining_ms: number }>`
    with candidates as (
      select shard, epoch, expires_at, released from powerplane.shard_leases
      where owner is null or expires_at < now()
      order by shard
      limit ${limit}
      for update skip locked
    )
    update powerplane.shard_leases l
    set owner = ${replicaId}, epoch = l.epoch + 1, expires_at = now() + ${leaseInterval(leaseMs)}, released = false, changed_at = now()
    from candidates c
    where l.shard = c.shard
    returning l.shard, l.epoch,
      (c.released or c.epoch = 0) as handed_over,
      case when c.expires_at > now() - interval '1 day' then extract(epoch from c.expires_at - now())::float8 * 1000 else -86400000 end
        as remaining_ms
  `.execute(db);
  return rows
    .map((r) => ({ shard: r.shard, epoch: Number(r.epoch), handedOver: r.handed_over, remainingMs: Number(r.remaining_ms) }))
    .sort((a, b) => a.shard - b.shard);
}

function releaseUpdate(replicaId: string, releases: readonly Release[]): RawBuilder<unknown> {
  // A row let go uncleanly keeps its expiry: the next owner waits out the rest of it and
  // the write guard, as after a crash.
  const shards = releases.map((r) => r.shard);
  const epochs = releases.map((r) => r.epoch);
  const clean = releases.map((r) => r.clean);
  return sql`
    update powerplane.shard_leases l set owner = null, released = o.clean, changed_at = now()
    from unnest(${shards}::int[], ${epochs}::bigint[], ${clean}::boolean[]) as o(shard, epoch, clean)
    where l.shard = o.shard and l.epoch = o.epoch and l.owner = ${replicaId}
    returning l.shard`;
}

/** Lets go of `releases`, each only while still this replica's under its epoch; returns the shards released. */
export async function releaseShards(db: Kysely<object>, replicaId: string, releases: readonly Release[]): Promise<number[]> {
  if (releases.length === 0) return [];
  const { rows } = await sql<{ shard: number }>`
    with released as (${releaseUpdate(replicaId, releases)}) select shard from released order by shard`.execute(db);
  return rows.map((r) => r.shard);
}

/** A graceful leave in one statement: releases `releases` (as {@link releaseShards}) and deletes the replica's row. */
export async function leaveReplicas(db: Kysely<object>, replicaId: string, releases: readonly Release[]): Promise<number[]> {
  const { rows } = await sql<{ shard: number }>`
    with released as (${releaseUpdate(replicaId, releases)}),
    gone as (delete from powerplane.replicas where id = ${replicaId})
    select shard from released order by shard`.execute(db);
  return rows.map((r) => r.shard);
}

/** The fleet's shard count, fixed when the lease table was filled. */
export async function readShardCount(db: Kysely<object>): Promise<number> {
  const { rows } = await sql<{ shard_count: number }>`select shard_count from powerplane.cluster_settings`.execute(db);
  if (rows.length !== 1) throw new Error('powerplane.cluster_settings holds no shard count: run powerplane migrate');
  return rows[0]!.shard_count;
}
