/**
 * `npm run bench:onboard [-- --quick]`: onboarding a fleet from one file, end to end.
 * `powerplane devices import` of a 5,000-device CSV (`BENCH_FLEET`) into a control plane
 * in its own process, timed from the CLI's process start to its exit, then the same file
 * again (nothing changes) and `devices export` of the fleet; on the embedded default
 * (PGlite in a data directory) and on a throwaway PostgreSQL. The baselines in the same
 * run: a CLI start that does nothing (`powerplane version`), and CreateDevice calls one
 * device at a time (8 in flight, the registry rate limit off), scaled to the fleet. Prints
 * figures and ends with one JSON line.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { DeviceRegistryService, DeviceType, RegisterProfile } from '../gen/powerplane/v1/devices_pb.ts';
import { startPostgresCluster } from '../test/support/postgres-cluster.ts';
import { createBenchDatabase } from './support/bench-database.ts';
import { startServerProcess, stopServerProcess } from './support/server-process.ts';

const quick = process.argv.includes('--quick');
const FLEET = Number(process.env.BENCH_FLEET ?? 5_000);
/** CreateDevice calls of the baseline, whose rate is scaled to the fleet. */
const BASELINE_CALLS = quick ? 300 : 1_500;
const IN_FLIGHT = 8;
const BIN = path.resolve(import.meta.dirname, '../bin/powerplane.js');

/** A fleet CSV of `count` devices, a tenth of them meters, 100 to a site, as an operator would write it. */
function fleetCsv(count: number): string {
  const header =
    'name,site,type,host,port,unit_id,profile,rated_charge_power_kw,rated_discharge_power_kw,capacity_kwh,' +
    'min_soe_percent,max_soe_percent,inverter_block_count,ramp_rate_kw_per_s,reversion_timeout_s,relay';
  const rows = [header];
  for (let i = 0; i < count; i++) {
    const site = `site-${String(Math.floor(i / 100)).padStart(3, '0')}`;
    const endpoint = `10.${Math.floor(i / 247) % 256}.0.1,502,${(i % 247) + 1}`;
    rows.push(
      i % 10 === 0
        ? `meter-${i},${site},meter,${endpoint},sunspec,,,,,,,,,`
        : `bess-${i},${site},bess,${endpoint},sunspec,250,250,500,10,90,2,50,30,false`,
    );
  }
  return `${rows.join('\n')}\n`;
}

/** Runs the `powerplane` CLI to its exit; resolves with its wall time (process start included) and output. */
function timeCli(args: string[]): Promise<{ seconds: number; stdout: string }> {
  const started = performance.now();
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d));
  child.stderr.on('data', (d: Buffer) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 300_000);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      const seconds = (performance.now() - started) / 1000;
      if (code === 0) resolve({ seconds, stdout });
      else reject(new Error(`powerplane ${args.slice(0, 2).join(' ')} exited ${code}: ${stderr}`));
    });
  });
}

/** CreateDevice calls, IN_FLIGHT at a time; resolves with calls per second. */
async function createDevicesOneByOne(port: number, calls: number): Promise<number> {
  const client = createClient(DeviceRegistryService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }));
  let next = 0;
  const started = performance.now();
  const worker = async () => {
    while (next < calls) {
      const i = next++;
      await client.createDevice({
        device: {
          name: `one-by-one-${i}`,
          site: `baseline-${Math.floor(i / 100)}`,
          type: DeviceType.BESS,
          spec: {
            case: 'bess',
            value: {
              ratedChargePowerKw: 250,
              ratedDischargePowerKw: 250,
              capacityKwh: 500,
              minSoePercent: 10,
              maxSoePercent: 90,
              modbus: { endpoint: { host: '10.200.0.1', unitId: (i % 247) + 1 }, registerProfile: RegisterProfile.SUNSPEC },
            },
          },
        },
      });
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  return calls / ((performance.now() - started) / 1000);
}

interface EngineFigures {
  readonly importS: number;
  readonly reimportS: number;
  readonly exportS: number;
  readonly createDevicePerS: number;
}

/** Imports, re-imports and exports the fleet on a server configured by `env`, then runs the baseline. */
async function runEngine(label: string, env: Record<string, string>, file: string): Promise<EngineFigures> {
  // The product's own rate limits: an import is one registry write per 10,000 devices.
  const server = await startServerProcess(env);
  const url = `http://127.0.0.1:${server.port}`;
  let imported, reimported, exported;
  try {
    imported = await timeCli(['devices', 'import', '--file', file, '--server', url]);
    if (!imported.stdout.startsWith(`${FLEET} devices: ${FLEET} created`)) throw new Error(`unexpected import output: ${imported.stdout}`);
    reimported = await timeCli(['devices', 'import', '--file', file, '--server', url]);
    if (!reimported.stdout.startsWith('nothing changed')) throw new Error(`unexpected re-import output: ${reimported.stdout}`);
    exported = await timeCli(['devices', 'export', '--server', url]);
    if (exported.stdout.trim().split('\n').length !== FLEET + 1) throw new Error('the export does not hold the fleet');
  } finally {
    await stopServerProcess(server.child);
  }
  const unlimited = await startServerProcess({ ...env, POWERPLANE_REGISTRY_RATE_PER_S: '0' });
  let perS: number;
  try {
    perS = await createDevicesOneByOne(unlimited.port, BASELINE_CALLS);
  } finally {
    await stopServerProcess(unlimited.child);
  }
  console.log(
    `${label}: import of ${FLEET} devices ${imported.seconds.toFixed(2)} s (CLI start included: ${imported.stdout.trim()}); ` +
      `the same file again ${reimported.seconds.toFixed(2)} s (${reimported.stdout.trim()}); export ${exported.seconds.toFixed(2)} s`,
  );
  console.log(
    `  baseline: ${BASELINE_CALLS} CreateDevice calls, ${IN_FLIGHT} in flight, rate limit off: ${perS.toFixed(0)} devices/s, ` +
      `so ${FLEET} devices ≈ ${(FLEET / perS).toFixed(1)} s (${(FLEET / perS / imported.seconds).toFixed(1)}× the import); ` +
      `at the default registry limit (50/s, burst 1000) ≈ ${(1 + (FLEET - 1000) / 50).toFixed(0)} s at best`,
  );
  return { importS: imported.seconds, reimportS: reimported.seconds, exportS: exported.seconds, createDevicePerS: perS };
}

async function main(): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'powerplane-onboard-'));
  const cluster = await startPostgresCluster();
  try {
    const file = path.join(dir, 'fleet.csv');
    await writeFile(file, fleetCsv(FLEET));
    const starts: number[] = [];
    for (let i = 0; i < 3; i++) starts.push((await timeCli(['version'])).seconds);
    const cliStart = starts.sort((a, b) => a - b)[1]!;
    console.log(`fleet: ${FLEET} devices (a tenth meters), 100 to a site; CLI start alone (powerplane version): ${cliStart.toFixed(2)} s`);

    const pglite = await runEngine('PGlite (data directory on disk)', { POWERPLANE_DATA_DIR: path.join(dir, 'pglite') }, file);
    const url = await createBenchDatabase(cluster.adminUrl);
    const postgres = await runEngine('PostgreSQL (throwaway, fsync off)', { DATABASE_URL: url }, file);
    const round = (n: number) => Number(n.toFixed(2));
    console.log(
      JSON.stringify({
        fleet: FLEET,
        cli_start_s: round(cliStart),
        pglite_import_s: round(pglite.importS),
        pglite_reimport_s: round(pglite.reimportS),
        pglite_export_s: round(pglite.exportS),
        pglite_create_device_per_s: Math.round(pglite.createDevicePerS),
        postgres_import_s: round(postgres.importS),
        postgres_reimport_s: round(postgres.reimportS),
        postgres_export_s: round(postgres.exportS),
        postgres_create_device_per_s: Math.round(postgres.createDevicePerS),
      }),
    );
  } finally {
    await cluster.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
