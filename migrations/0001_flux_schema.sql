-- The Flux database schema (shared/seeds/000_*), table for table and column for column,
-- so that existing Flux queries run unchanged. The tables are plain PostgreSQL here; where
-- TimescaleDB is usable, the setup that runs after the migrations turns the readings and
-- market tables into hypertables.

create schema if not exists flux;

create table flux.mg_meter_readings (
  "time" timestamp with time zone not null,
  device_id uuid not null,
  id uuid default gen_random_uuid() not null,
  created_at timestamp with time zone default now() not null,
  frequency real,
  voltage_line_average real,
  current_phase_a real,
  current_phase_b real,
  current_phase_c real,
  current_phase_average real,
  power_phase_a_active real,
  power_phase_b_active real,
  power_phase_c_active real,
  power_total_active real,
  power_total_reactive real,
  power_total_apparent real,
  power_factor_total real,
  energy_imported_active real,
  energy_exported_active real,
  energy_imported_phase_a_active real,
  energy_exported_phase_a_active real,
  energy_imported_phase_b_active real,
  energy_exported_phase_b_active real,
  energy_imported_phase_c_active real,
  energy_exported_phase_c_active real,
  energy_imported_reactive real,
  energy_exported_reactive real,
  energy_imported_apparent real,
  energy_exported_apparent real
);
create unique index mg_meter_readings_deviceid_time_idx on flux.mg_meter_readings (device_id, "time");
create index mg_meter_readings_time_idx on flux.mg_meter_readings ("time" desc);
create index mg_meter_readings_device_time_idx on flux.mg_meter_readings (device_id, "time" desc);

create table flux.mg_bess_readings (
  "time" timestamp with time zone not null,
  device_id uuid not null,
  id uuid default gen_random_uuid() not null,
  created_at timestamp with time zone default now() not null,
  soe real,
  target_power real,
  available_inverter_blocks smallint,
  command_source smallint
);
create unique index mg_bess_readings_deviceid_time_idx on flux.mg_bess_readings (device_id, "time");
create index mg_bess_readings_time_idx on flux.mg_bess_readings ("time" desc);

create table flux.mg_device_registry (
  id uuid default gen_random_uuid() not null primary key,
  created_at timestamp with time zone default now() not null,
  name text not null,
  type text not null,
  site text not null,
  metadata jsonb,
  active boolean default true
);
create index mg_device_registry_site_idx on flux.mg_device_registry (site);
create index mg_device_registry_type_idx on flux.mg_device_registry (type);

create table flux.market_data (
  id uuid default gen_random_uuid() not null,
  "time" timestamp with time zone not null,
  type integer not null,
  value real not null,
  metadata jsonb,
  created_at timestamp with time zone default now()
);
create index market_data_time_idx on flux.market_data ("time" desc);
create index market_data_type_time_idx on flux.market_data (type, "time" desc);

create table flux.market_data_types (
  id integer primary key,
  name text not null unique,
  description text,
  unit text,
  created_at timestamp with time zone default now()
);
insert into flux.market_data_types (id, name, description, unit) values
  (1, 'niv_estimate', 'Net Imbalance Volume Estimate', 'MW'),
  (2, 'wholesale_price', 'Wholesale Electricity Price', '£/MWh'),
  (3, 'imbalance_price', 'System Imbalance Price', '£/MWh'),
  (4, 'axle_dispatch', 'Axle Platform Dispatch Signal', 'kW');

create type flux.market_data_input as (
  "time" timestamp with time zone,
  type integer,
  value real
);
