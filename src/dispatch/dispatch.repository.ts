import { randomUUID } from 'node:crypto';
import { sql, type Kysely, type RawBuilder } from 'kysely';
import { deviceWithin, type SiteScope } from '../storage/site-scope.ts';
import type { IdempotencyKeyRow } from '../storage/idempotency.ts';
import { writeWithNotice } from '../storage/write-with-notice.ts';
import type { Override } from './command-source.ts';
import type { DispatchState, Instruction, SubmitInput } from './instruction.ts';
import type { DispatchInstructionRow, DispatchTables } from './dispatch.table.ts';

export { recordSourceChanges, type SourceChange } from './source-changes.repository.ts';
export {
  findLatestSetpointEvents,
  findSetpointEventsOf,
  findSetpointEventsSince,
  latestSetpointEventId,
  insertSetpointEvents,
  type InsertedEvents,
  type InsertEventsOptions,
  type StoredSetpointRecord,
} from './setpoint-events.repository.ts';

type Db = Kysely<DispatchTables>;
const INSTRUCTIONS = 'powerplane.dispatch_instructions' as const;

/**
 * The instructions of a submit, with their ids and creation time chosen here, so the
 * response can be stored with them in one statement ({@link insertInstructions}).
 */
export function newInstructions(input: SubmitInput, principal: string, createdAt: Date): Instruction[] {
  return input.intervals.map((interval) => ({
    id: randomUUID(),
    requestId: input.requestId,
    target: input.target,
    startTime: interval.startTime!,
    endTime: interval.endTime!,
    command: interval.command!,
    priority: input.priority,
    principal,
    createdAt,
  }));
}

/**
 * Inserts `instructions` and the request's idempotency key in one statement, with `notice`
 * (a `pg_notify`) when given: all or nothing, with no transaction round trips. A key
 * already stored fails it as a unique violation, and nothing is inserted or sent.
 */
export async function insertInstructions(
  db: Db,
  instructions: readonly Instruction[],
  key: IdempotencyKeyRow,
  notice?: RawBuilder<unknown>,
): Promise<void> {
  await sql`
    with stored as (
      insert into powerplane.dispatch_instructions
        (id, request_id, site, device_id, start_time, end_time, power_kw, action, priority, principal, created_at)
      select * from unnest(
        ${instructions.map((i) => i.id)}::uuid[], ${instructions.map((i) => i.requestId)}::text[],
        ${instructions.map((i) => ('site' in i.target ? i.target.site : null))}::text[],
        ${instructions.map((i) => ('deviceId' in i.target ? i.target.deviceId : null))}::uuid[],
        ${instructions.map((i) => i.startTime)}::timestamptz[], ${instructions.map((i) => i.endTime)}::timestamptz[],
        ${instructions.map((i) => ('powerKw' in i.command ? i.command.powerKw : null))}::float8[],
        ${instructions.map((i) => ('action' in i.command ? i.command.action : null))}::text[],
        ${instructions.map((i) => i.priority)}::int4[], ${instructions.map((i) => i.principal)}::text[],
        ${instructions.map((i) => i.createdAt)}::timestamptz[]
      )
    ),
    keyed as (
      insert into powerplane.idempotency_keys (principal, method, request_id, payload_sha256, response)
      values (${key.principal}, ${key.method}, ${key.requestId}, ${key.payloadSha256}, ${key.response})
    )
    select ${notice ?? sql`null`}`.execute(db);
}

/** Finds an instruction by id. */
export async function findInstruction(db: Db, id: string): Promise<Instruction | undefined> {
  const row = await db.selectFrom(INSTRUCTIONS).selectAll().where('id', '=', id).executeTakeFirst();
  return row ? toInstruction(row) : undefined;
}

/**
 * Finds an instruction by id with the site it acts on: its own for a site-wide one, its
 * battery's for a battery one (null if that battery is gone from the registry), read in
 * the same query so judging the site costs no round trip of its own.
 */
export async function findInstructionWithSite(db: Db, id: string): Promise<{ instruction: Instruction; site: string | null } | undefined> {
  const { rows } = await sql<DispatchInstructionRow & { target_site: string | null }>`
    select i.*, coalesce(i.site, d.site) as target_site
    from powerplane.dispatch_instructions i left join flux.mg_device_registry d on d.id = i.device_id
    where i.id = ${id}::uuid`.execute(db);
  const row = rows[0];
  return row ? { instruction: toInstruction(row), site: row.target_site } : undefined;
}

/**
 * Marks an instruction cancelled by `principal` unless it already is, with `notice` sent
 * in the same statement if it was not; returns it as stored.
 */
export async function cancelInstruction(
  db: Db,
  id: string,
  reason: string,
  at: Date,
  principal: string,
  notice?: RawBuilder<unknown>,
): Promise<Instruction | undefined> {
  const cancel = db
    .updateTable(INSTRUCTIONS)
    .set({ cancelled_at: at, cancel_reason: reason, cancelled_by: principal })
    .where('id', '=', id)
    .where('cancelled_at', 'is', null);
  await writeWithNotice(db, cancel.returning('id'), notice);
  return findInstruction(db, id);
}

/** Filters of {@link listInstructions}. */
export interface InstructionFilter {
  readonly site?: string;
  readonly deviceId?: string;
  readonly state?: DispatchState;
  readonly start?: Date;
  readonly end?: Date;
}

/**
 * Lists instructions newest first, after the keyset position `after` (created_at ms, id):
 * only those acting on one of `sites` (a site-wide one of such a site, or one of a battery
 * there), so another site's instructions match nothing, as unknown ones do.
 */
export async function listInstructions(
  db: Db,
  filter: InstructionFilter,
  sites: SiteScope,
  now: Date,
  limit: number,
  after?: readonly [number, string],
): Promise<Instruction[]> {
  let query = db.selectFrom(INSTRUCTIONS).selectAll();
  if (sites !== '*') query = query.where(sql<boolean>`(site = any(${[...sites]}::text[]) or ${deviceWithin(sql.ref('device_id'), sites)})`);
  if (filter.site !== undefined) query = query.where('site', '=', filter.site);
  if (filter.deviceId !== undefined) query = query.where('device_id', '=', filter.deviceId);
  if (filter.start) query = query.where('end_time', '>', filter.start);
  if (filter.end) query = query.where('start_time', '<', filter.end);
  switch (filter.state) {
    case 'CANCELLED':
      query = query.where('cancelled_at', 'is not', null);
      break;
    case 'COMPLETED':
      query = query.where('cancelled_at', 'is', null).where('end_time', '<=', now);
      break;
    case 'ACTIVE':
      query = query.where('cancelled_at', 'is', null).where('start_time', '<=', now).where('end_time', '>', now);
      break;
    case 'PENDING':
      query = query.where('cancelled_at', 'is', null).where('start_time', '>', now);
      break;
    case undefined:
      break;
    default: {
      const unknown: never = filter.state;
      throw new Error(`unknown state ${String(unknown)}`);
    }
  }
  if (after) query = query.where((eb) => eb(eb.refTuple('created_at', 'id'), '<', eb.tuple(new Date(after[0]), after[1])));
  const rows = await query.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(limit).execute();
  return rows.map(toInstruction);
}

/**
 * Which batteries a read covers: these ids, or the active batteries of a site. By site, the
 * ids are a subquery on the registry, so the control loop's reads of a period go out
 * together instead of waiting for the registry to be listed first.
 */
export type Batteries = readonly string[] | { readonly site: string };

function batteryIds(batteries: Batteries) {
  return 'site' in batteries
    ? sql<string>`(select id from flux.mg_device_registry where site = ${batteries.site} and type = 'bess' and coalesce(active, true))`
    : sql<string>`(select unnest(${[...batteries]}::uuid[]))`;
}

const none = (batteries: Batteries) => !('site' in batteries) && batteries.length === 0;

/** Sets or replaces a battery's manual override (a released one is replaced too), with `notice` in the same statement. */
export async function upsertOverride(
  db: Db,
  o: { deviceId: string; powerKw: number; expireTime: Date; reason: string; principal: string },
  notice?: RawBuilder<unknown>,
): Promise<void> {
  const values = {
    power_kw: o.powerKw,
    expire_time: o.expireTime,
    reason: o.reason,
    principal: o.principal,
    released_at: null,
    released_by: null,
  };
  const upsert = db
    .insertInto('powerplane.control_overrides')
    .values({ device_id: o.deviceId, ...values })
    .onConflict((oc) => oc.column('device_id').doUpdateSet(values));
  await writeWithNotice(db, upsert.returning('device_id'), notice);
}

/**
 * Releases a battery's manual override: the row is kept, marked with who released it and
 * when, so the command-source history can name them; the next override replaces it.
 * `notice` is sent in the same statement if there was an override to release.
 */
export async function releaseOverride(db: Db, deviceId: string, principal: string, at: Date, notice?: RawBuilder<unknown>): Promise<void> {
  const release = db
    .updateTable('powerplane.control_overrides')
    .set({ released_at: at, released_by: principal })
    .where('device_id', '=', deviceId)
    .where('released_at', 'is', null);
  await writeWithNotice(db, release.returning('device_id'), notice);
}

/** The overrides of the given batteries, released and expired ones included (see `overrideInForce`). */
export async function findOverrides(db: Db, batteries: Batteries): Promise<Array<Override & { deviceId: string }>> {
  if (none(batteries)) return [];
  const rows = await db.selectFrom('powerplane.control_overrides').selectAll().where('device_id', 'in', batteryIds(batteries)).execute();
  return rows.map((r) => ({
    deviceId: r.device_id,
    powerKw: r.power_kw,
    expireTime: r.expire_time,
    reason: r.reason,
    principal: r.principal,
    ...(r.released_at ? { releasedAt: r.released_at } : {}),
    ...(r.released_by ? { releasedBy: r.released_by } : {}),
  }));
}

/** The intended source rows of the given batteries. */
export async function findSourceStates(db: Db, batteries: Batteries) {
  if (none(batteries)) return [];
  return db.selectFrom('powerplane.command_source_state').selectAll().where('device_id', 'in', batteryIds(batteries)).execute();
}

/** Maps an instruction row to the domain type (also for the control loop's own reads of instructions). */
export function toInstruction(row: DispatchInstructionRow): Instruction {
  return {
    id: row.id,
    requestId: row.request_id,
    target: row.site !== null ? { site: row.site } : { deviceId: row.device_id! },
    startTime: row.start_time,
    endTime: row.end_time,
    command: row.power_kw !== null ? { powerKw: row.power_kw } : { action: row.action as never },
    priority: row.priority,
    principal: row.principal,
    createdAt: row.created_at,
    ...(row.cancelled_at ? { cancelledAt: row.cancelled_at } : {}),
    ...(row.cancel_reason ? { cancelReason: row.cancel_reason } : {}),
  };
}

/** A battery's latest reading, as the planner and the state report use it. */
export interface LatestBessReading {
  device_id: string;
  time: Date;
  soe: number | null;
  target_power: number | null;
  available_inverter_blocks: number | null;
  command_source: number | null;
}

/**
 * The latest battery reading of each device: one index probe per device (LATERAL … LIMIT 1
 * on the (device_id, time) index), so the cost does not grow with the readings' history.
 */
export async function findLatestBessReadings(db: Kysely<object>, batteries: Batteries): Promise<LatestBessReading[]> {
  if (none(batteries)) return [];
  const { rows } = await sql<LatestBessReading>`
    select r.* from ${batteryIds(batteries)} as d(id)
    cross join lateral (
      select device_id, time, soe, target_power, available_inverter_blocks, command_source
      from flux.mg_bess_readings b where b.device_id = d.id order by b.time desc limit 1
    ) r`.execute(db);
  return rows;
}
