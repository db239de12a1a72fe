-- Datum streams (shared/seeds/003_*): readings whose properties do not fit the fixed
-- meter and battery columns. One metadata row per (device, source id) holds the property
-- names per classification (instantaneous, accumulating, status); one row per
-- (stream, time) holds the values in the same order. Names are only ever appended, so a
-- stored position never changes meaning; renaming a source updates one metadata row.
create table powerplane.datum_streams (
  stream_id uuid primary key default gen_random_uuid(),
  device_id uuid not null,
  source_id text not null,
  names_i text[] not null default '{}',
  names_a text[] not null default '{}',
  names_s text[] not null default '{}',
  created_at timestamptz not null default now(),
  unique (device_id, source_id)
);

create table powerplane.datum_readings (
  stream_id uuid not null references powerplane.datum_streams (stream_id),
  ts timestamptz not null,
  data_i double precision[],
  data_a double precision[],
  data_s text[],
  created_at timestamptz not null default now(),
  primary key (stream_id, ts)
);
