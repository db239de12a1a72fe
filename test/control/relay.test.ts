import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { create } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { createClient, type Client } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeviceRegistryService, DeviceSchema, DeviceType, RegisterProfile } from '../../gen/powerplane/v1/devices_pb.ts';
import { DispatchService, SetpointPhase } from '../../gen/powerplane/v1/dispatch_pb.ts';
import { TelemetryService, type StreamReadingsRequest } from '../../gen/powerplane/v1/telemetry_pb.ts';
import { createAgent, type Agent } from '../../src/agent/agent.ts';
import { parseSiteConfig } from '../../src/agent/agent-config.ts';
import { toConfig } from '../../src/config.ts';
import { startSimulator, type Simulator } from '../../src/simulator/simulator.ts';
import { errorOf } from '../support/api.ts';
import { ENGINES, silentLog } from '../support/databases.ts';
import { registerBattery } from '../support/fleet.ts';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.ts';
import { startTestServer, type TestServer } from '../support/server.ts';
import { waitFor } from '../support/wait.ts';

/** A TCP port on 127.0.0.1 with nothing listening: the endpoint the control plane is told, and cannot reach. */
async function deadPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

interface SeenEvent {
  phase: SetpointPhase;
  kw: number;
  reason: string;
}

describe.each(ENGINES)('relay mode end to end on %s', (engine) => {
  const site = `relay-${engine}`;
  const CONTROL_PERIOD_MS = 400;
  let t: TestServer;
  let sim: Simulator;
  let proxy: TcpProxy;
  let dir: string;
  let agent: Agent | undefined;
  let registry: Client<typeof DeviceRegistryService>;
  let dispatch: Client<typeof DispatchService>;
  let bessId: string;
  const events: SeenEvent[] = [];
  const watch = new AbortController();
  let watching: Promise<void> | undefined;

  beforeAll(async () => {
    sim = await startSimulator({ bess: 1, port: 0 });
    const defaults = toConfig({});
    t = await startTestServer(engine, {
      dispatch: { ...defaults.dispatch, controlPeriodMs: CONTROL_PERIOD_MS, maxTelemetryAgeMs: 60_000 },
    });
    proxy = await startTcpProxy({ host: '127.0.0.1', port: t.server.address.port });
    dir = await mkdtemp(path.join(os.tmpdir(), 'pp-relay-e2e-'));
    const transport = createGrpcTransport({ baseUrl: t.baseUrl });
    registry = createClient(DeviceRegistryService, transport);
    dispatch = createClient(DispatchService, transport);
    await waitFor('shard leases', () => t.server.controlsBatteries());
    watching = (async () => {
      try {
        for await (const res of dispatch.watchSetpoints({ site }, { signal: watch.signal })) {
          for (const event of res.events) events.push({ phase: event.phase, kw: event.targetPowerKw, reason: event.reason });
        }
      } catch {
        // aborted in afterAll
      }
    })();
    // The control plane is given a port where nothing listens: only the agent reaches the battery.
    bessId = await registerBattery(
      registry,
      site,
      'relayed-bess',
      { host: '127.0.0.1', port: await deadPort(), unitId: 1 },
      { reversionTimeoutS: 2 },
      { relay: true },
    );
  });
  afterAll(async () => {
    watch.abort();
    await watching;
    await agent?.stop();
    await proxy?.close();
    await t?.stop();
    await sim?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('stores the relay flag with the battery and refuses it on a meter, naming the field', async () => {
    const { device } = await registry.getDevice({ id: bessId });
    expect(device?.spec.case === 'bess' && device.spec.value.modbus?.relay).toBe(true);
    const refused = registry.createDevice({
      device: create(DeviceSchema, {
        name: 'relayed-meter',
        site,
        type: DeviceType.METER,
        spec: {
          case: 'meter',
          value: {
            modbus: { endpoint: { host: '127.0.0.1', port: 502, unitId: 1 }, registerProfile: RegisterProfile.SUNSPEC, relay: true },
          },
        },
      }),
    });
    expect(await errorOf(refused)).toEqual({
      code: 'InvalidArgument',
      message: 'device.meter.modbus.relay must be false for a meter (only batteries take setpoints) (got true)',
    });
  });

  it('fails relay setpoints with a clear reason while the site has no agent stream', async () => {
    // The first plan releases the battery; with no agent the release cannot go anywhere.
    await waitFor('a failed release', () => events.some((e) => e.phase === SetpointPhase.FAILED));
    const failed = events.find((e) => e.phase === SetpointPhase.FAILED)!;
    expect(failed.reason).toBe(`unavailable (no agent connected to any replica for site ${site})`);
    expect(sim.bess[0]!.state().wsetEna).not.toBe(1);
  });

  it(
    'makes the battery hold a dispatched setpoint through the agent, falls back when the agent is cut off, ' +
      'and resumes when it returns',
    async () => {
      const config = parseSiteConfig({
        site,
        server: { url: `http://127.0.0.1:${proxy.port}` },
        devices: [
          {
            deviceId: bessId,
            kind: 'bess',
            endpoint: sim.bess[0]!.endpoint,
            pollingIntervalMs: 200,
            reversionTimeoutS: 2,
            heartbeatIntervalMs: 300,
          },
        ],
        spool: { dir: path.join(dir, 'spool'), maxBytes: 4 * 1024 * 1024 },
        batch: { maxReadings: 10, maxDelayMs: 200 },
      });
      agent = createAgent(config, { log: silentLog, stream: { backoff: { initialMs: 50, maxMs: 300 } } });
      await agent.start();
      await waitFor('the agent streaming', () => agent!.stats().stream.acks >= 1);

      await dispatch.submitDispatch({
        requestId: `relay-${engine}-30`,
        target: { case: 'site', value: site },
        intervals: [
          {
            startTime: timestampFromMs(Date.now() - 1_000),
            endTime: timestampFromMs(Date.now() + 120_000),
            command: { case: 'powerKw', value: 30 },
          },
        ],
      });
      const battery = () => sim.bess[0]!.state();
      await waitFor('the battery at 30 kW', () => battery().wsetEna === 1 && battery().wsetW === 30_000);
      await waitFor('a verified event', () => events.some((e) => e.phase === SetpointPhase.VERIFIED && e.kw === 30));
      const verified = events.find((e) => e.phase === SetpointPhase.VERIFIED && e.kw === 30)!;
      expect(verified.reason).toBe(`relayed through the agent of site ${site}`);
      expect(events.some((e) => e.phase === SetpointPhase.WRITTEN && e.kw === 30)).toBe(true);

      // Held past the battery's 2 s reversion timeout and the 0.8 s validity of one message:
      // the refreshes keep the agent holding it, and the agent's heartbeat keeps the battery.
      const reversionsBefore = battery().reversions ?? 0;
      await new Promise((resolve) => setTimeout(resolve, 3_500));
      expect(battery()).toMatchObject({ wsetEna: 1, wsetW: 30_000, locRemCtl: 0 });
      expect(battery().reversions ?? 0).toBe(reversionsBefore);
      expect(agent.stats().stream.acks).toBeGreaterThan(3);
      // The audit table has it too.
      const stored = await sql<{ reason: string }>`select reason from powerplane.setpoint_events
      where device_id = ${bessId} and phase = 'VERIFIED' and target_power_kw = 30`.execute(t.server.database.db);
      expect(stored.rows.map((r) => r.reason)).toContain(`relayed through the agent of site ${site}`);

      // The agent loses the control plane: the setpoint fails at once, the agent lets go at the
      // message's expiry, and the battery falls back on its own after its timeout.
      const seenBeforeCut = events.length;
      proxy.cut();
      await waitFor('a failed event for the held setpoint', () =>
        events.slice(seenBeforeCut).some((e) => e.phase === SetpointPhase.FAILED && e.kw === 30),
      );
      expect(events.slice(seenBeforeCut).find((e) => e.phase === SetpointPhase.FAILED)!.reason).toBe(
        `the agent stream of site ${site} closed`,
      );
      await waitFor('the battery reverting on its own', () => (battery().reversions ?? 0) > reversionsBefore, 10_000);
      expect(battery().locRemCtl).toBe(1);
      // Replanning keeps trying and keeps failing, with the reason.
      await waitFor('a replanned setpoint failing', () =>
        events.slice(seenBeforeCut).some((e) => e.phase === SetpointPhase.FAILED && /no agent connected/.test(e.reason)),
      );

      // The agent comes back: the next plan goes down its new stream and the battery holds again.
      const seenBeforeReturn = events.length;
      proxy.restore();
      await waitFor('the battery at 30 kW again', () => battery().wsetEna === 1 && battery().wsetW === 30_000 && battery().locRemCtl === 0);
      await waitFor('a new verified event', () =>
        events.slice(seenBeforeReturn).some((e) => e.phase === SetpointPhase.VERIFIED && e.kw === 30),
      );
    },
    60_000,
  );

  it('refuses a stream that changes its site, naming hello.site', async () => {
    const telemetry = createClient(TelemetryService, createGrpcTransport({ baseUrl: t.baseUrl }));
    async function* requests(): AsyncGenerator<StreamReadingsRequest> {
      yield create(TelemetryService.method.streamReadings.input, { message: { case: 'hello', value: { site: 'site-x' } } });
      yield create(TelemetryService.method.streamReadings.input, { message: { case: 'hello', value: { site: 'site-y' } } });
    }
    const streaming = (async () => {
      for await (const res of telemetry.streamReadings(requests())) void res;
    })();
    expect(await errorOf(streaming)).toEqual({
      code: 'InvalidArgument',
      message: 'hello.site must not change within a stream (it is "site-x") (got "site-y")',
    });
  });
});
