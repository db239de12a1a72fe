/**
 * The SQL of battery series (charts): readings of `flux.mg_bess_readings` averaged into
 * `date_bin` buckets, with the setpoint in force at each bucket's end taken from the
 * PLANNED steps of `powerplane.setpoint_events` (the dispatch domain's audit table, read
 * here as stored, the way ingest's tables are). Plain SQL: the same answer on PostgreSQL,
 * PGlite and TimescaleDB.
 */
import { sql, type Kysely } from 'kysely';
import { formatMicros } from '../storage/reading-columns.ts';
import { deviceIdsWithin, type SiteScope } from '../storage/site-scope.ts';

type Db = Kysely<object>;

function ts(micros: number) {
  return sql`${formatMicros(micros)}::timestamptz`;
}

/** Which batteries a series covers: the active batteries of a site, or ids (those within `sites`). */
export type SeriesBatteries = { readonly site: string } | { readonly ids: readonly string[]; readonly sites: SiteScope };

/**
 * The batteries selected, in id order: every active battery of a site, or of `ids` those
 * that name a registered battery (active or not: its history stays) at one of `sites`;
 * other ids are left out, as unknown ones are.
 */
export async function findSeriesBatteries(db: Db, selected: SeriesBatteries): Promise<string[]> {
  const { rows } = await (
    'site' in selected
      ? sql<{ id: string }>`
        select id::text as id from flux.mg_device_registry
        where site = ${selected.site} and type = 'bess' and coalesce(active, true) order by id`
      : sql<{ id: string }>`
        select id::text as id from flux.mg_device_registry
        where id = any(${deviceIdsWithin(selected.ids, selected.sites)}) and type = 'bess' order by id`
  ).execute(db);
  return rows.map((r) => r.id);
}

/**
 * The time of the first reading or planned setpoint of `ids` in [start, end), in
 * microseconds since the epoch; undefined when there is none. One index probe per battery
 * and table (the first row of each in the range), so the cost does not grow with history.
 */
export async function findFirstSeriesData(db: Db, ids: readonly string[], start: number, end: number): Promise<number | undefined> {
  const { rows } = await sql<{ first_us: string | number | bigint | null }>`
    with d(id) as (select unnest(${[...ids]}::uuid[]))
    select (extract(epoch from least(
      (select min(f."time") from d cross join lateral (
         select b."time" from flux.mg_bess_readings b
         where b.device_id = d.id and b."time" >= ${ts(start)} and b."time" < ${ts(end)}
         order by b."time" limit 1) f),
      (select min(f.at) from d cross join lateral (
         select e.at from powerplane.setpoint_events e
         where e.device_id = d.id and e.phase = 'PLANNED' and e.at >= ${ts(start)} and e.at < ${ts(end)}
         order by e.at limit 1) f)
    )) * 1000000)::int8 as first_us`.execute(db);
  const first = rows[0]?.first_us;
  return first === null || first === undefined ? undefined : Number(first);
}

/** One bucket of one battery as read. */
export interface SeriesRow {
  readonly device_id: string;
  readonly bucket_us: number;
  readonly soe: number | null;
  readonly power: number | null;
  readonly setpoint: number | null;
}

/**
 * The buckets of `ids` from `origin` (included) to `end` (excluded), `bucketMicros` wide,
 * that hold a reading or a planned setpoint, by battery and time: the readings' average SoE
 * and reported power (`target_power`, the setpoint the battery reports holding), rounded to
 * 0.001, and the last setpoint planned at or before the bucket's end (the one planned
 * before `origin` included, so a setpoint in force all along shows from the first bucket),
 * carried forward over buckets without a planned setpoint; null before the first.
 */
export async function findSeriesBuckets(
  db: Db,
  ids: readonly string[],
  origin: number,
  end: number,
  bucketMicros: number,
): Promise<SeriesRow[]> {
  const stride = sql`(${bucketMicros}::float8 * interval '1 microsecond')`;
  const idArray = sql`${[...ids]}::uuid[]`;
  const { rows } = await sql<SeriesRow>`
    with d(id) as (select unnest(${idArray})),
    readings as (
      select b.device_id, date_bin(${stride}, b."time", ${ts(origin)}) as bucket,
        round(avg(b.soe)::numeric, 3)::float8 as soe, round(avg(b.target_power)::numeric, 3)::float8 as power
      from flux.mg_bess_readings b
      where b.device_id = any(${idArray}) and b."time" >= ${ts(origin)} and b."time" < ${ts(end)}
      group by 1, 2
    ),
    planned as (
      select e.device_id, e.at, e.id, e.target_power_kw from powerplane.setpoint_events e
      where e.device_id = any(${idArray}) and e.phase = 'PLANNED' and e.at >= ${ts(origin)} and e.at < ${ts(end)}
      union all
      select d.id, p.at, p.id, p.target_power_kw from d cross join lateral (
        select e.at, e.id, e.target_power_kw from powerplane.setpoint_events e
        where e.device_id = d.id and e.phase = 'PLANNED' and e.at < ${ts(origin)}
        order by e.at desc, e.id desc limit 1) p
    ),
    binned as (
      select device_id, greatest(date_bin(${stride}, at, ${ts(origin)}), ${ts(origin)}) as bucket, at, id, target_power_kw
      from planned
    ),
    setpoints as (
      select distinct on (device_id, bucket) device_id, bucket, target_power_kw as kw
      from binned order by device_id, bucket, at desc, id desc
    ),
    keys as (select device_id, bucket from readings union select device_id, bucket from setpoints),
    joined as (
      select k.device_id, k.bucket, r.soe, r.power, s.kw,
        count(s.kw) over (partition by k.device_id order by k.bucket) as run
      from keys k
      left join readings r on r.device_id = k.device_id and r.bucket = k.bucket
      left join setpoints s on s.device_id = k.device_id and s.bucket = k.bucket
    )
    select device_id::text as device_id, (extract(epoch from bucket) * 1000000)::int8 as bucket_us, soe, power,
      first_value(kw) over (partition by device_id, run order by bucket) as setpoint
    from joined
    order by device_id, bucket`.execute(db);
  return rows.map((r) => ({ ...r, bucket_us: Number(r.bucket_us) }));
}
