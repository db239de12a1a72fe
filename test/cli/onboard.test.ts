import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { TokenService } from '../../gen/powerplane/v1/auth_pb.ts';
import { createAgent } from '../../src/agent/agent.ts';
import { parseSiteConfig } from '../../src/agent/agent-config.ts';
import { bearer } from '../../src/auth/bearer.ts';
import { createTokenStore } from '../../src/auth/tokens.ts';
import { main } from '../../src/cli/main.ts';
import { toConfig } from '../../src/config.ts';
import { SCOPES } from '../../src/rpc/principal.ts';
import { startSimulator, type Simulator } from '../../src/simulator/simulator.ts';
import { silentLog } from '../support/databases.ts';
import { startTestServer, type TestServer } from '../support/server.ts';
import { waitFor } from '../support/wait.ts';

/**
 * Onboarding a site from the command line against a real control plane over HTTP/2 with
 * authentication on: `devices import` of a fleet CSV naming simulated devices, `devices
 * export`, `agent init`, then the agent run from the written config storing readings of
 * every device with the token `agent init` created.
 */
describe('onboarding a site: devices import, export and agent init', () => {
  let t: TestServer;
  let sim: Simulator;
  let dir: string;
  let admin: string;
  let out: string[];
  let err: string[];

  beforeAll(async () => {
    const base = toConfig({ dataDir: 'memory://' });
    t = await startTestServer('pglite', { auth: { ...base.auth, adminTokenFile: undefined } });
    const store = createTokenStore({ db: t.server.database.db, cacheMs: 0 });
    admin = (await store.create({ name: 'admin', scopes: [...SCOPES] }, 'test')).secret;
    sim = await startSimulator({ bess: 2, meters: 1, port: 0 });
    dir = await mkdtemp(path.join(os.tmpdir(), 'pp-onboard-'));
  });
  afterAll(async () => {
    await sim?.stop();
    await t?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    out = [];
    err = [];
    vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => void out.push(args.join(' ')));
    vi.spyOn(console, 'error').mockImplementation((...args: unknown[]) => void err.push(args.join(' ')));
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => (out.push(String(chunk)), true));
  });
  afterEach(() => vi.restoreAllMocks());

  const client = (...argv: string[]) => main([...argv, '--server', t.baseUrl, '--token', admin]);

  /** The site's fleet CSV: the simulator's meter and batteries, polled every 200 ms. */
  async function fleetFile(name: string, edit: (row: string, i: number) => string = (row) => row): Promise<string> {
    const rows = [
      `meter-0,onboard,meter,${sim.meters[0]!.endpoint.host},${sim.meters[0]!.endpoint.port},${sim.meters[0]!.endpoint.unitId},,,,,,,200`,
      ...sim.bess.map(
        ({ endpoint }, i) => `bess-${i},onboard,bess,${endpoint.host},${endpoint.port},${endpoint.unitId},sunspec,100,100,200,5,95,200`,
      ),
    ].map(edit);
    const header = 'name,site,type,host,port,unit_id,profile,rated_charge_power_kw,rated_discharge_power_kw,capacity_kwh,';
    const file = path.join(dir, name);
    await writeFile(file, `${header}min_soe_percent,max_soe_percent,polling_interval_ms\n${rows.join('\n')}\n`);
    return file;
  }

  it('imports a fleet file, says nothing changed the second time, and changes nothing in a dry run', async () => {
    const file = await fleetFile('fleet.csv');
    expect(await client('devices', 'import', '--file', file)).toBe(0);
    expect(out).toEqual(['3 devices: 3 created, 0 updated, 0 unchanged']);
    out.length = 0;
    expect(await client('devices', 'import', '--file', file)).toBe(0);
    expect(out).toEqual(['nothing changed: all 3 devices are registered as the file says']);

    out.length = 0;
    const changed = await fleetFile('changed.csv', (row, i) => (i === 2 ? row.replace(',100,100,200,', ',100,100,400,') : row));
    expect(await client('devices', 'import', '--file', changed, '--dry-run', '--verbose')).toBe(0);
    expect(out).toEqual([
      expect.stringMatching(/^line 4\tupdated\t[0-9a-f-]{36}\tonboard\tbess-1$/),
      'dry run, nothing written: 3 devices would be 0 created, 1 updated, 2 unchanged',
    ]);
    out.length = 0;
    expect(await client('devices', 'import', '--file', file)).toBe(0);
    expect(out).toEqual(['nothing changed: all 3 devices are registered as the file says']);
  });

  it('exits 1 naming the line and column of a bad row, and 2 for a file it cannot read', async () => {
    const bad = await fleetFile('bad.csv', (row, i) => (i === 1 ? row.replace(',sunspec,', ',modbus,') : row));
    expect(await client('devices', 'import', '--file', bad)).toBe(1);
    expect(err.join('\n')).toContain(`${bad}: a problem, nothing imported\n  line 3, column profile: must be sunspec, tesla-powerpack`);
    expect(await client('devices', 'import', '--file', path.join(dir, 'missing.csv'))).toBe(2);
    expect(err.join('\n')).toContain('cannot be read (ENOENT)');
  });

  it('exports the site as a file that imports back with nothing changed', async () => {
    expect(await client('devices', 'export', '--site', 'onboard')).toBe(0);
    const exported = out.join('');
    expect(exported.split('\n').filter(Boolean)).toHaveLength(4);
    const file = path.join(dir, 'exported.csv');
    await writeFile(file, exported);
    out.length = 0;
    expect(await client('devices', 'import', '--file', file)).toBe(0);
    expect(out).toEqual(['nothing changed: all 3 devices are registered as the file says']);
  });

  it('writes the agent config with a site-bound telemetry token, and the agent run from it stores readings of every device', async () => {
    const config = path.join(dir, 'site.json');
    const spool = path.join(dir, 'spool');
    expect(await client('agent', 'init', '--site', 'onboard', '--out', config, '--spool-dir', spool)).toBe(0);
    expect(err.join('\n')).toContain(`wrote ${config}: site onboard, 3 devices (2 batteries, 1 meters)`);
    expect((await stat(config)).mode & 0o777).toBe(0o600);
    const site = parseSiteConfig(JSON.parse(await readFile(config, 'utf8')));
    expect(site.server.url).toBe(t.baseUrl);
    expect(site.devices.map((d) => [d.kind, d.endpoint.port, d.endpoint.unitId, d.profile, d.pollingIntervalMs])).toEqual([
      ['bess', sim.bess[0]!.endpoint.port, sim.bess[0]!.endpoint.unitId, 'sunspec', 200],
      ['bess', sim.bess[1]!.endpoint.port, sim.bess[1]!.endpoint.unitId, 'sunspec', 200],
      ['meter', sim.meters[0]!.endpoint.port, sim.meters[0]!.endpoint.unitId, 'sunspec', 200],
    ]);

    const tokensAs = (token: string) =>
      createClient(TokenService, createGrpcTransport({ baseUrl: t.baseUrl, interceptors: [bearer(token)] }));
    const tokens = tokensAs(admin);
    const caller = await tokensAs(site.server.token!).getCaller({});
    expect(caller).toMatchObject({ scopes: ['telemetry:write'], sites: ['onboard'] });
    expect((await tokens.listTokens({})).tokens.filter((k) => k.name === 'agent onboard')).toHaveLength(1);

    const agent = createAgent(site, { log: silentLog });
    await agent.start();
    try {
      const ids = site.devices.map((d) => d.deviceId);
      await waitFor('a reading of every device', async () => {
        const rows = await t.server.database.withSession((s) =>
          s.query<{ n: number }>(
            `select count(distinct device_id)::int as n from (
               select device_id from flux.mg_meter_readings where device_id = any($1::uuid[])
               union all select device_id from flux.mg_bess_readings where device_id = any($1::uuid[])) r`,
            [ids],
          ),
        );
        return rows[0]!.n === 3;
      });
    } finally {
      await agent.stop({ drainMs: 1000 });
    }
  });

  it('keeps an existing config, refuses a site without devices, and creates no token for either', async () => {
    const config = path.join(dir, 'kept.json');
    await writeFile(config, '{}');
    const tokens = createClient(TokenService, createGrpcTransport({ baseUrl: t.baseUrl, interceptors: [bearer(admin)] }));
    const before = (await tokens.listTokens({})).tokens.length;
    expect(await client('agent', 'init', '--site', 'onboard', '--out', config)).toBe(2);
    expect(err.join('\n')).toContain(`--out ${config} exists; --force replaces it`);
    expect(await readFile(config, 'utf8')).toBe('{}');
    expect(await client('agent', 'init', '--site', 'nowhere', '--out', path.join(dir, 'nowhere.json'))).toBe(1);
    expect(err.join('\n')).toContain('site "nowhere" has no active devices in the registry');
    expect((await tokens.listTokens({})).tokens).toHaveLength(before);

    expect(await client('agent', 'init', '--site', 'onboard', '--out', config, '--force', '--agent-token', 'pp_given')).toBe(0);
    expect(JSON.parse(await readFile(config, 'utf8')).server.token).toBe('pp_given');
    expect((await stat(config)).mode & 0o777).toBe(0o600);
    expect((await tokens.listTokens({})).tokens).toHaveLength(before);
  });
});
