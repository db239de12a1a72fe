-- flux.get_meter_readings_30m with the Flux seed's signature and columns, in plain SQL so
-- it runs on PostgreSQL without the TimescaleDB toolkit and on PGlite.
--
-- Buckets are the 30-minute periods (aligned to the epoch) that start in
-- [start_time, end_time). Per meter and bucket: the average of power_total_active over
-- the bucket's readings, and the energy deltas of the cumulative counters. A counter's
-- value at a boundary is interpolated linearly between the last reading at or before it
-- and the first reading after it (readings outside the range are used for that). A drop
-- in a counter means it restarted from zero, so the value after the drop counts as the
-- increase. A bucket inside a gap gets the interpolated share of the energy and no
-- average. Buckets with neither an average nor a delta are left out.
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
)
select bk.b, d.device_id, a.p, di.d, de.d
from buckets bk
cross join devices d
left join averages a on a.device_id = d.device_id and a.b = bk.b
left join deltas di on di.device_id = d.device_id and di.k = 1 and di.b = bk.b
left join deltas de on de.device_id = d.device_id and de.k = 2 and de.b = bk.b
where a.device_id is not null or di.d is not null or de.d is not null
order by bk.b, d.device_id
$fn$;
