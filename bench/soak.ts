/**
 * `npm run soak [-- --quick | --minutes N] [--sites N]`: a long, bounded run of a demo-sized
 * fleet through faults. One `powerplane serve` process on a throwaway PostgreSQL, a
 * simulated fleet (per site a meter and two batteries) over Modbus TCP, an edge agent per
 * site and a trading desk submitting a site dispatch every 5 s. Every agent and the desk
 * reach the control plane through a TCP fault proxy of their own cycling through latency,
 * resets, a blackhole and cuts. Prints figures as it goes (readings, acks, dispatches,
 * the server's memory) and a summary: readings sent, stored, lost and duplicated, ack and
 * dispatch p99, memory growth; ends with one JSON line. Exits 1 when anything was lost or
 * doubled, or a dispatch was never verified. Default 5 minutes; `--quick` 2.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { create } from '@bufbuild/protobuf';
import { createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import pg from 'pg';
import { TokenService } from '../gen/powerplane/v1/auth_pb.ts';
import { DeviceRegistryService, DeviceSchema, DeviceType, RegisterProfile } from '../gen/powerplane/v1/devices_pb.ts';
import { bearer } from '../src/auth/bearer.ts';
import { createLogger } from '../src/logger.ts';
import { startSimulator, type SimulatedDevice } from '../src/simulator/simulator.ts';
import { startPostgresCluster } from '../test/support/postgres-cluster.ts';
import { startServeProcess } from '../test/support/serve-process.ts';
import { startTcpProxy, type TcpProxy } from '../test/support/tcp-proxy.ts';
import { startSoakAgents, type SoakSite } from './soak/agents.ts';
import { startDispatchFeed } from './soak/dispatch-feed.ts';
import { runFaultCycle, type FaultCounts } from './soak/faults.ts';
import { percentile } from './support/stats.ts';

const { values } = parseArgs({ options: { quick: { type: 'boolean' }, minutes: { type: 'string' }, sites: { type: 'string' } } });
const minutes = values.minutes !== undefined ? Number(values.minutes) : values.quick ? 2 : 5;
const siteCount = values.sites !== undefined ? Number(values.sites) : 3;
if (!(minutes > 0 && minutes <= 24 * 60)) throw new RangeError(`--minutes must be a number from 0 to 1440 (got ${values.minutes})`);
if (!Number.isInteger(siteCount) || siteCount < 1 || siteCount > 50)
  throw new RangeError(`--sites must be a whole number from 1 to 50 (got ${values.sites})`);
const RUN_MS = minutes * 60_000;
const DISPATCH_EVERY_MS = 5_000;
const POLL_MS = 250;
const REPORT_EVERY_MS = values.quick ? 15_000 : 30_000;

/** Percentile of values in any order. */
function percentileOf(values: readonly number[], p: number): number {
  return percentile(
    [...values].sort((a, b) => a - b),
    p,
  );
}
const round = (n: number, digits = 1) => Math.round(n * 10 ** digits) / 10 ** digits;
const clock = (ms: number) => `${Math.floor(ms / 60_000)}:${String(Math.floor((ms % 60_000) / 1_000)).padStart(2, '0')}`;

/** The server's resident memory from its own /metrics (which needs a token with metrics:read), MB. */
async function serverRssMb(baseUrl: string, token: string): Promise<number | undefined> {
  const text = await (
    await fetch(`${baseUrl}/metrics`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(5_000) })
  )
    .text()
    .catch(() => '');
  const match = /^powerplane_process_resident_memory_bytes (\d+(?:\.\d+)?(?:e\+\d+)?)$/m.exec(text);
  return match ? Number(match[1]) / 1_048_576 : undefined;
}

const log = createLogger('silent');
const dir = await mkdtemp(path.join(os.tmpdir(), 'powerplane-soak-'));
const cluster = await startPostgresCluster();
const sim = await startSimulator({ bess: siteCount * 2, meters: siteCount });
const proxies: TcpProxy[] = [];
// Set when the run completes; an exception propagates out of the finally below instead.
let exitCode: number;
// Authentication on, as in production: the first start writes the admin token to the data
// directory; agents and the desk get narrow tokens of their own.
const serve = await startServeProcess({
  POWERPLANE_AUTH: 'on',
  POWERPLANE_DATA_DIR: path.join(dir, 'data'),
  DATABASE_URL: cluster.adminUrl,
  POWERPLANE_CONTROL_PERIOD_MS: '1000',
  POWERPLANE_HEARTBEAT_INTERVAL_MS: '500',
});
try {
  console.log(
    `soak: ${minutes} min, ${siteCount} sites (a meter and 2 batteries each, polled every ${POLL_MS} ms), ` +
      `a site dispatch every ${DISPATCH_EVERY_MS / 1000} s; every link through a fault proxy`,
  );
  const admin = (await readFile(path.join(dir, 'data', 'admin.token'), 'utf8')).trim();
  const adminTransport = createGrpcTransport({ baseUrl: serve.baseUrl, interceptors: [bearer(admin)] });
  const registry = createClient(DeviceRegistryService, adminTransport);
  const tokens = createClient(TokenService, adminTransport);
  const token = async (name: string, scopes: string[], sites: string[] = []) => (await tokens.createToken({ name, scopes, sites })).secret;
  const register = async (site: string, name: string, device: SimulatedDevice, kind: 'bess' | 'meter') => {
    const modbus = { endpoint: device.endpoint, registerProfile: RegisterProfile.SUNSPEC };
    const spec =
      kind === 'bess'
        ? {
            case: 'bess' as const,
            value: {
              ratedChargePowerKw: 100,
              ratedDischargePowerKw: 100,
              capacityKwh: 200,
              minSoePercent: 10,
              maxSoePercent: 90,
              reversionTimeoutS: 10,
              modbus,
            },
          }
        : { case: 'meter' as const, value: { modbus } };
    const { device: created } = await registry.createDevice({
      device: create(DeviceSchema, { name, site, type: kind === 'bess' ? DeviceType.BESS : DeviceType.METER, spec }),
    });
    return created!.id;
  };
  const sites: SoakSite[] = [];
  for (let s = 0; s < siteCount; s++) {
    const site = `soak-${s + 1}`;
    const batteries = [];
    for (const [i, device] of sim.bess.slice(s * 2, s * 2 + 2).entries())
      batteries.push({ id: await register(site, `${site}-bess-${i + 1}`, device, 'bess'), device });
    sites.push({ site, meter: { id: await register(site, `${site}-meter`, sim.meters[s]!, 'meter'), device: sim.meters[s]! }, batteries });
  }
  for (let i = 0; i <= siteCount; i++) proxies.push(await startTcpProxy({ host: '127.0.0.1', port: serve.port }));
  const deskProxy = proxies[siteCount]!;
  const agentTokens: string[] = [];
  for (const s of sites) agentTokens.push(await token(`soak agent ${s.site}`, ['telemetry:write'], [s.site]));
  const deskToken = await token('soak desk', ['dispatch:write', 'readings:read']);
  const agents = await startSoakAgents({
    sites,
    urls: proxies.slice(0, siteCount).map((p) => `http://127.0.0.1:${p.port}`),
    tokens: agentTokens,
    spoolDir: path.join(dir, 'spool'),
    pollingIntervalMs: POLL_MS,
    log,
  });
  // Batteries are driven once this server holds its shards' leases.
  await serve.waitForLog((line) => typeof line.msg === 'string' && line.msg.startsWith('claimed shards'), 30_000);

  const started = performance.now();
  const faultsStop = new AbortController();
  const faultCounts: FaultCounts = new Map();
  const cycles = proxies.map((p, i) => runFaultCycle(p, i * 2, faultsStop.signal, faultCounts));
  const feed = startDispatchFeed({
    sites,
    submitUrl: `http://127.0.0.1:${deskProxy.port}`,
    watchUrl: serve.baseUrl,
    token: deskToken,
    everyMs: DISPATCH_EVERY_MS,
    windowMs: Math.max(3_000, siteCount * DISPATCH_EVERY_MS - 3_000),
  });

  const rss: Array<{ atMs: number; mb: number }> = [];
  console.log('  time  readings  batches acked  spooled  server RSS MB');
  while (performance.now() - started < RUN_MS) {
    await delay(Math.min(REPORT_EVERY_MS, RUN_MS - (performance.now() - started)));
    const at = performance.now() - started;
    const mb = await serverRssMb(serve.baseUrl, admin);
    if (mb !== undefined) rss.push({ atMs: at, mb });
    const stats = agents.stats();
    const acked = stats.reduce((n, s) => n + s.stream.acks, 0);
    const spooled = stats.reduce((n, s) => n + s.spool.pendingBatches, 0);
    const columns = [
      clock(at).padStart(5),
      String(agents.produced.size).padStart(8),
      String(acked).padStart(13),
      String(spooled).padStart(7),
      mb === undefined ? '?' : round(mb),
    ];
    console.log(`  ${columns.join('  ')}`);
    if (serve.exited()) throw new Error('the serve process died during the soak');
  }

  faultsStop.abort();
  await Promise.all(cycles);
  const desk = await feed.stop();
  // An agent drains on stop only through a session that is up, so it is stopped once every
  // link has healed and each agent is connected with its backlog sent.
  for (const until = performance.now() + 60_000; performance.now() < until;) {
    if (agents.stats().every((s) => s.stream.connected && s.spool.pendingBatches <= 2)) break;
    await delay(100);
  }
  await agents.stop(30_000);
  const stats = agents.stats();

  const client = new pg.Client({ connectionString: cluster.adminUrl });
  await client.connect();
  const ids = sites.flatMap((s) => [s.meter.id, ...s.batteries.map((b) => b.id)]);
  const { rows } = await client.query<{ key: string }>(
    `select device_id::text || '|' || (extract(epoch from time) * 1000)::bigint::text as key
       from (select device_id, time from flux.mg_meter_readings where device_id = any($1::uuid[])
             union all
             select device_id, time from flux.mg_bess_readings where device_id = any($1::uuid[])) r`,
    [ids],
  );
  const instructions = await client.query<{ request_id: string; n: number }>(
    `select request_id, count(*)::int as n from powerplane.dispatch_instructions where request_id like 'soak-%' group by 1`,
  );
  await client.end();

  const keys = new Set(rows.map((r) => r.key));
  const stored = [...agents.produced].filter((k) => keys.has(k)).length;
  const lost = agents.produced.size - stored;
  const duplicated = rows.length - keys.size;
  const unexpected = [...keys].filter((k) => !agents.produced.has(k)).length;
  const dispatchesDoubled = instructions.rows.reduce((n, r) => n + r.n - 1, 0);
  const dispatchesMissing = desk.requestIds.length - instructions.rows.length;
  const pollErrors = stats.reduce((n, s) => n + s.pollErrors, 0);
  const spoolLost = stats.reduce((n, s) => n + s.readingsLost + s.spool.droppedBatches, 0);
  const leftInSpool = stats.reduce((n, s) => n + s.spool.pendingBatches, 0);
  // Memory growth: the last sample against the first one after the warm-up (30 s or a quarter of the run).
  const baseline = rss.find((s) => s.atMs >= Math.min(30_000, RUN_MS / 4)) ?? rss[0];
  const growth = rss.length > 0 && baseline ? rss.at(-1)!.mb - baseline.mb : 0;
  const ackP50 = percentileOf(agents.ackLatenciesMs, 50);
  const ackP99 = percentileOf(agents.ackLatenciesMs, 99);
  const dispatchP50 = percentileOf(desk.latenciesMs, 50);
  const dispatchP99 = percentileOf(desk.latenciesMs, 99);

  console.log(`\nfaults applied: ${[...faultCounts].map(([name, n]) => `${name} ${n}`).join(', ')}`);
  console.log(
    `readings: ${agents.produced.size} sent, ${stored} stored, ${lost} lost, ${duplicated} duplicated, ` +
      `${unexpected} stored that were never sent; ${pollErrors} failed polls`,
  );
  console.log(
    `acks: ${agents.ackLatenciesMs.length} batches, spooled to acked p50 ${round(ackP50)} ms, p99 ${round(ackP99)} ms; ` +
      `${leftInSpool} batches left in spools, ${spoolLost} lost by spools`,
  );
  console.log(
    `dispatch: ${desk.submitted} submitted (${desk.retries} retried attempts), ` +
      `${desk.verified} verified on every battery, ${desk.failed} not; ` +
      `submit to verified p50 ${round(dispatchP50)} ms, p99 ${round(dispatchP99)} ms; ${desk.setpointsVerified} setpoints verified; ` +
      `instructions stored: ${instructions.rows.length}, doubled ${dispatchesDoubled}, missing ${dispatchesMissing}`,
  );
  console.log(
    `server memory: ${rss.map((s) => `${clock(s.atMs)} ${round(s.mb)}`).join(', ')} MB; growth after warm-up ${round(growth)} MB; ` +
      `soak process RSS ${round(process.memoryUsage().rss / 1_048_576)} MB`,
  );
  const failedChecks = {
    lost,
    duplicated,
    unexpected,
    dispatchesDoubled,
    dispatchesMissing,
    dispatchesUnverified: desk.failed,
    leftInSpool,
    spoolLost,
  };
  const failures = Object.entries(failedChecks).filter(([, n]) => n !== 0);
  console.log(failures.length === 0 ? 'PASS: nothing lost, nothing doubled' : `FAIL: ${failures.map(([k, n]) => `${k} ${n}`).join(', ')}`);
  console.log(
    JSON.stringify({
      sent: agents.produced.size,
      stored,
      lost,
      duplicated,
      ack_p99_ms: round(ackP99),
      dispatch_p99_ms: round(dispatchP99),
      rss_growth_mb: round(growth),
      minutes,
      acked_batches: agents.ackLatenciesMs.length,
      setpoints_verified: desk.setpointsVerified,
      dispatches: desk.submitted,
      errors: failures.reduce((n, [, v]) => n + Math.abs(v), 0) + pollErrors,
    }),
  );
  exitCode = failures.length === 0 ? 0 : 1;
} finally {
  await serve.stop();
  await Promise.all(proxies.map((p) => p.close()));
  await sim.stop();
  await cluster.stop();
  await rm(dir, { recursive: true, force: true });
}
process.exit(exitCode);
