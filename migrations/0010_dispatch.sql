-- Dispatch: instructions from trading systems, operator overrides, the command source
-- each battery is meant to be under (with its history), and every setpoint's life.
-- Instruction state is derived from the times (pending, active, completed) and the
-- cancellation, so it can never disagree with them.

create table powerplane.dispatch_instructions (
  id uuid primary key default gen_random_uuid(),
  request_id text not null,
  site text,
  device_id uuid,
  start_time timestamptz not null,
  end_time timestamptz not null,
  power_kw double precision,
  action text,
  priority integer not null default 0,
  principal text not null,
  -- Millisecond precision, as the API and page tokens carry it (PostgreSQL's now() has
  -- microseconds, which would make keyset pages skip rows created together).
  created_at timestamptz not null default date_trunc('milliseconds', now()),
  cancelled_at timestamptz,
  cancel_reason text,
  constraint dispatch_target_one check ((site is null) <> (device_id is null)),
  constraint dispatch_command_one check ((power_kw is null) <> (action is null)),
  constraint dispatch_window check (end_time > start_time)
);
create index dispatch_instructions_site_window_idx on powerplane.dispatch_instructions (site, end_time) where site is not null;
create index dispatch_instructions_device_window_idx on powerplane.dispatch_instructions (device_id, end_time) where device_id is not null;
create index dispatch_instructions_created_idx on powerplane.dispatch_instructions (created_at desc, id desc);

create table powerplane.control_overrides (
  device_id uuid primary key,
  power_kw double precision not null,
  expire_time timestamptz not null,
  reason text not null,
  principal text not null,
  created_at timestamptz not null default now()
);

create table powerplane.command_source_state (
  device_id uuid primary key,
  source smallint not null,
  reason text not null,
  instruction_id uuid,
  principal text,
  changed_at timestamptz not null default now()
);

create table powerplane.command_source_history (
  id bigint generated always as identity primary key,
  device_id uuid not null,
  source smallint not null,
  previous_source smallint,
  reason text not null,
  instruction_id uuid,
  principal text,
  changed_at timestamptz not null default now()
);
create index command_source_history_device_idx on powerplane.command_source_history (device_id, changed_at desc);

create table powerplane.setpoint_events (
  id bigint generated always as identity primary key,
  setpoint_id uuid not null,
  device_id uuid not null,
  site text not null,
  phase text not null,
  target_power_kw double precision not null,
  command_source smallint not null,
  instruction_id uuid,
  principal text,
  reason text,
  elapsed_ms double precision not null,
  at timestamptz not null
);
create index setpoint_events_device_at_idx on powerplane.setpoint_events (device_id, at desc);
create index setpoint_events_setpoint_idx on powerplane.setpoint_events (setpoint_id);
