/**
 * Changes of each battery's intended command source: `powerplane.command_source_state`
 * (the current row per battery) and `powerplane.command_source_history` (every change),
 * written together by the controller under its shard's lease.
 */
import { sql, type Kysely } from 'kysely';
import type { Fence } from '../cluster/cluster.types.ts';
import { fenceHoldsLocked } from '../cluster/fence.ts';
import type { FenceRefusals } from '../cluster/fence-refusals.ts';
import { COMMAND_SOURCE_CODES, type CommandSource } from './command-source.ts';
import type { DispatchTables } from './dispatch.table.ts';

/** A battery's intended command source, why, and who caused the change. */
export interface SourceChange {
  readonly deviceId: string;
  readonly source: CommandSource;
  readonly reason: string;
  /** What drives the battery, as a comparable key (see `control/intended-source.ts`). */
  readonly cause: string;
  readonly instructionId?: string;
  readonly principal?: string;
}

/**
 * Records changes of intended command source: each battery's current row is replaced and
 * the change appended to the history, in one statement (one round trip however many
 * batteries changed). `previous` is the source each battery had before.
 *
 * With `fence`, both tables are written only while that lease holds, checked in the same
 * statement with the lease row share-locked (`fenceHoldsLocked`), and the rows carry its
 * replica and epoch; a refused change is reported to `refusals` (logged and counted),
 * never thrown. Returns the changes applied: all of them, or none when the fence no longer
 * held. The controller writes only the batteries whose change was applied: a refused
 * change means another replica now owns the site, and the audit must never lag the battery.
 * Without a fence every change is applied and the rows carry no replica or epoch.
 */
export async function recordSourceChanges<C extends SourceChange & { previous?: CommandSource }>(
  db: Kysely<DispatchTables>,
  changes: readonly C[],
  fence?: Fence,
  refusals?: FenceRefusals,
): Promise<C[]> {
  if (changes.length === 0) return [];
  // One statement for the state and its history, with the rows as arrays: a change of a
  // 1000-battery site costs one round trip and a few parameters, not 14,000 of them, and
  // the two tables can never disagree.
  const { rows } = await sql<{ device_id: string }>`
    with input as (
      select t.*, ${fence?.replica ?? null}::text as replica, ${fence?.epoch ?? null}::int8 as epoch from unnest(
        ${changes.map((c) => c.deviceId)}::uuid[], ${changes.map((c) => COMMAND_SOURCE_CODES[c.source])}::smallint[],
        ${changes.map((c) => c.reason)}::text[], ${changes.map((c) => c.instructionId ?? null)}::uuid[],
        ${changes.map((c) => c.principal ?? null)}::text[], ${changes.map((c) => c.cause)}::text[],
        ${changes.map((c) => (c.previous ? COMMAND_SOURCE_CODES[c.previous] : null))}::smallint[]
      ) as t(device_id, source, reason, instruction_id, principal, cause, previous_source)
      where ${fence ? fenceHoldsLocked(fence) : sql`true`}
    ),
    state as (
      insert into powerplane.command_source_state (device_id, source, reason, instruction_id, principal, cause, replica, epoch)
      select device_id, source, reason, instruction_id, principal, cause, replica, epoch from input
      on conflict (device_id) do update set
        source = excluded.source, reason = excluded.reason, instruction_id = excluded.instruction_id,
        principal = excluded.principal, cause = excluded.cause, changed_at = now(),
        replica = excluded.replica, epoch = excluded.epoch
    ),
    history as (
      insert into powerplane.command_source_history (device_id, source, previous_source, reason, instruction_id, principal, replica, epoch)
      select device_id, source, previous_source, reason, instruction_id, principal, replica, epoch from input
    )
    select device_id::text from input`.execute(db);
  const applied = new Set(rows.map((r) => r.device_id));
  const refused = changes.length - applied.size;
  if (fence && refused > 0) {
    refusals?.refused('command_source_state', fence, refused);
    refusals?.refused('command_source_history', fence, refused);
  }
  return changes.filter((c) => applied.has(c.deviceId));
}
