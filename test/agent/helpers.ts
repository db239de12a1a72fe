import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { DeviceRegistryService, DeviceType, RegisterProfile } from '../../gen/powerplane/v1/devices_pb.ts';
import { parseSiteConfig, type SiteConfig } from '../../src/agent/agent-config.ts';
import type { Config } from '../../src/config.ts';
import type { ModbusEndpoint } from '../../src/modbus/types.ts';
import { startSimulator, type Simulator } from '../../src/simulator/simulator.ts';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

/** A control plane, a simulated site (a meter and two batteries), a cuttable proxy in between, and a temp dir. */
export interface Site {
  t: TestServer;
  sim: Simulator;
  proxy: TcpProxy;
  dir: string;
  /** Registered device ids: the meter first, then the batteries. */
  meterId: string;
  bessIds: string[];
  /** A site config streaming through the proxy, spooling in `spoolDir`. */
  config(spoolDir?: string, overrides?: Record<string, unknown>): SiteConfig;
  close(): Promise<void>;
}

/** Registers a device through DeviceRegistryService and returns its id. */
async function register(baseUrl: string, kind: 'bess' | 'meter', name: string, endpoint: ModbusEndpoint): Promise<string> {
  const registry = createClient(DeviceRegistryService, createGrpcTransport({ baseUrl }));
  const modbus = { endpoint, registerProfile: RegisterProfile.SUNSPEC };
  const res = await registry.createDevice({
    device:
      kind === 'bess'
        ? {
            name,
            site: 'site-agent',
            type: DeviceType.BESS,
            spec: {
              case: 'bess',
              value: {
                ratedChargePowerKw: 100,
                ratedDischargePowerKw: 100,
                capacityKwh: 200,
                minSoePercent: 5,
                maxSoePercent: 95,
                inverterBlockCount: 2,
                rampRateKwPerS: 50,
                modbus,
              },
            },
          }
        : { name, site: 'site-agent', type: DeviceType.METER, spec: { case: 'meter', value: { modbus } } },
  });
  return res.device!.id;
}

/** Starts everything a site test needs; `overrides` adjust the control plane's config. */
export async function startSite(overrides: Partial<Config> = {}): Promise<Site> {
  const t = await startTestServer('pglite', overrides);
  const sim = await startSimulator({ bess: 2, meters: 1, port: 0 });
  const proxy = await startTcpProxy({ host: '127.0.0.1', port: t.server.address.port });
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pp-agent-'));
  const meter = sim.meters[0]!;
  const meterId = await register(t.baseUrl, 'meter', 'meter-0', meter.endpoint);
  const bessIds = [
    await register(t.baseUrl, 'bess', 'bess-0', sim.bess[0]!.endpoint),
    await register(t.baseUrl, 'bess', 'bess-1', sim.bess[1]!.endpoint),
  ];
  return {
    t,
    sim,
    proxy,
    dir,
    meterId,
    bessIds,
    config(spoolDir = path.join(dir, 'spool'), overrides = {}) {
      return parseSiteConfig({
        site: 'site-agent',
        server: { url: `http://127.0.0.1:${proxy.port}` },
        devices: [
          { deviceId: meterId, kind: 'meter', endpoint: meter.endpoint, profile: 'sunspec', pollingIntervalMs: 100 },
          ...bessIds.map((id, i) => ({
            deviceId: id,
            kind: 'bess',
            endpoint: sim.bess[i]!.endpoint,
            profile: 'sunspec',
            pollingIntervalMs: 100,
          })),
        ],
        spool: { dir: spoolDir, maxBytes: 8 * 1024 * 1024 },
        batch: { maxReadings: 6, maxDelayMs: 150 },
        ...overrides,
      });
    },
    async close() {
      await proxy.close();
      await sim.stop();
      await t.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export { waitFor } from '../support/wait.ts';

/** Rows stored for the site's devices: meter rows and battery rows, and the distinct (device, time) keys among them. */
export async function storedRows(site: Site): Promise<{ rows: number; distinct: number }> {
  const db = site.t.server.database;
  const ids = [site.meterId, ...site.bessIds];
  const rows = await db.withSession((s) =>
    s.query<{ rows: number; distinct: number }>(
      `select count(*)::int as rows, count(distinct (device_id, time))::int as distinct
       from (select device_id, time from flux.mg_meter_readings where device_id = any($1::uuid[])
             union all
             select device_id, time from flux.mg_bess_readings where device_id = any($1::uuid[])) r`,
      [ids],
    ),
  );
  return rows[0]!;
}
