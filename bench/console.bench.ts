/**
 * `npm run bench:console [-- --quick]`: what the operator console costs the control plane
 * per refresh, for 50 sites × 20 batteries with an hour of readings (one every 2 s, 10 s
 * with --quick), setpoint events every 5 minutes, an instruction per site and a few
 * batteries stale, failed or reporting another source.
 *
 * Every call is a Connect JSON POST over HTTP/1.1, as the page's `fetch` makes it (bytes are
 * the JSON's, before any compression on the wire), against
 * a Powerplane server in its own process on a throwaway PostgreSQL (fsync off). Measured:
 *  - GetFleetSummary of the whole fleet, and ListBatterySeries of one site (1 h, 120
 *    points), p50/p99 and bytes;
 *  - the console's refresh: GetFleetSummary once and GetControlState per site (the rows),
 *    and its chart round (every 10 s): ListBatterySeries per site;
 *  - the baseline, the refresh of the page before it: GetCaller, ListDevices, and per site
 *    GetControlState, GetLatestBessState and the first page (10 000) of ListBessReadings of
 *    the site's batteries over the hour, sites one after another, as `fleet-page.js` did;
 *    and the same with every page of the hour, which a chart of the whole hour needs.
 * The data is stored as the control loop and agents store it; the shards are leased to an
 * absent replica, so no control loop runs and the figures are the queries' alone.
 * Binds 127.0.0.1 only and stops everything it starts. The last line is one JSON object.
 */
import { sql } from 'kysely';
import { createLogger } from '../src/logger.ts';
import { openDatabase, type Database } from '../src/storage/database.ts';
import { migrate } from '../src/storage/migrator.ts';
import { startPostgresCluster } from '../test/support/postgres-cluster.ts';
import { createBenchDatabase } from './support/bench-database.ts';
import { startServerProcess, stopServerProcess } from './support/server-process.ts';
import { percentile } from './support/stats.ts';

const quick = process.argv.includes('--quick');
const SITES = 50;
const PER_SITE = 20;
const READING_EVERY_S = quick ? 10 : 2;
const EVENT_EVERY_S = 300;
const HOUR_S = 3_600;
const ROUNDS = quick ? 5 : 20;
/** Rounds of the old page's refresh, which takes seconds each. */
const OLD_ROUNDS = quick ? 2 : 5;
/** Most pages the baseline follows for one site's hour of readings. */
const MAX_PAGES = 100;

const fmt = (n: number) => n.toFixed(1);
const kb = (bytes: number) => `${(bytes / 1024).toFixed(0)} KiB`;

interface Call {
  ms: number;
  bytes: number;
  body: Record<string, unknown>;
}

let baseUrl = '';
let requests = 0;

/** One Connect JSON call as the page makes it: its time, the response's bytes and body. */
async function call(service: string, method: string, body: unknown): Promise<Call> {
  const started = performance.now();
  const res = await fetch(`${baseUrl}/powerplane.v1.${service}/${method}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  const ms = performance.now() - started;
  requests++;
  if (!res.ok) throw new Error(`${service}.${method}: HTTP ${res.status} ${text.slice(0, 200)}`);
  return { ms, bytes: Buffer.byteLength(text), body: JSON.parse(text) as Record<string, unknown> };
}

/** Stores the fleet, its hour of readings and events, its instructions and control state. */
async function seed(database: Database): Promise<void> {
  const db = database.db;
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

interface Figures {
  p50: number;
  p99: number;
  bytes: number;
  requests: number;
}

/** Runs `round` `rounds` times: wall time p50/p99, and the bytes and requests of one round. */
async function measure(round: () => Promise<number>, rounds = ROUNDS): Promise<Figures> {
  const times: number[] = [];
  let bytes = 0;
  let count = 0;
  for (let i = 0; i < rounds; i++) {
    const before = requests;
    const started = performance.now();
    bytes = await round();
    times.push(performance.now() - started);
    count = requests - before;
  }
  times.sort((a, b) => a - b);
  return { p50: percentile(times, 50), p99: percentile(times, 99), bytes, requests: count };
}

const hour = () => ({ startTime: new Date(Date.now() - HOUR_S * 1000).toISOString(), endTime: new Date(Date.now()).toISOString() });

async function oldRefresh(sites: string[], everyPage: boolean): Promise<number> {
  let bytes = (await call('TokenService', 'GetCaller', {})).bytes;
  const list = await call('DeviceRegistryService', 'ListDevices', { type: 'DEVICE_TYPE_BESS', active: true, pageSize: 1000 });
  bytes += list.bytes;
  const devices = list.body.devices as Array<{ id: string; site: string }>;
  for (const site of sites) {
    const ids = devices.filter((d) => d.site === site).map((d) => d.id);
    const history = async () => {
      let total = 0;
      let pageToken = '';
      const range = hour();
      for (let page = 0; page < MAX_PAGES; page++) {
        const res = await call('ReadingsService', 'ListBessReadings', { deviceIds: ids, range, pageSize: 10_000, pageToken });
        total += res.bytes;
        pageToken = (res.body.nextPageToken as string | undefined) ?? '';
        if (!everyPage || pageToken === '') break;
      }
      return total;
    };
    const parts = await Promise.all([
      call('DispatchService', 'GetControlState', { site }).then((r) => r.bytes),
      call('ReadingsService', 'GetLatestBessState', { site }).then((r) => r.bytes),
      history(),
    ]);
    bytes += parts.reduce((a, b) => a + b, 0);
  }
  return bytes;
}

async function main(): Promise<void> {
  console.log(
    `bench:console ${quick ? '(quick)' : ''}: ${SITES} sites × ${PER_SITE} batteries, a reading every ${READING_EVERY_S} s for an hour`,
  );
  const cluster = await startPostgresCluster();
  let server: Awaited<ReturnType<typeof startServerProcess>> | undefined;
  try {
    const url = await createBenchDatabase(cluster.adminUrl);
    const database = await openDatabase({ kind: 'postgres', url }, { log: createLogger('silent'), poolSize: 4 });
    const seeding = performance.now();
    try {
      await migrate(database, createLogger('silent'));
      await seed(database);
    } finally {
      await database.close();
    }
    console.log(`seeded in ${fmt((performance.now() - seeding) / 1000)} s`);
    server = await startServerProcess({ DATABASE_URL: url, POWERPLANE_AUTH: 'off', POWERPLANE_LOG_LEVEL: 'error' });
    baseUrl = `http://127.0.0.1:${server.port}`;
    const first = await call('FleetService', 'GetFleetSummary', {});
    const sites = (first.body.sites as Array<{ site: string }>).map((s) => s.site);
    const alerts = (first.body.alerts as Array<{ kind: string }> | undefined) ?? [];
    console.log(`summary: ${sites.length} sites, ${alerts.length} alerts (${[...new Set(alerts.map((a) => a.kind))].join(', ')})`);
    // Warm-up: every call once, so the figures are of a warm server.
    await oldRefresh(sites.slice(0, 2), false);
    for (const site of sites.slice(0, 2)) await call('ReadingsService', 'ListBatterySeries', { site, range: hour(), points: 120 });

    const summary = await measure(async () => (await call('FleetService', 'GetFleetSummary', {})).bytes);
    console.log(`GetFleetSummary, whole fleet:          p50 ${fmt(summary.p50)} ms, p99 ${fmt(summary.p99)} ms, ${kb(summary.bytes)}`);
    let next = 0;
    const series = await measure(
      async () =>
        (await call('ReadingsService', 'ListBatterySeries', { site: sites[next++ % sites.length], range: hour(), points: 120 })).bytes,
    );
    console.log(`ListBatterySeries, one site 1 h × 120: p50 ${fmt(series.p50)} ms, p99 ${fmt(series.p99)} ms, ${kb(series.bytes)}`);
    const refresh = await measure(async () => {
      let bytes = (await call('FleetService', 'GetFleetSummary', {})).bytes;
      for (const site of sites) bytes += (await call('DispatchService', 'GetControlState', { site })).bytes;
      return bytes;
    });
    const charts = await measure(async () => {
      let bytes = 0;
      for (const site of sites) bytes += (await call('ReadingsService', 'ListBatterySeries', { site, range: hour(), points: 120 })).bytes;
      return bytes;
    });
    const old = await measure(() => oldRefresh(sites, false), OLD_ROUNDS);
    const whole = await measure(() => oldRefresh(sites, true), OLD_ROUNDS);
    const line = (name: string, f: Figures) =>
      console.log(`${name} p50 ${fmt(f.p50)} ms, p99 ${fmt(f.p99)} ms, ${f.requests} requests, ${kb(f.bytes)}`);
    line('console refresh (summary + control state per site):', refresh);
    line('console charts (series per site, every 10 s):       ', charts);
    line('old page refresh (first page of readings per site): ', old);
    line('old page with every page of the hour per site:      ', whole);
    console.log(
      JSON.stringify({
        bench: 'console',
        quick,
        sites: SITES,
        batteriesPerSite: PER_SITE,
        readingEveryS: READING_EVERY_S,
        summaryP50Ms: Number(fmt(summary.p50)),
        summaryP99Ms: Number(fmt(summary.p99)),
        seriesP50Ms: Number(fmt(series.p50)),
        seriesP99Ms: Number(fmt(series.p99)),
        refreshP50Ms: Number(fmt(refresh.p50)),
        chartsP50Ms: Number(fmt(charts.p50)),
        oldRefreshP50Ms: Number(fmt(old.p50)),
        oldWholeHourP50Ms: Number(fmt(whole.p50)),
        refreshBytes: refresh.bytes,
        chartsBytes: charts.bytes,
        oldRefreshBytes: old.bytes,
        oldWholeHourBytes: whole.bytes,
      }),
    );
  } finally {
    if (server) await stopServerProcess(server.child);
    await cluster.stop();
  }
}

await main();
