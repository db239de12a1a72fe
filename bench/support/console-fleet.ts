import { sql } from 'kysely';
import { createLogger } from '../../src/logger.ts';
import { openDatabase, type Database } from '../../src/storage/database.ts';
import { migrate } from '../../src/storage/migrator.ts';
import { createBenchDatabase } from './bench-database.ts';

const EVENT_EVERY_S = 300;
const HOUR_S = 3_600;

/** The shape of a fleet the console benchmarks store. */
export interface ConsoleFleet {
  sites: number;
  batteriesPerSite: number;
  /** Seconds between two stored readings of a battery over the hour. */
  readingEveryS: number;
}

/**
 * Creates the database `name` on the throwaway cluster, migrates it and stores `fleet` in
 * it (see {@link seedConsoleFleet}); returns its URL.
 */
export async function createConsoleFleet(adminUrl: string, name: string, fleet: ConsoleFleet): Promise<string> {
  const url = await createBenchDatabase(adminUrl, name);
  const database = await openDatabase({ kind: 'postgres', url }, { log: createLogger('silent'), poolSize: 4 });
  try {
    await migrate(database, createLogger('silent'));
    await seedConsoleFleet(database, fleet);
  } finally {
    await database.close();
  }
  return url;
}

/**
 * Stores the fleet, an hour of readings and setpoint events (one every 5 minutes), one
 * instruction per site and each battery's control state, with a few batteries stale, failed
 * or reporting another source; then leases every shard to an absent replica, so no control
 * loop runs against it.
 */
export async function seedConsoleFleet(database: Database, fleet: ConsoleFleet): Promise<void> {
  const db = database.db;
  const SITES = fleet.sites;
  const PER_SITE = fleet.batteriesPerSite;
  const READING_EVERY_S = fleet.readingEveryS;
  const bess = {
    rated_charge_power_kw: 100,
    rated_discharge_power_kw: 100,
    capacity_kwh: 200,
    min_soe_percent: 10,
    max_soe_percent: 90,
    inverter_block_count: 4,
    modbus: { host: '127.0.0.1', port: 1, unit_id: 1, register_profile: 'sunspec', polling_interval_ms: 1000 },
  };
  await sql`
    insert into flux.mg_device_registry (name, type, site, metadata)
    select 'bess-' || lpad(i::text, 2, '0'), 'bess', 'site-' || lpad(s::text, 2, '0'), ${JSON.stringify({ bess })}::jsonb
    from generate_series(0, ${SITES - 1}) s, generate_series(0, ${PER_SITE - 1}) i`.execute(db);
  await sql`
    insert into flux.mg_device_registry (name, type, site, metadata)
    select 'meter', 'meter', 'site-' || lpad(s::text, 2, '0'), '{}'::jsonb from generate_series(0, ${SITES - 1}) s`.execute(db);
  // Battery 00 of every tenth site stopped reporting ten minutes ago; battery 02 of every
  // fifth site has reported its own control for the last ten minutes.
  await sql`
    insert into flux.mg_bess_readings ("time", device_id, soe, target_power, available_inverter_blocks, command_source)
    select date_trunc('second', now()) - make_interval(secs => g * ${READING_EVERY_S}), d.id,
      50 + 30 * sin(g / 50.0 + length(d.name)), 50, 4,
      case when d.name = 'bess-02' and right(d.site, 1) in ('0', '5') and g * ${READING_EVERY_S} < 600 then 1 else 2 end
    from flux.mg_device_registry d, generate_series(0, ${HOUR_S / READING_EVERY_S - 1}) g
    where d.type = 'bess' and not (d.name = 'bess-00' and right(d.site, 1) = '0' and g * ${READING_EVERY_S} < 600)`.execute(db);
  await sql`
    insert into flux.mg_meter_readings ("time", device_id, power_total_active)
    select date_trunc('second', now()) - make_interval(secs => g * 10), d.id, 100
    from flux.mg_device_registry d, generate_series(0, ${HOUR_S / 10 - 1}) g where d.type = 'meter'`.execute(db);
  // One site instruction each, asking 1000 kW (every fourth site 1200 kW: 200 kW short).
  await sql`
    insert into powerplane.dispatch_instructions (request_id, site, start_time, end_time, power_kw, principal)
    select 'bench-' || site, site, now() - interval '1 hour', now() + interval '1 day',
      case when right(site, 1) in ('0', '4', '8') then 1200 else 1000 end, 'bench'
    from (select distinct site from flux.mg_device_registry) s`.execute(db);
  await sql`
    insert into powerplane.command_source_state (device_id, source, reason, instruction_id, changed_at)
    select d.id, 2, 'following the bench instruction', i.id, now() - interval '1 hour'
    from flux.mg_device_registry d join powerplane.dispatch_instructions i on i.site = d.site where d.type = 'bess'`.execute(db);
  // A setpoint every five minutes, planned and verified; battery 01 of every tenth site
  // failed its last two (its controller stopped answering).
  await sql`
    insert into powerplane.setpoint_events
      (setpoint_id, device_id, site, phase, target_power_kw, command_source, instruction_id, principal, reason, elapsed_ms, at)
    select gen_random_uuid(), d.id, d.site, p.phase, 50, 2, i.id, 'bench', p.reason, p.elapsed,
      now() - make_interval(secs => g * ${EVENT_EVERY_S}) + make_interval(secs => p.elapsed / 1000.0)
    from flux.mg_device_registry d join powerplane.dispatch_instructions i on i.site = d.site,
      generate_series(0, ${HOUR_S / EVENT_EVERY_S - 1}) g,
      lateral (values ('PLANNED', null, 0), (
        case when d.name = 'bess-01' and right(d.site, 1) = '0' and g < 2 then 'FAILED' else 'VERIFIED' end,
        case when d.name = 'bess-01' and right(d.site, 1) = '0' and g < 2 then 'no answer to write 2 registers at 40123 within 1000 ms' end,
        500)) p(phase, reason, elapsed)
    where d.type = 'bess'`.execute(db);
  await sql`analyze`.execute(db);
  // No control loop: every shard is held by a replica that is not there.
  await sql`update powerplane.shard_leases set owner = 'bench-absent', epoch = 1, expires_at = now() + interval '1 day'`.execute(db);
}
