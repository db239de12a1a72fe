import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { copyFile, mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAgent, type Agent } from '../../src/agent/agent.ts';
import { parseSiteConfig } from '../../src/agent/agent-config.ts';
import { createPowerplaneClient, DeviceType, RegisterProfile, type PowerplaneClient } from '../../src/client/index.ts';
import { startSimulator, type Simulator } from '../../src/simulator/simulator.ts';
import { silentLog } from '../support/databases.ts';
import { startServeProcess, type ServeProcess } from '../support/serve-process.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const SITE = 'site-a';

/** A child process's exit code and output; SIGKILLed (and failing) after `timeoutMs`. */
async function run(args: string[], cwd: string, timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  return { code, stdout, stderr };
}

/**
 * The package as an integrator installs it: `package.json` (its name and exports), the
 * client built to JavaScript by the same script `prepare` runs, and the example beside them;
 * `node_modules` is the repository's.
 */
async function buildPackage(dir: string): Promise<void> {
  const manifest = JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8')) as Record<string, unknown>;
  await writeFile(path.join(dir, 'package.json'), JSON.stringify({ name: manifest.name, type: manifest.type, exports: manifest.exports }));
  await symlink(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'), 'dir');
  await mkdir(path.join(dir, 'examples'));
  await copyFile(path.join(ROOT, 'examples/trade.ts'), path.join(dir, 'examples/trade.ts'));
  const build = await run(
    ['--import', 'tsx', path.join(ROOT, 'scripts/build-client.ts'), '--out-dir', path.join(dir, 'dist/client')],
    ROOT,
    240_000,
  );
  if (build.code !== 0) throw new Error(`build-client failed (${build.code}): ${build.stdout}${build.stderr}`);
}

describe('examples/trade.ts through the built powerplane/client package', () => {
  let dir: string;
  let pkg: string;
  let sim: Simulator;
  let serve: ServeProcess;
  let agent: Agent | undefined;
  let client: PowerplaneClient;
  let adminToken: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'powerplane-trade-'));
    pkg = path.join(dir, 'package');
    await mkdir(pkg);
    // The build and the control plane's first start (migrations) take the longest: side by side.
    [, serve, sim] = await Promise.all([
      buildPackage(pkg),
      startServeProcess({ POWERPLANE_DATA_DIR: path.join(dir, 'data'), POWERPLANE_AUTH: 'on', POWERPLANE_CONTROL_PERIOD_MS: '500' }),
      startSimulator({ bess: 2 }),
    ]);
    adminToken = (await readFile(path.join(dir, 'data/admin.token'), 'utf8')).trim();
    client = createPowerplaneClient({ baseUrl: serve.baseUrl, token: adminToken, transport: 'grpc' });
    const devices = [];
    for (const [i, battery] of sim.bess.entries()) {
      const { device } = await client.devices.createDevice({
        device: {
          name: `bess-${i + 1}`,
          site: SITE,
          type: DeviceType.BESS,
          spec: {
            case: 'bess',
            value: {
              ratedChargePowerKw: 100,
              ratedDischargePowerKw: 100,
              capacityKwh: 200,
              modbus: { endpoint: { ...battery.endpoint }, registerProfile: RegisterProfile.SUNSPEC },
            },
          },
        },
      });
      devices.push({ deviceId: device!.id, kind: 'bess', endpoint: { ...battery.endpoint }, pollingIntervalMs: 200 });
    }
    // The site's agent, with a token of its own as an operator would hand it out.
    const { secret } = await client.tokens.createToken({ name: 'agent site-a', scopes: ['telemetry:write'], sites: [SITE] });
    agent = createAgent(
      parseSiteConfig({
        site: SITE,
        server: { url: serve.baseUrl, token: secret },
        devices,
        spool: { dir: path.join(dir, 'spool') },
        batch: { maxReadings: 100, maxDelayMs: 200 },
      }),
      { log: silentLog },
    );
    await agent.start();
  }, 300_000);

  afterAll(async () => {
    client?.close();
    await agent?.stop();
    await serve?.stop();
    await sim?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('loads under plain Node, without a TypeScript loader, with its type declarations', async () => {
    const probe = "const m = await import('powerplane/client'); console.log(typeof m.createPowerplaneClient, typeof m.DispatchService);";
    const result = await run(['--input-type=module', '-e', probe], pkg, 60_000);
    expect(result).toMatchObject({ code: 0, stdout: 'function object\n' });
    expect((await stat(path.join(pkg, 'dist/client/src/client/index.d.ts'))).isFile()).toBe(true);
  });

  it('publishes, dispatches the site and exits 0 once every battery verified, printing a summary', async () => {
    const args = ['examples/trade.ts', '--target', `127.0.0.1:${serve.port}`, '--token', adminToken, '--site', SITE, '--kw', '20'];
    const result = await run(['--import', 'tsx', ...args], pkg, 120_000);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^published niv_estimate 120 MW and imbalance_price 95 GBP\/MWh/m);
    expect(result.stdout).toMatch(/^submitted dispatch [0-9a-f-]{36}: 20 kW \(discharge\) for site-a/m);
    expect(result.stdout).toMatch(/^ {2}bess-1 \(.+\): VERIFIED at 10 kW/m);
    expect(result.stdout).toMatch(/^ {2}bess-2 \(.+\): VERIFIED at 10 kW/m);
    expect(result.stdout).toMatch(/^summary: verified - 2 of 2 batteries of site-a hold dispatch/m);
    // The batteries themselves hold the split: 10 kW each, positive = discharge.
    expect(sim.bess.map((b) => b.state().wsetW)).toEqual([10_000, 10_000]);
  });

  it('exits 3 naming a missing flag, and 3 for a site without batteries', async () => {
    const missing = await run(['--import', 'tsx', 'examples/trade.ts', '--target', `127.0.0.1:${serve.port}`, '--site', SITE], pkg, 60_000);
    expect(missing.code).toBe(3);
    expect(missing.stderr).toContain('--token is required');
    const args = ['examples/trade.ts', '--target', `127.0.0.1:${serve.port}`, '--token', adminToken, '--site', 'nowhere'];
    const empty = await run(['--import', 'tsx', ...args], pkg, 60_000);
    expect(empty.code).toBe(3);
    expect(empty.stderr).toContain('site nowhere has no active battery');
  });
});
