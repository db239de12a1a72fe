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
 *  - the console's refresh: GetFleetSummary with a row per battery (`include_batteries`),
 *    one call, and its chart round (every 10 s): ListBatterySeries per site;
 *  - the baseline, the refresh of the page before it: GetCaller, ListDevices, and per site
 *    GetControlState, GetLatestBessState and the first page (10 000) of ListBessReadings of
 *    the site's batteries over the hour, sites one after another, as `fleet-page.js` did;
 *    and the same with every page of the hour, which a chart of the whole hour needs.
 * The data is stored as the control loop and agents store it; the shards are leased to an
 * absent replica, so no control loop runs and the figures are the queries' alone.
 * Binds 127.0.0.1 only and stops everything it starts. The last line is one JSON object.
 */
import { startPostgresCluster } from '../test/support/postgres-cluster.ts';
import { createConsoleFleet } from './support/console-fleet.ts';
import { startServerProcess, stopServerProcess } from './support/server-process.ts';
import { percentile } from './support/stats.ts';

const quick = process.argv.includes('--quick');
const SITES = 50;
const PER_SITE = 20;
const READING_EVERY_S = quick ? 10 : 2;
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
    const seeding = performance.now();
    const url = await createConsoleFleet(cluster.adminUrl, 'bench', {
      sites: SITES,
      batteriesPerSite: PER_SITE,
      readingEveryS: READING_EVERY_S,
    });
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
    const refresh = await measure(async () => (await call('FleetService', 'GetFleetSummary', { includeBatteries: true })).bytes);
    const charts = await measure(async () => {
      let bytes = 0;
      for (const site of sites) bytes += (await call('ReadingsService', 'ListBatterySeries', { site, range: hour(), points: 120 })).bytes;
      return bytes;
    });
    const old = await measure(() => oldRefresh(sites, false), OLD_ROUNDS);
    const whole = await measure(() => oldRefresh(sites, true), OLD_ROUNDS);
    const line = (name: string, f: Figures) =>
      console.log(`${name} p50 ${fmt(f.p50)} ms, p99 ${fmt(f.p99)} ms, ${f.requests} requests, ${kb(f.bytes)}`);
    line('console refresh (summary with battery rows):       ', refresh);
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
