import { sql, type RawBuilder } from 'kysely';
import type { Fence } from './cluster.types.ts';

/**
 * True while `fence` still holds: its replica owns the shard under the same epoch and the
 * lease has not expired (by the database's clock). Controller writes put this in their
 * own statement (`insert … select … where <fenceHolds>`, `update … where <fenceHolds>`),
 * so a replica that lost its lease, however late it learns of it, changes nothing.
 */
export function fenceHolds(fence: Fence): RawBuilder<boolean> {
  return sql<boolean>`exists (
    select 1 from powerplane.shard_leases fence_lease
    where fence_lease.shard = ${fence.shard} and fence_lease.owner = ${fence.replica}
      and fence_lease.epoch = ${fence.epoch} and fence_lease.expires_at > now())`;
}
