import { sql, type Kysely } from 'kysely';
import { deviceIdsWithin, withinSites, type SiteScope } from '../storage/site-scope.ts';
import { formatMicros, METER_QUANTITIES } from '../storage/reading-columns.ts';
import type {
  BessReadingRow,
  DatumReadingRow,
  DatumStreamRow,
  MeterAggregateRow,
  MeterReadingRow,
  SettlementRow,
} from './readings.table.ts';

type Db = Kysely<object>;

/** A half-open time range in microseconds since the epoch. */
export interface MicrosRange {
  readonly start: number;
  readonly end: number;
}

/** A keyset position: (time in microseconds, device id). */
export type TimeCursor = readonly [timeMicros: number, deviceId: string];

const TIME_US = sql.raw(`(extract(epoch from "time") * 1000000)::int8`);
const METER_COLUMNS = sql.raw(METER_QUANTITIES.map((q) => q.column).join(', '));

function ts(micros: number) {
  return sql`${formatMicros(micros)}::timestamptz`;
}

function keyset(descending: boolean, after: TimeCursor | undefined, timeColumn = sql.raw('"time"')) {
  if (!after) return sql`true`;
  return descending
    ? sql`(${timeColumn}, device_id) < (${ts(after[0])}, ${after[1]}::uuid)`
    : sql`(${timeColumn}, device_id) > (${ts(after[0])}, ${after[1]}::uuid)`;
}

/** Numbers arrive as strings (pg's int8) or bigints (PGlite); rows leave with numbers. */
function numeric<R extends { time_us?: unknown; time_b_us?: unknown }>(rows: R[]): R[] {
  for (const row of rows) {
    if (row.time_us !== undefined) row.time_us = Number(row.time_us);
    if (row.time_b_us !== undefined) row.time_b_us = Number(row.time_b_us);
  }
  return rows;
}

/**
 * Lists meter readings of `ids` in `range` by (time, device id), after `after`, at most
 * `limit`. Ids of devices outside `sites` match nothing, as unknown ids do.
 */
export async function listMeterReadings(
  db: Db,
  ids: readonly string[],
  sites: SiteScope,
  range: MicrosRange,
  descending: boolean,
  after: TimeCursor | undefined,
  limit: number,
): Promise<MeterReadingRow[]> {
  const dir = sql.raw(descending ? 'desc' : 'asc');
  const { rows } = await sql<MeterReadingRow>`
    select device_id::text as device_id, ${TIME_US} as time_us, ${METER_COLUMNS}
    from flux.mg_meter_readings
    where device_id = any(${deviceIdsWithin(ids, sites)})
      and "time" >= ${ts(range.start)} and "time" < ${ts(range.end)}
      and ${keyset(descending, after)}
    order by "time" ${dir}, device_id ${dir}
    limit ${limit}`.execute(db);
  return numeric(rows);
}

/** Lists battery readings as {@link listMeterReadings} does. */
export async function listBessReadings(
  db: Db,
  ids: readonly string[],
  sites: SiteScope,
  range: MicrosRange,
  descending: boolean,
  after: TimeCursor | undefined,
  limit: number,
): Promise<BessReadingRow[]> {
  const dir = sql.raw(descending ? 'desc' : 'asc');
  const { rows } = await sql<BessReadingRow>`
    select device_id::text as device_id, ${TIME_US} as time_us, soe, target_power, available_inverter_blocks, command_source
    from flux.mg_bess_readings
    where device_id = any(${deviceIdsWithin(ids, sites)})
      and "time" >= ${ts(range.start)} and "time" < ${ts(range.end)}
      and ${keyset(descending, after)}
    order by "time" ${dir}, device_id ${dir}
    limit ${limit}`.execute(db);
  return numeric(rows);
}

/**
 * The latest reading of each battery in `ids` (those within `sites`), or of every active
 * battery of `site` when `ids` is empty (the caller checked `site` against its binding).
 */
export async function latestBessReadings(
  db: Db,
  ids: readonly string[],
  sites: SiteScope,
  site: string | undefined,
): Promise<BessReadingRow[]> {
  const devices =
    ids.length > 0
      ? sql`select unnest(${deviceIdsWithin(ids, sites)}) as id`
      : sql`select id from flux.mg_device_registry where site = ${site ?? ''} and type = 'bess' and active is not false`;
  const { rows } = await sql<BessReadingRow>`
    select d.id::text as device_id, (extract(epoch from r."time") * 1000000)::int8 as time_us,
      r.soe, r.target_power, r.available_inverter_blocks, r.command_source
    from (${devices}) d
    cross join lateral (
      select * from flux.mg_bess_readings b where b.device_id = d.id order by b."time" desc limit 1
    ) r
    order by d.id`.execute(db);
  return numeric(rows);
}

/** 5-minute roll-ups of `ids` (those within `sites`) for buckets starting in `range`, by (bucket, device id). */
export async function listMeterAggregates(
  db: Db,
  ids: readonly string[],
  sites: SiteScope,
  range: MicrosRange,
  after: TimeCursor | undefined,
  limit: number,
): Promise<MeterAggregateRow[]> {
  const { rows } = await sql<MeterAggregateRow>`
    select * from (
      select device_id::text as device_id,
        (extract(epoch from time_b) * 1000000)::int8 as time_b_us, time_b, device_id as did,
        count(*)::int as reading_count,
        avg(frequency)::float8 as frequency_avg,
        avg(voltage_line_average)::float8 as voltage_line_average_avg,
        avg(current_phase_average)::float8 as current_phase_average_avg,
        avg(power_total_active)::float8 as power_total_active_avg,
        avg(power_total_reactive)::float8 as power_total_reactive_avg,
        avg(power_factor_total)::float8 as power_factor_total_avg,
        min(energy_imported_active)::float8 as energy_imported_active_min,
        max(energy_imported_active)::float8 as energy_imported_active_max,
        min(energy_exported_active)::float8 as energy_exported_active_min,
        max(energy_exported_active)::float8 as energy_exported_active_max
      from (
        select m.*, date_bin('5 minutes', m."time", timestamptz '2000-01-01 00:00:00+00') as time_b
        from flux.mg_meter_readings m
        where m.device_id = any(${deviceIdsWithin(ids, sites)})
          and m."time" >= date_bin('5 minutes', ${ts(range.start)}, timestamptz '2000-01-01 00:00:00+00')
          and m."time" < ${ts(range.end)} + interval '5 minutes'
      ) r
      group by time_b, device_id
    ) a
    where a.time_b >= ${ts(range.start)} and a.time_b < ${ts(range.end)}
      and ${after ? sql`(a.time_b, a.did) > (${ts(after[0])}, ${after[1]}::uuid)` : sql`true`}
    order by a.time_b, a.did
    limit ${limit}`.execute(db);
  return numeric(
    rows.map(({ time_b: _t, did: _d, ...row }: MeterAggregateRow & { time_b?: unknown; did?: unknown }) => row as MeterAggregateRow),
  );
}

/**
 * The 30-minute periods of `ids` (those within `sites`) starting in `range`, from
 * `flux.get_meter_readings_30m_status`: complete when ended by `asOfMicros` and followed
 * by a reading, else with the running deltas to the period's last reading.
 */
export async function listSettlementRows(
  db: Db,
  ids: readonly string[],
  sites: SiteScope,
  range: MicrosRange,
  asOfMicros: number,
): Promise<SettlementRow[]> {
  const { rows } = await sql<SettlementRow>`
    select device_id::text as device_id, (extract(epoch from time_b) * 1000000)::int8 as time_b_us,
      power_total_active_avg, energy_imported_active_delta, energy_exported_active_delta, complete
    from flux.get_meter_readings_30m_status(${ts(range.start)}, ${ts(range.end)}, ${deviceIdsWithin(ids, sites)}, ${ts(asOfMicros)})
    order by time_b, device_id`.execute(db);
  return numeric(rows);
}

/**
 * The datum stream of (device, source id), if any; `outsideSites` when there is one but its
 * device is not at one of `sites` (found by the same query, with the device's site).
 */
export async function findDatumStream(
  db: Db,
  deviceId: string,
  sourceId: string,
  sites: SiteScope,
): Promise<DatumStreamRow | 'outsideSites' | undefined> {
  const { rows } = await sql<DatumStreamRow & { site: string | null }>`
    select s.stream_id::text as stream_id, s.names_i, s.names_a, s.names_s, d.site
    from powerplane.datum_streams s left join flux.mg_device_registry d on d.id = s.device_id
    where s.device_id = ${deviceId}::uuid and s.source_id = ${sourceId}`.execute(db);
  const row = rows[0];
  if (!row) return undefined;
  if (!withinSites(sites, row.site)) return 'outsideSites';
  const { site: _site, ...stream } = row;
  return stream;
}

/** Readings of a datum stream in `range` by time, after `afterMicros`, at most `limit`. */
export async function listDatumReadings(
  db: Db,
  streamId: string,
  range: MicrosRange,
  descending: boolean,
  afterMicros: number | undefined,
  limit: number,
): Promise<DatumReadingRow[]> {
  const dir = sql.raw(descending ? 'desc' : 'asc');
  const after = afterMicros === undefined ? sql`true` : descending ? sql`ts < ${ts(afterMicros)}` : sql`ts > ${ts(afterMicros)}`;
  const { rows } = await sql<DatumReadingRow>`
    select (extract(epoch from ts) * 1000000)::int8 as time_us, data_i, data_a, data_s
    from powerplane.datum_readings
    where stream_id = ${streamId}::uuid and ts >= ${ts(range.start)} and ts < ${ts(range.end)} and ${after}
    order by ts ${dir}
    limit ${limit}`.execute(db);
  return numeric(rows);
}
