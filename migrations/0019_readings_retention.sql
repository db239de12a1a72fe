-- Retention of readings on plain PostgreSQL and PGlite: `serve` deletes readings older than
-- each kind's retention, oldest first, in bounded statements. (On TimescaleDB hypertables
-- a retention policy drops whole chunks instead.)

-- Datum readings are keyed by (stream, time); deleting the oldest needs them by time alone.
create index datum_readings_ts_idx on powerplane.datum_readings (ts);

-- The one way the application deletes readings: at most `max_rows` of one kind, the oldest
-- first, all older than `older_than`. The application role holds no DELETE on the readings
-- tables, so it can neither delete chosen readings nor recent ones ahead of older ones.
-- Rows are picked by ctid, which is unique only within one table: a table with children
-- (a hypertable's chunks, partitions) is refused.
create function powerplane.delete_expired_readings(kind text, older_than timestamptz, max_rows integer)
  returns integer
  language plpgsql
  security definer
  set search_path = pg_catalog, pg_temp
as $$
declare
  target regclass;
  deleted integer;
begin
  if max_rows is null or max_rows < 1 or max_rows > 10000 then
    raise exception 'max_rows must be from 1 to 10000 (got %)', max_rows using errcode = 'invalid_parameter_value';
  end if;
  if older_than is null then
    raise exception 'older_than must be a time' using errcode = 'invalid_parameter_value';
  end if;
  target := case kind
    when 'meter' then 'flux.mg_meter_readings'::regclass
    when 'bess' then 'flux.mg_bess_readings'::regclass
    when 'datum' then 'powerplane.datum_readings'::regclass
    when 'market' then 'flux.market_data'::regclass
  end;
  if target is null then
    raise exception 'kind must be meter, bess, datum or market (got %)', kind using errcode = 'invalid_parameter_value';
  end if;
  if exists (select 1 from pg_inherits where inhparent = target) then
    raise exception '% has child tables (a TimescaleDB hypertable or partitions): its retention is not done here', target
      using errcode = 'feature_not_supported';
  end if;
  if kind = 'meter' then
    delete from flux.mg_meter_readings where ctid = any (array(
      select ctid from flux.mg_meter_readings where "time" < older_than order by "time" limit max_rows));
  elsif kind = 'bess' then
    delete from flux.mg_bess_readings where ctid = any (array(
      select ctid from flux.mg_bess_readings where "time" < older_than order by "time" limit max_rows));
  elsif kind = 'datum' then
    delete from powerplane.datum_readings where ctid = any (array(
      select ctid from powerplane.datum_readings where ts < older_than order by ts limit max_rows));
  else
    delete from flux.market_data where ctid = any (array(
      select ctid from flux.market_data where "time" < older_than order by "time" limit max_rows));
  end if;
  get diagnostics deleted = row_count;
  return deleted;
end
$$;
revoke all on function powerplane.delete_expired_readings(text, timestamptz, integer) from public;
