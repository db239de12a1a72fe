-- The open settlement period, given as the TimescaleDB toolkit's `interpolated_delta` gives
-- it, and whether a period is complete.
--
-- flux.get_meter_readings_30m_status takes the seed function's parameters plus `as_of`
-- (the instant taken as now) and returns its columns plus `complete`. A period's deltas
-- run from the counter interpolated at its start to the counter interpolated at its end,
-- as migration 0004 computes them. When no reading of the counter follows the period (the
-- open period, or one whose next reading has not arrived) they run instead to the
-- period's last reading: the running figure so far. Resets inside the period count from
-- zero, as everywhere else. Without a reading at or before the period's start, its start
-- cannot be interpolated and the delta stays null, whether the period is open or not.
--
-- `complete` is true when the period ended at or before `as_of`, a reading of the meter is
-- stored at or after its end, and neither delta is a running one (a following reading
-- that lacks a counter leaves the period open). A complete period's deltas are those 0004
-- gives; a reading stored late can still change them, as it always could.
--
-- flux.get_meter_readings_30m keeps the seed's signature and columns and returns the same
-- rows and values as the second function, running deltas included.
create or replace function flux.get_meter_readings_30m_status(
  start_time timestamptz default now() - '24 hours'::interval,
  end_time timestamptz default now(),
  device_ids uuid[] default null,
  as_of timestamptz default now()
)
returns table (
  time_b timestamptz,
  device_id uuid,
  power_total_active_avg double precision,
  energy_imported_active_delta double precision,
  energy_exported_active_delta double precision,
  complete boolean
)
language sql stable
as $fn$
with
buckets as (
  select gs as b
  from generate_series(
    date_bin('30 minutes', start_time - interval '1 microsecond', timestamptz '2000-01-01 00:00:00+00') + interval '30 minutes',
    end_time - interval '1 microsecond',
    interval '30 minutes') gs
),
bounds as (
  select min(b) as lo, max(b) + interval '30 minutes' as hi from buckets
),
devices as (
  select distinct m.device_id
  from flux.mg_meter_readings m
  where device_ids is null and m."time" >= start_time and m."time" < end_time
  union
  select unnest(device_ids) where device_ids is not null
),
counters as (
  select m.device_id, k.k, m."time", k.v
  from flux.mg_meter_readings m
  cross join bounds
  cross join lateral (values (1, m.energy_imported_active::float8), (2, m.energy_exported_active::float8)) k(k, v)
  where m.device_id in (select d.device_id from devices d)
    and m."time" >= bounds.lo and m."time" <= bounds.hi and k.v is not null
  union all
  select d.device_id, k.k, p."time", p.v
  from devices d
  cross join bounds
  cross join (values (1), (2)) k(k)
  cross join lateral (
    select m."time", (case k.k when 1 then m.energy_imported_active else m.energy_exported_active end)::float8 as v
    from flux.mg_meter_readings m
    where m.device_id = d.device_id and m."time" < bounds.lo
      and (case k.k when 1 then m.energy_imported_active else m.energy_exported_active end) is not null
    order by m."time" desc
    limit 1) p
  union all
  select d.device_id, k.k, p."time", p.v
  from devices d
  cross join bounds
  cross join (values (1), (2)) k(k)
  cross join lateral (
    select m."time", (case k.k when 1 then m.energy_imported_active else m.energy_exported_active end)::float8 as v
    from flux.mg_meter_readings m
    where m.device_id = d.device_id and m."time" > bounds.hi
      and (case k.k when 1 then m.energy_imported_active else m.energy_exported_active end) is not null
    order by m."time"
    limit 1) p
),
increases as (
  select c.device_id, c.k, c."time", c.v,
    case
      when lag(c.v) over w is null then 0
      when c.v >= lag(c.v) over w then c.v - lag(c.v) over w
      else c.v
    end as inc
  from counters c
  window w as (partition by c.device_id, c.k order by c."time")
),
cumulative as (
  select i.device_id, i.k, i."time" as t0,
    sum(i.inc) over (partition by i.device_id, i.k order by i."time" rows unbounded preceding) as c0
  from increases i
),
segments as (
  select c.device_id, c.k, c.t0, c.c0,
    lead(c.t0) over w as t1,
    lead(c.c0) over w as c1
  from cumulative c
  window w as (partition by c.device_id, c.k order by c.t0)
),
boundary_values as (
  select s.device_id, s.k, g.b,
    case when s.t1 is null then s.c0
      else s.c0 + (s.c1 - s.c0) * (extract(epoch from g.b - s.t0)::float8 / extract(epoch from s.t1 - s.t0)::float8)
    end as c
  from segments s
  cross join bounds
  cross join lateral generate_series(
    date_bin('30 minutes', s.t0 - interval '1 microsecond', timestamptz '2000-01-01 00:00:00+00') + interval '30 minutes',
    coalesce(s.t1 - interval '1 microsecond', s.t0),
    interval '30 minutes') g(b)
  where (s.t1 is null or date_bin('30 minutes', s.t1 - interval '1 microsecond', timestamptz '2000-01-01 00:00:00+00') >= s.t0)
    and g.b >= bounds.lo and g.b <= bounds.hi
),
deltas as (
  select s.device_id, s.k, s.b, e.c - s.c as d
  from boundary_values s
  join boundary_values e on e.device_id = s.device_id and e.k = s.k and e.b = s.b + interval '30 minutes'
),
averages as (
  select m.device_id, date_bin('30 minutes', m."time", timestamptz '2000-01-01 00:00:00+00') as b,
    avg(m.power_total_active)::float8 as p
  from flux.mg_meter_readings m
  cross join bounds
  where m.device_id in (select d.device_id from devices d) and m."time" >= bounds.lo and m."time" < bounds.hi
  group by 1, 2
),
-- The reset-corrected counter at each bucket's last reading, and the delta to it from the
-- bucket's start: the running figure of a bucket no reading follows.
last_values as (
  select distinct on (c.device_id, c.k, date_bin('30 minutes', c.t0, timestamptz '2000-01-01 00:00:00+00'))
    c.device_id, c.k, date_bin('30 minutes', c.t0, timestamptz '2000-01-01 00:00:00+00') as b, c.c0 as c
  from cumulative c
  order by c.device_id, c.k, date_bin('30 minutes', c.t0, timestamptz '2000-01-01 00:00:00+00'), c.t0 desc
),
open_deltas as (
  select l.device_id, l.k, l.b, l.c - s.c as d
  from last_values l
  join boundary_values s on s.device_id = l.device_id and s.k = l.k and s.b = l.b
),
latest as (
  select d.device_id, (select max(m."time") from flux.mg_meter_readings m where m.device_id = d.device_id) as t
  from devices d
)
select bk.b, d.device_id, a.p,
  coalesce(di.d, oi.d),
  coalesce(de.d, oe.d),
  coalesce(bk.b + interval '30 minutes' <= as_of and bk.b + interval '30 minutes' <= l.t, false)
    and not (di.d is null and oi.d is not null) and not (de.d is null and oe.d is not null)
from buckets bk
cross join devices d
join latest l on l.device_id = d.device_id
left join averages a on a.device_id = d.device_id and a.b = bk.b
left join deltas di on di.device_id = d.device_id and di.k = 1 and di.b = bk.b
left join deltas de on de.device_id = d.device_id and de.k = 2 and de.b = bk.b
left join open_deltas oi on oi.device_id = d.device_id and oi.k = 1 and oi.b = bk.b
left join open_deltas oe on oe.device_id = d.device_id and oe.k = 2 and oe.b = bk.b
where a.device_id is not null or di.d is not null or de.d is not null
order by bk.b, d.device_id
$fn$;

create or replace function flux.get_meter_readings_30m(
  start_time timestamptz default now() - '24 hours'::interval,
  end_time timestamptz default now(),
  device_ids uuid[] default null
)
returns table (
  time_b timestamptz,
  device_id uuid,
  power_total_active_avg double precision,
  energy_imported_active_delta double precision,
  energy_exported_active_delta double precision
)
language sql stable
as $fn$
select s.time_b, s.device_id, s.power_total_active_avg, s.energy_imported_active_delta, s.energy_exported_active_delta
from flux.get_meter_readings_30m_status(start_time, end_time, device_ids) s
$fn$;
