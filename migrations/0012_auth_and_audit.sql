-- Static API tokens for small installations (JWTs need no table). Only a SHA-256 hash of
-- each token is kept: tokens are 256 random bits, so a plain hash is enough to make a
-- stolen table useless, and lookup stays one indexed equality.
create table powerplane.api_tokens (
  id uuid primary key,
  name text not null,
  token_hash bytea not null unique,
  -- The first characters of the token, shown by `tokens list` so an operator can tell them apart.
  prefix text not null,
  scopes text[] not null,
  -- The sites the token may touch; null = every site.
  sites text[],
  created_by text not null,
  created_at timestamptz not null default now(),
  expire_time timestamptz,
  revoked_at timestamptz,
  revoked_by text
);

-- Who did what: every change through the API (dispatches, cancellations, control-mode and
-- site settings, registry and token changes) and every refused call. A change is recorded
-- as `requested` before it is applied (so before any Modbus write it causes) and again
-- with its outcome.
create table powerplane.audit_log (
  id bigint generated always as identity primary key,
  at timestamptz not null default clock_timestamp(),
  call_id uuid not null,
  principal text not null,
  method text not null,
  phase text not null check (phase in ('requested', 'completed', 'failed', 'refused')),
  code text,
  message text,
  request jsonb
);
create index audit_log_at_idx on powerplane.audit_log (at desc);
create index audit_log_principal_at_idx on powerplane.audit_log (principal, at desc);

-- Audit rows are append-only for every role that does not own the trigger: UPDATE, DELETE
-- and TRUNCATE raise. (A separate migration role owning the schema, with the application
-- role granted only INSERT and SELECT, also keeps it from dropping the trigger; see README.)
create function powerplane.refuse_audit_change() returns trigger language plpgsql as $$
begin
  raise exception 'audit rows of %.% are append-only', tg_table_schema, tg_table_name
    using errcode = 'insufficient_privilege';
end;
$$;

create trigger audit_log_append_only before update or delete on powerplane.audit_log
  for each row execute function powerplane.refuse_audit_change();
create trigger audit_log_no_truncate before truncate on powerplane.audit_log
  for each statement execute function powerplane.refuse_audit_change();
create trigger setpoint_events_append_only before update or delete on powerplane.setpoint_events
  for each row execute function powerplane.refuse_audit_change();
create trigger setpoint_events_no_truncate before truncate on powerplane.setpoint_events
  for each statement execute function powerplane.refuse_audit_change();

revoke update, delete, truncate on powerplane.audit_log, powerplane.setpoint_events from public;
