-- Control scaled out over replicas: sites map to a fixed number of shards, each shard is
-- leased by one replica at a time, and every change of owner increments the shard's epoch
-- (the fencing token every controller write is checked against).

-- The number of shards, fixed once the table is filled. `powerplane migrate` sets
-- `powerplane.shard_count` for the session from POWERPLANE_SHARD_COUNT on the first
-- migration only; afterwards the setting is ignored (moving sites between shards while
-- replicas hold them would give one battery two writers).
create table powerplane.cluster_settings (
  id boolean primary key default true check (id),
  shard_count integer not null check (shard_count between 1 and 4096)
);
insert into powerplane.cluster_settings (shard_count)
values (coalesce(nullif(current_setting('powerplane.shard_count', true), ''), '256')::integer);

-- Live replicas: each renews its row with its leases; a row past `expires_at` is a
-- replica that died without saying so.
create table powerplane.replicas (
  id text primary key,
  started_at timestamptz not null default now(),
  heartbeat_at timestamptz not null default now(),
  expires_at timestamptz not null
);

-- One row per shard. `owner` null: free (never held, or handed over by a graceful stop,
-- in which case `released` says the old owner had stopped writing before it let go).
create table powerplane.shard_leases (
  shard integer primary key,
  owner text,
  epoch bigint not null default 0,
  expires_at timestamptz not null default '-infinity',
  released boolean not null default false,
  changed_at timestamptz not null default now()
);
insert into powerplane.shard_leases (shard)
select generate_series(0, shard_count - 1) from powerplane.cluster_settings;

-- The shard of a site: FNV-1a (32-bit) of the site name's UTF-8 bytes, modulo the shard
-- count. `src/cluster/shard.ts` computes the same; a test holds the two together.
create function powerplane.site_shard(site text, shard_count integer) returns integer
language plpgsql immutable strict parallel safe as $$
declare
  bytes bytea := convert_to(site, 'UTF8');
  h bigint := 2166136261;
begin
  for i in 0 .. length(bytes) - 1 loop
    h := (h # get_byte(bytes, i)) * 16777619 % 4294967296;
  end loop;
  return (h % shard_count)::integer;
end $$;

-- Who wrote what under which lease.
alter table powerplane.setpoint_events add column replica text, add column epoch bigint;
alter table powerplane.command_source_state add column replica text, add column epoch bigint;
alter table powerplane.command_source_history add column replica text, add column epoch bigint;

-- Agent streams by the replica that holds them: the owner of a relay site's shard sends
-- its setpoints through that replica.
create table powerplane.agent_streams (
  site text not null,
  replica text not null,
  opened_at timestamptz not null default now(),
  primary key (site, replica)
);
