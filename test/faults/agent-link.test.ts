import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeviceType, RegisterProfile } from '../../gen/powerplane/v1/devices_pb.ts';
import { createAgent, type Agent } from '../../src/agent/agent.ts';
import { parseSiteConfig } from '../../src/agent/agent-config.ts';
import { startSimulator, type Simulator } from '../../src/simulator/simulator.ts';
import { silentLog } from '../support/databases.ts';
import { registerBattery } from '../support/fleet.ts';
import { startTestServer, type TestServer } from '../support/server.ts';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.ts';
import { sleep, waitFor } from '../support/wait.ts';
import { apiAt } from '../support/api.ts';

const SITE = 'faulty-link';

describe('the link between an agent and the control plane cycling through faults', () => {
  let t: TestServer;
  let sim: Simulator;
  let proxy: TcpProxy;
  let dir: string;
  let agent: Agent | undefined;

  beforeAll(async () => {
    t = await startTestServer('postgres');
    sim = await startSimulator({ bess: 2, meters: 1 });
    proxy = await startTcpProxy({ host: '127.0.0.1', port: t.server.address.port });
    dir = await mkdtemp(path.join(os.tmpdir(), 'pp-agent-link-'));
  });
  afterAll(async () => {
    await agent?.stop();
    await proxy?.close();
    await sim?.stop();
    await t?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('stores every reading the agent produced exactly once after latency, resets and a blackhole', async () => {
    const api = apiAt(t.baseUrl);
    const meter = sim.meters[0]!;
    const { device } = await api.registry.createDevice({
      device: {
        name: 'grid',
        site: SITE,
        type: DeviceType.METER,
        spec: { case: 'meter', value: { modbus: { endpoint: meter.endpoint, registerProfile: RegisterProfile.SUNSPEC } } },
      },
    });
    const meterId = device!.id;
    const bessIds = [
      await registerBattery(api.registry, SITE, 'bess-0', sim.bess[0]!.endpoint),
      await registerBattery(api.registry, SITE, 'bess-1', sim.bess[1]!.endpoint),
    ];
    const config = parseSiteConfig({
      site: SITE,
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
      spool: { dir: path.join(dir, 'spool'), maxBytes: 8 * 1024 * 1024 },
      batch: { maxReadings: 6, maxDelayMs: 150 },
    });
    // What the simulator produced and the agent turned into readings, by (device, time).
    const produced = new Set<string>();
    agent = createAgent(config, {
      log: silentLog,
      // A blackholed session is given up after a second without an ack, then retried.
      stream: { backoff: { initialMs: 50, maxMs: 400 }, ackTimeoutMs: 1_000, keepaliveMs: 1_000 },
      modbusTimeoutMs: 500,
      onReading: (d, r) => {
        if (r.error === undefined && (r.bess || r.meter)) produced.add(`${d.deviceId}|${r.time.getTime()}`);
      },
    });
    const a = agent;
    await a.start();
    const acksResume = async (what: string) => {
      const acks = a.stats().stream.acks;
      await waitFor(`acks ${what}`, () => a.stats().stream.acks >= acks + 3, 15_000);
    };
    await acksResume('before any fault');

    proxy.latency(80);
    await sleep(1_000);
    await acksResume('through 80 ms of latency');

    const sessions = a.stats().stream.sessions;
    proxy.reset();
    await waitFor('a new session after the reset', () => a.stats().stream.sessions > sessions);
    await acksResume('after the reset, with the latency still on');

    proxy.blackhole();
    const swallowed = proxy.stats().swallowedBytes;
    await sleep(2_500);
    expect(proxy.stats().swallowedBytes).toBeGreaterThan(swallowed);
    proxy.heal();
    await acksResume('after the blackhole healed');

    proxy.latency(30);
    await sleep(300);
    proxy.reset();
    proxy.heal();
    await acksResume('after a reset in the middle of traffic');

    await a.stop({ drainMs: 10_000 });
    const stats = a.stats();
    expect(stats.spool.pendingBatches).toBe(0);
    expect(stats.spool.droppedBatches).toBe(0);
    expect(stats.readingsLost).toBe(0);
    expect(stats.readings).toBe(produced.size);
    expect(proxy.stats().resets).toBeGreaterThan(0);

    const stored = await t.server.database.withSession((s) =>
      s.query<{ key: string }>(
        `select device_id::text || '|' || (extract(epoch from time) * 1000)::bigint::text as key
           from (select device_id, time from flux.mg_meter_readings where device_id = any($1::uuid[])
                 union all
                 select device_id, time from flux.mg_bess_readings where device_id = any($1::uuid[])) r`,
        [[meterId, ...bessIds]],
      ),
    );
    const keys = stored.map((r) => r.key);
    const storedKeys = new Set(keys);
    // Nothing doubled: one row per key. Nothing lost: every produced reading is a row.
    expect(storedKeys.size).toBe(keys.length);
    expect([...produced].filter((k) => !storedKeys.has(k))).toEqual([]);
    expect(keys.filter((k) => !produced.has(k))).toEqual([]);
    expect(keys.length).toBeGreaterThan(60);
  });
});
