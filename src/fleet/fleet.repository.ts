/**
 * The SQL of the fleet summary beyond what the control state reads: the fleet's devices,
 * the meters' latest readings, each battery's run of failed setpoints, the instructions in
 * force and how long a battery has reported its command source. Each is one set-based
 * statement whatever the fleet's size: id lists are array parameters, and per-device
 * lookups are LATERAL probes of a (device, time) index that stop at the first row.
 */
import { sql, type Kysely } from 'kysely';
import { COMMAND_SOURCE_CODES } from '../dispatch/command-source.ts';
import { toInstruction } from '../dispatch/dispatch.repository.ts';
import type { DispatchInstructionRow } from '../dispatch/dispatch.table.ts';
import type { Instruction } from '../dispatch/instruction.ts';
import type { Device } from '../registry/registered-device.ts';
import { toDevice } from '../registry/registry.repository.ts';
import type { DeviceRow } from '../registry/registry.table.ts';

type Db = Kysely<object>;

/** The sites a summary covers: every site, or these. */
export type SiteSelection = '*' | readonly string[];

function siteFilter(column: string, sites: SiteSelection) {
  return sites === '*' ? sql<boolean>`true` : sql<boolean>`${sql.ref(column)} = any(${[...sites]}::text[])`;
}

/** The active batteries and meters of the selected sites. */
export async function findFleetDevices(db: Db, sites: SiteSelection): Promise<Device[]> {
  if (sites !== '*' && sites.length === 0) return [];
  const { rows } = await sql<DeviceRow>`
    select * from flux.mg_device_registry d
    where d.type in ('bess', 'meter') and coalesce(d.active, true) and ${siteFilter('d.site', sites)}`.execute(db);
  return rows.map(toDevice);
}

/** The time of each meter's latest reading, by meter id; meters without one are absent. */
export async function findLatestMeterTimes(db: Db, meterIds: readonly string[]): Promise<Map<string, Date>> {
  if (meterIds.length === 0) return new Map();
  const { rows } = await sql<{ device_id: string; time: Date }>`
    select d.id::text as device_id, r."time" from unnest(${[...meterIds]}::uuid[]) d(id)
    cross join lateral (
      select m."time" from flux.mg_meter_readings m where m.device_id = d.id order by m."time" desc limit 1
    ) r`.execute(db);
  return new Map(rows.map((r) => [r.device_id, new Date(r.time)]));
}

/** A battery whose latest setpoint outcome is a failure, and since when it has failed. */
export interface FailureRun {
  readonly deviceId: string;
  /** The first FAILED step after the last VERIFIED one (the start of the run of failures). */
  readonly since: Date;
  /** The latest failure's time, reason and setpoint. */
  readonly at: Date;
  readonly reason: string;
  readonly targetPowerKw: number;
}

/**
 * The batteries of `ids` whose latest setpoint outcome (VERIFIED or FAILED step) is FAILED,
 * with the start of their run of failures. A setpoint planned again after a failure is not
 * an outcome: the battery stays failed until one is verified. Only failed batteries cost
 * more than one index probe.
 */
export async function findFailureRuns(db: Db, ids: readonly string[]): Promise<FailureRun[]> {
  if (ids.length === 0) return [];
  const { rows } = await sql<{ device_id: string; since: Date; at: Date; reason: string | null; target_power_kw: number }>`
    with outcome as (
      select d.id, o.at, o.reason, o.target_power_kw
      from unnest(${[...ids]}::uuid[]) d(id)
      cross join lateral (
        select e.phase, e.at, e.reason, e.target_power_kw from powerplane.setpoint_events e
        where e.device_id = d.id and e.phase in ('VERIFIED', 'FAILED') order by e.at desc, e.id desc limit 1
      ) o
      where o.phase = 'FAILED'
    )
    select o.id::text as device_id, o.at, o.reason, o.target_power_kw,
      (select min(f.at) from powerplane.setpoint_events f
       where f.device_id = o.id and f.phase = 'FAILED' and f.at > coalesce(
         (select v.at from powerplane.setpoint_events v where v.device_id = o.id and v.phase = 'VERIFIED' order by v.at desc limit 1),
         '-infinity'::timestamptz)) as since
    from outcome o`.execute(db);
  return rows.map((r) => ({
    deviceId: r.device_id,
    since: new Date(r.since),
    at: new Date(r.at),
    reason: r.reason ?? 'no reason recorded',
    targetPowerKw: r.target_power_kw,
  }));
}

/**
 * The dispatch instructions in force at `at` (not cancelled, started, not ended) for the
 * selected sites: site-wide ones of those sites and those of the batteries `batteryIds`.
 */
export async function findInstructionsInForce(
  db: Db,
  sites: SiteSelection,
  batteryIds: readonly string[],
  at: Date,
): Promise<Instruction[]> {
  if (sites !== '*' && sites.length === 0) return [];
  const target =
    sites === '*'
      ? sql<boolean>`true`
      : sql<boolean>`(i.site = any(${[...sites]}::text[]) or i.device_id = any(${[...batteryIds]}::uuid[]))`;
  const { rows } = await sql<DispatchInstructionRow>`
    select i.* from powerplane.dispatch_instructions i
    where i.cancelled_at is null and i.start_time <= ${at} and i.end_time > ${at} and ${target}`.execute(db);
  return rows.map(toInstruction);
}

/** The stored command sources that mean remote control (see `isRemote`). */
const REMOTE_CODES = [COMMAND_SOURCE_CODES.DISPATCH, COMMAND_SOURCE_CODES.MANUAL];

/** How far back {@link findReportedSince} looks for the start of a battery's reported source. */
export const REPORTED_SOURCE_LOOKBACK_MS = 3_600_000;

/**
 * For each battery, the first reading since which it has reported remote control
 * (`remote`, command source DISPATCH or MANUAL) or its own (LOCAL or FAILSAFE): the reading
 * after its last one that said otherwise (or said nothing), looked for from `from` on; the
 * first reading from `from` when none did. Batteries without readings since then are absent.
 */
export async function findReportedSince(
  db: Db,
  batteries: ReadonlyArray<{ readonly deviceId: string; readonly remote: boolean }>,
  from: Date,
): Promise<Map<string, Date>> {
  if (batteries.length === 0) return new Map();
  const { rows } = await sql<{ device_id: string; since: Date | null }>`
    select d.id::text as device_id, (
      select min(b."time") from flux.mg_bess_readings b
      where b.device_id = d.id and b."time" >= ${from} and b."time" > coalesce(
        (select c."time" from flux.mg_bess_readings c
         where c.device_id = d.id and c."time" >= ${from} and (c.command_source = any(${REMOTE_CODES}::int2[])) is distinct from d.remote
         order by c."time" desc limit 1),
        '-infinity'::timestamptz)
    ) as since
    from unnest(${batteries.map((b) => b.deviceId)}::uuid[], ${batteries.map((b) => b.remote)}::bool[]) d(id, remote)`.execute(db);
  return new Map(rows.filter((r) => r.since !== null).map((r) => [r.device_id, new Date(r.since!)]));
}
