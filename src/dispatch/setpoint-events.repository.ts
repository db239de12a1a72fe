/**
 * The audit table of setpoint steps, `powerplane.setpoint_events`: appended in batches by
 * the controller's recorder, each row fenced by the shard lease it was planned under, and
 * read back by id range by the other replicas (their watchers see every event) and by
 * battery for the control state.
 */
import { sql, type Kysely } from 'kysely';
import type { Fence } from '../cluster/cluster.types.ts';
import { CLUSTER_CHANNEL } from '../cluster/cluster.types.ts';
import { fenceHoldsOn } from '../cluster/fence.ts';
import type { FenceRefusals } from '../cluster/fence-refusals.ts';
import { commandSourceFromCode, COMMAND_SOURCE_CODES } from './command-source.ts';
import type { DispatchTables, SetpointEventsTable } from './dispatch.table.ts';
import type { SetpointRecord } from './setpoint-events.ts';

type Db = Kysely<DispatchTables>;

/** What {@link insertSetpointEvents} stored. */
export interface InsertedEvents {
  /** Rows inserted. */
  readonly inserted: number;
  /** Rows refused because their fence no longer held. */
  readonly refused: number;
  /**
   * The ids the inserted rows got, lowest and highest (absent when none was inserted). Rows
   * of other writers may have ids in between; `replica` tells them apart.
   */
  readonly min?: number;
  readonly max?: number;
}

/** Options of {@link insertSetpointEvents}. */
export interface InsertEventsOptions {
  /**
   * When set, the same statement NOTIFYs `{k:'events', from: notifyFrom, min, max}` on the
   * cluster channel (delivered once it commits, only when rows were inserted), so other
   * replicas fetch and publish the batch.
   */
  readonly notifyFrom?: string;
  /** Where refused rows are reported (logged and counted); they are counted in the result either way. */
  readonly refusals?: FenceRefusals;
}

/**
 * Appends setpoint events to the audit table in one statement, in the order given, with
 * the replica and epoch each carries. A record with a fence (`replica`, `shard` and
 * `epoch`) is stored only while that lease holds, checked row by row in the same
 * statement: a stale owner's events are refused, reported to `options.refusals`, never
 * thrown. A record without a fence is stored as it is.
 */
export async function insertSetpointEvents(
  db: Db,
  records: readonly SetpointRecord[],
  options: InsertEventsOptions = {},
): Promise<InsertedEvents> {
  if (records.length === 0) return { inserted: 0, refused: 0 };
  // Each row's own fence, qualified: inside the check `shard` and `epoch` would name the lease's.
  const rowFenceHolds = fenceHoldsOn(sql.ref('input.replica'), sql.ref('input.shard'), sql.ref('input.epoch'));
  // Columns as arrays (see recordSourceChanges): a 500-event batch is 14 parameters.
  const { rows } = await sql<{ inserted: number; min: string | null; max: string | null; notified: number; refused: RefusedFence[] }>`
    with input as (
      select * from unnest(
        ${records.map((r) => r.setpointId)}::uuid[], ${records.map((r) => r.deviceId)}::uuid[], ${records.map((r) => r.site)}::text[],
        ${records.map((r) => r.phase)}::text[], ${records.map((r) => r.targetPowerKw)}::float8[],
        ${records.map((r) => COMMAND_SOURCE_CODES[r.source])}::smallint[], ${records.map((r) => r.instructionId ?? null)}::uuid[],
        ${records.map((r) => r.principal ?? null)}::text[], ${records.map((r) => r.reason ?? null)}::text[],
        ${records.map((r) => r.elapsedMs)}::float8[], ${records.map((r) => r.at)}::timestamptz[],
        ${records.map((r) => r.replica ?? null)}::text[], ${records.map((r) => r.epoch ?? null)}::int8[],
        ${records.map((r) => (r.replica !== undefined && r.epoch !== undefined ? (r.shard ?? null) : null))}::int4[]
      ) with ordinality as t(setpoint_id, device_id, site, phase, target_power_kw, command_source, instruction_id, principal,
                             reason, elapsed_ms, at, replica, epoch, shard, ord)
    ),
    checked as (
      select input.*, (input.shard is null or ${rowFenceHolds}) as admitted from input
    ),
    inserted as (
      insert into powerplane.setpoint_events
        (setpoint_id, device_id, site, phase, target_power_kw, command_source, instruction_id, principal, reason, elapsed_ms, at,
         replica, epoch)
      select setpoint_id, device_id, site, phase, target_power_kw, command_source, instruction_id, principal, reason, elapsed_ms, at,
             replica, epoch
      from checked where admitted order by ord
      returning id
    ),
    range as (select count(*)::int as n, min(id) as min, max(id) as max from inserted),
    -- The NOTIFY is part of the insert's statement: delivered when, and only if, it commits.
    notified as (
      select pg_notify(${CLUSTER_CHANNEL}, json_build_object('k', 'events', 'from', ${options.notifyFrom ?? null}::text,
                                                             'min', min, 'max', max)::text)
      from range where n > 0 and ${options.notifyFrom ?? null}::text is not null
    )
    select range.n as inserted, range.min::text as min, range.max::text as max,
      (select count(*)::int from notified) as notified,
      (select coalesce(json_agg(r), '[]'::json) from (
         select replica, shard, epoch::float8 as epoch, count(*)::int as rows from checked where not admitted group by 1, 2, 3
       ) r) as refused
    from range`.execute(db);
  const row = rows[0]!;
  const refused = reportRefused(row.refused, options.refusals);
  return {
    inserted: row.inserted,
    refused,
    ...(row.min !== null && row.max !== null ? { min: Number(row.min), max: Number(row.max) } : {}),
  };
}

interface RefusedFence {
  replica: string;
  shard: number;
  epoch: number;
  rows: number;
}

function reportRefused(refused: RefusedFence[], refusals: FenceRefusals | undefined): number {
  let rows = 0;
  for (const r of refused) {
    rows += r.rows;
    const fence: Fence = { replica: r.replica, shard: r.shard, epoch: r.epoch };
    refusals?.refused('setpoint_events', fence, r.rows);
  }
  return rows;
}

/** A stored setpoint event with its id. */
export type StoredSetpointRecord = SetpointRecord & { readonly id: number };

/**
 * The events `replica` recorded with ids from `minId` to `maxId`, in id order, at most
 * `limit` of them: a replica's batch as another replica fetches it (page on from the last
 * id + 1 when `limit` were returned).
 */
export async function findSetpointEventsOf(
  db: Db,
  replica: string,
  minId: number,
  maxId: number,
  limit: number,
): Promise<StoredSetpointRecord[]> {
  const { rows } = await sql<EventRow>`
    select ${sql.raw(EVENT_COLUMNS)} from powerplane.setpoint_events e
    where e.id between ${minId}::int8 and ${maxId}::int8 and e.replica = ${replica}
    order by e.id limit ${limit}::int`.execute(db);
  return rows.map((row) => ({ id: Number(row.id), ...setpointRecordOf(row) }));
}

/**
 * Other replicas' events not yet seen by `replica`, in id order, at most `limit`: those of
 * each origin in `seen` with an id above the one given for it, and those of any other
 * origin with an id above `floor`, all above `after` (page on from the last id returned).
 * What a replica reads after it missed notices.
 */
export async function findSetpointEventsSince(
  db: Db,
  replica: string,
  seen: ReadonlyMap<string, number>,
  floor: number,
  after: number,
  limit: number,
): Promise<StoredSetpointRecord[]> {
  const lowest = Math.max(after, Math.min(floor, ...seen.values()));
  const { rows } = await sql<EventRow>`
    select ${sql.raw(EVENT_COLUMNS)} from powerplane.setpoint_events e
    left join unnest(${[...seen.keys()]}::text[], ${[...seen.values()]}::int8[]) w(origin, id) on w.origin = e.replica
    where e.id > ${lowest}::int8 and e.replica <> ${replica} and e.id > coalesce(w.id, ${floor}::int8)
    order by e.id limit ${limit}::int`.execute(db);
  return rows.map((row) => ({ id: Number(row.id), ...setpointRecordOf(row) }));
}

/** The highest setpoint event id stored, 0 when there is none. */
export async function latestSetpointEventId(db: Db): Promise<number> {
  const { rows } = await sql<{ id: string | null }>`select max(id) as id from powerplane.setpoint_events`.execute(db);
  return Number(rows[0]?.id ?? 0);
}

/**
 * The latest setpoint event of each battery: one probe of the (device, at) index per
 * battery (LATERAL … LIMIT 1), so the cost does not grow with the events' history, where
 * `distinct on` over the batteries' events sorted all of them.
 */
export async function findLatestSetpointEvents(db: Db, deviceIds: readonly string[]): Promise<SetpointRecord[]> {
  if (deviceIds.length === 0) return [];
  const { rows } = await sql<EventRow>`
    select ${sql.raw(EVENT_COLUMNS)} from (select distinct unnest(${[...deviceIds]}::uuid[]) as id) d
    cross join lateral (
      select * from powerplane.setpoint_events x where x.device_id = d.id order by x.at desc, x.id desc limit 1
    ) e`.execute(db);
  return rows.map(setpointRecordOf);
}

/**
 * The columns read (of `setpoint_events e`), with the bigints as text: the two engines
 * return int8 differently. Queries order by `e.id`, never by the text alias.
 */
const EVENT_COLUMNS = `e.id::text as id, e.setpoint_id, e.device_id, e.site, e.phase, e.target_power_kw, e.command_source,
  e.instruction_id, e.principal, e.reason, e.elapsed_ms, e.at, e.replica, e.epoch::text as epoch`;

type EventRow = Omit<SetpointEventsTable, 'id' | 'epoch' | 'replica'> & { id: string; replica: string | null; epoch: string | null };

function setpointRecordOf(e: EventRow): SetpointRecord {
  return {
    setpointId: e.setpoint_id,
    deviceId: e.device_id,
    site: e.site,
    phase: e.phase as SetpointRecord['phase'],
    targetPowerKw: e.target_power_kw,
    source: commandSourceFromCode(e.command_source) ?? 'LOCAL',
    ...(e.instruction_id ? { instructionId: e.instruction_id } : {}),
    ...(e.principal ? { principal: e.principal } : {}),
    ...(e.reason ? { reason: e.reason } : {}),
    at: new Date(e.at),
    elapsedMs: e.elapsed_ms,
    ...(e.replica !== null ? { replica: e.replica } : {}),
    ...(e.epoch !== null ? { epoch: Number(e.epoch) } : {}),
  };
}
