import { sql, type Expression, type RawBuilder } from 'kysely';
import type { Fence } from './cluster.types.ts';

/**
 * True while `fence` still holds: its replica owns the shard under the same epoch and the
 * lease has not expired (by the database's clock). Controller writes put this in their
 * own statement (`insert … select … where <fenceHolds>`, `update … where <fenceHolds>`),
 * so a replica that lost its lease, however late it learns of it, changes nothing.
 */
export function fenceHolds(fence: Fence): RawBuilder<boolean> {
  return fenceHoldsOn(sql`${fence.replica}::text`, sql`${fence.shard}::integer`, sql`${fence.epoch}::bigint`);
}

/**
 * {@link fenceHolds} of a fence held in the statement's own columns, one per row: a batch
 * whose rows were written under several shards' leases is checked row by row.
 */
export function fenceHoldsOn(replica: Expression<string | null>, shard: Expression<number | null>, epoch: Expression<number | null>) {
  return sql<boolean>`exists (
    select 1 from powerplane.shard_leases fence_lease
    where fence_lease.shard = ${shard} and fence_lease.owner = ${replica}
      and fence_lease.epoch = ${epoch} and fence_lease.expires_at > now())`;
}

/**
 * {@link fenceHolds} that also share-locks the lease row until the statement's transaction
 * ends. Without the lock a write whose snapshot predates a takeover still commits after it
 * (its check saw the old row); with it, a takeover committed meanwhile is seen (the row is
 * re-read when locked) and refuses the write, and one not yet made waits for the write to
 * commit. For writes that replace state another owner could write next (command source
 * state); one lease row per statement, so it cannot deadlock with a renewal that updates
 * many rows in its own order.
 */
export function fenceHoldsLocked(fence: Fence): RawBuilder<boolean> {
  return sql<boolean>`exists (
    select 1 from powerplane.shard_leases fence_lease
    where fence_lease.shard = ${fence.shard}::integer and fence_lease.owner = ${fence.replica}::text
      and fence_lease.epoch = ${fence.epoch}::bigint and fence_lease.expires_at > now()
    for share of fence_lease)`;
}
