import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CommandSource,
  StreamReadingsRequestSchema,
  StreamReadingsResponseSchema,
  type BessReading,
  type SetpointOutcome,
  type StreamReadingsRequest,
  type StreamReadingsResponse,
} from '../../gen/powerplane/v1/telemetry_pb.ts';
import { createAgent, type Agent } from '../../src/agent/agent.ts';
import { parseSiteConfig } from '../../src/agent/agent-config.ts';
import { STREAM_READINGS_PATH } from '../../src/agent/stream-request.ts';
import { parseRegisterMap } from '../../src/modbus/register-map.ts';
import { startSimulator, type Simulator } from '../../src/simulator/simulator.ts';
import { silentLog } from '../support/databases.ts';
import { waitFor } from './helpers.ts';

/**
 * A stand-in control plane: acks every batch, records battery readings and setpoint
 * outcomes, and lets the test send RelaySetpoints down the agent's stream.
 */
async function startFakeControlPlane(): Promise<{
  port: number;
  outcomes: SetpointOutcome[];
  bessReadings: BessReading[];
  authorization: string[];
  /** Each hello's site, and whether it was the first message of its call. */
  hellos: { site: string; first: boolean }[];
  relay(setpoint: {
    setpointId: string;
    deviceId: string;
    targetPowerKw: number;
    expireMs: number;
    release?: boolean;
    epoch?: bigint;
  }): void;
  stop(): Promise<void>;
}> {
  const outcomes: SetpointOutcome[] = [];
  const bessReadings: BessReading[] = [];
  const authorization: string[] = [];
  const hellos: { site: string; first: boolean }[] = [];
  const calls = new Set<grpc.ServerDuplexStream<StreamReadingsRequest, StreamReadingsResponse>>();
  const server = new grpc.Server();
  const definition: grpc.ServiceDefinition = {
    StreamReadings: {
      path: STREAM_READINGS_PATH,
      requestStream: true,
      responseStream: true,
      requestSerialize: (m: StreamReadingsRequest) => Buffer.from(toBinary(StreamReadingsRequestSchema, m)),
      requestDeserialize: (b: Buffer) => fromBinary(StreamReadingsRequestSchema, b),
      responseSerialize: (m: StreamReadingsResponse) => Buffer.from(toBinary(StreamReadingsResponseSchema, m)),
      responseDeserialize: (b: Buffer) => fromBinary(StreamReadingsResponseSchema, b),
    },
  };
  server.addService(definition, {
    StreamReadings: (call: grpc.ServerDuplexStream<StreamReadingsRequest, StreamReadingsResponse>) => {
      calls.add(call);
      authorization.push(String(call.metadata.get('authorization')[0] ?? ''));
      let first = true;
      call.on('data', (req: StreamReadingsRequest) => {
        if (req.message.case === 'hello') hellos.push({ site: req.message.value.site, first });
        first = false;
        if (req.message.case === 'batch') {
          bessReadings.push(...req.message.value.bessReadings);
          call.write(create(StreamReadingsResponseSchema, { message: { case: 'ack', value: { sequence: req.message.value.sequence } } }));
        } else if (req.message.case === 'setpointOutcome') {
          outcomes.push(req.message.value);
        }
      });
      call.on('end', () => call.end());
      call.on('error', () => undefined);
      call.on('close', () => calls.delete(call));
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return {
    port,
    outcomes,
    bessReadings,
    authorization,
    hellos,
    relay({ setpointId, deviceId, targetPowerKw, expireMs, release = false, epoch = 0n }) {
      const msg = create(StreamReadingsResponseSchema, {
        message: {
          case: 'relaySetpoint',
          value: { setpointId, deviceId, targetPowerKw, release, epoch, expireTime: timestampFromMs(expireMs) },
        },
      });
      for (const call of calls) call.write(msg);
    },
    stop: () =>
      new Promise<void>((resolve) => {
        for (const call of calls) call.end();
        server.tryShutdown(() => resolve());
        setTimeout(() => server.forceShutdown(), 2000).unref();
      }),
  };
}

describe('relay mode', () => {
  let sim: Simulator;
  let fake: Awaited<ReturnType<typeof startFakeControlPlane>>;
  let dir: string;
  let agent: Agent | undefined;
  let config: ReturnType<typeof parseSiteConfig>;
  const bessId = randomUUID();
  const meterId = randomUUID();

  beforeAll(async () => {
    sim = await startSimulator({ bess: 1, meters: 1, port: 0 });
    fake = await startFakeControlPlane();
    dir = await mkdtemp(path.join(os.tmpdir(), 'pp-relay-'));
  });
  afterAll(async () => {
    await agent?.stop();
    await fake?.stop();
    await sim?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('writes a relayed setpoint, holds it with the heartbeat until it expires, and reports each outcome up the stream', async () => {
    config = parseSiteConfig({
      site: 'site-relay',
      server: { url: `http://127.0.0.1:${fake.port}`, token: 'site-secret' },
      devices: [
        {
          deviceId: bessId,
          kind: 'bess',
          endpoint: sim.bess[0]!.endpoint,
          pollingIntervalMs: 100,
          reversionTimeoutS: 1,
          heartbeatIntervalMs: 250,
        },
        { deviceId: meterId, kind: 'meter', endpoint: sim.meters[0]!.endpoint, pollingIntervalMs: 100 },
      ],
      spool: { dir: path.join(dir, 'spool'), maxBytes: 4 * 1024 * 1024 },
      batch: { maxReadings: 10, maxDelayMs: 100 },
    });
    agent = createAgent(config, { log: silentLog, stream: { backoff: { initialMs: 50, maxMs: 400 } } });
    await agent.start();
    await waitFor('the agent connected', () => agent!.stats().stream.acks >= 1);
    expect(fake.authorization[0]).toBe('Bearer site-secret');

    fake.relay({ setpointId: 'sp-expired', deviceId: bessId, targetPowerKw: 10, expireMs: Date.now() - 1000 });
    fake.relay({ setpointId: 'sp-unknown', deviceId: randomUUID(), targetPowerKw: 10, expireMs: Date.now() + 5000 });
    fake.relay({ setpointId: 'sp-meter', deviceId: meterId, targetPowerKw: 10, expireMs: Date.now() + 5000 });
    const expiresAt = Date.now() + 3000;
    fake.relay({ setpointId: 'sp-1', deviceId: bessId, targetPowerKw: -40, expireMs: expiresAt });

    await waitFor('four outcomes', () => fake.outcomes.length >= 4);
    const byId = Object.fromEntries(fake.outcomes.map((o) => [o.setpointId, o]));
    expect(byId['sp-1']).toMatchObject({ verified: true, reason: '' });
    expect(byId['sp-expired']).toMatchObject({ verified: false });
    expect(byId['sp-expired']!.reason).toMatch(/expired/);
    expect(byId['sp-unknown']!.reason).toMatch(/not configured/);
    expect(byId['sp-meter']!.reason).toMatch(/not a battery/);
    expect(byId['sp-1']!.time).toBeDefined();

    // The battery holds -40 kW (charging) under remote control across several reversion timeouts' worth of heartbeats.
    const held = sim.bess[0]!.state();
    expect(held).toMatchObject({ wsetEna: 1, wsetW: -40_000, locRemCtl: 0, reversions: 0 });
    await new Promise((r) => setTimeout(r, Math.max(0, expiresAt - Date.now() - 300)));
    expect(sim.bess[0]!.state()).toMatchObject({ wsetEna: 1, wsetW: -40_000, locRemCtl: 0, reversions: 0 });
    // The agent's telemetry reports it: target -40 kW, command source DISPATCH.
    const recent = fake.bessReadings.filter((r) => r.deviceId === bessId).at(-1)!;
    expect(recent.targetPowerKw).toBeCloseTo(-40, 3);
    expect(recent.commandSource).toBe(CommandSource.DISPATCH);

    // After expiry the heartbeat stops and the battery falls back on its own.
    await waitFor('the battery reverted after the setpoint expired', () => (sim.bess[0]!.state().reversions ?? 0) >= 1, 5000);
    expect(sim.bess[0]!.state().locRemCtl).toBe(1);
  });

  it('opens its stream with a hello naming the site, and a relayed release hands the battery back to its own control', async () => {
    expect(fake.hellos.length).toBeGreaterThanOrEqual(1);
    expect(fake.hellos.every((h) => h.site === 'site-relay' && h.first)).toBe(true);

    fake.relay({ setpointId: 'sp-2', deviceId: bessId, targetPowerKw: 20, expireMs: Date.now() + 10_000 });
    await waitFor('sp-2 verified', () => fake.outcomes.some((o) => o.setpointId === 'sp-2' && o.verified));
    expect(sim.bess[0]!.state()).toMatchObject({ wsetEna: 1, wsetW: 20_000 });

    fake.relay({ setpointId: 'sp-release', deviceId: bessId, targetPowerKw: 0, release: true, expireMs: Date.now() + 10_000 });
    await waitFor('the release verified', () => fake.outcomes.some((o) => o.setpointId === 'sp-release'));
    expect(fake.outcomes.find((o) => o.setpointId === 'sp-release')).toMatchObject({ verified: true, reason: '' });
    expect(sim.bess[0]!.state()).toMatchObject({ wsetEna: 0, wsetW: 0 });
  });

  it('refuses a setpoint under a lower epoch than it has seen for the battery without writing it, and applies epoch 0', async () => {
    const outcomeOf = async (setpointId: string): Promise<SetpointOutcome> => {
      await waitFor(`the outcome of ${setpointId}`, () => fake.outcomes.some((o) => o.setpointId === setpointId));
      return fake.outcomes.find((o) => o.setpointId === setpointId)!;
    };
    const expireMs = Date.now() + 10_000;
    fake.relay({ setpointId: 'ep-7', deviceId: bessId, targetPowerKw: 15, expireMs, epoch: 7n });
    expect(await outcomeOf('ep-7')).toMatchObject({ verified: true, reason: '' });
    expect(sim.bess[0]!.state()).toMatchObject({ wsetEna: 1, wsetW: 15_000 });

    // The old owner, not yet aware it lost the site, sends under epoch 6: refused, nothing written.
    fake.relay({ setpointId: 'ep-6', deviceId: bessId, targetPowerKw: -15, expireMs, epoch: 6n });
    expect(await outcomeOf('ep-6')).toMatchObject({
      verified: false,
      reason: `stale epoch 6 (epoch 7 has been seen for device ${bessId})`,
    });
    expect(sim.bess[0]!.state()).toMatchObject({ wsetEna: 1, wsetW: 15_000 });

    // A control plane without leases sends epoch 0: applied, and epoch 7 is still the floor.
    fake.relay({ setpointId: 'ep-0', deviceId: bessId, targetPowerKw: 5, expireMs });
    expect(await outcomeOf('ep-0')).toMatchObject({ verified: true, reason: '' });
    expect(sim.bess[0]!.state()).toMatchObject({ wsetEna: 1, wsetW: 5_000 });
    fake.relay({ setpointId: 'ep-6-again', deviceId: bessId, targetPowerKw: -15, expireMs, epoch: 6n });
    expect((await outcomeOf('ep-6-again')).reason).toBe(`stale epoch 6 (epoch 7 has been seen for device ${bessId})`);

    // The same epoch and a higher one are applied; the higher one becomes the floor.
    fake.relay({ setpointId: 'ep-7-again', deviceId: bessId, targetPowerKw: 10, expireMs, epoch: 7n });
    expect(await outcomeOf('ep-7-again')).toMatchObject({ verified: true });
    fake.relay({ setpointId: 'ep-9', deviceId: bessId, targetPowerKw: 20, expireMs, epoch: 9n });
    expect(await outcomeOf('ep-9')).toMatchObject({ verified: true });
    fake.relay({ setpointId: 'ep-8', deviceId: bessId, targetPowerKw: -20, expireMs, epoch: 8n });
    expect((await outcomeOf('ep-8')).reason).toBe(`stale epoch 8 (epoch 9 has been seen for device ${bessId})`);
    expect(sim.bess[0]!.state()).toMatchObject({ wsetEna: 1, wsetW: 20_000 });

    fake.relay({ setpointId: 'ep-release', deviceId: bessId, targetPowerKw: 0, release: true, expireMs, epoch: 9n });
    expect(await outcomeOf('ep-release')).toMatchObject({ verified: true });
  });

  it('keeps the highest epoch across a restart of the agent, so a stale owner is still refused', async () => {
    await agent!.stop();
    const acks = fake.outcomes.length;
    agent = createAgent(config, { log: silentLog, stream: { backoff: { initialMs: 50, maxMs: 400 } } });
    await agent.start();
    await waitFor('the restarted agent connected', () => agent!.stats().stream.acks >= 1);
    const expireMs = Date.now() + 10_000;
    fake.relay({ setpointId: 'restart-ep-8', deviceId: bessId, targetPowerKw: -20, expireMs, epoch: 8n });
    fake.relay({ setpointId: 'restart-ep-9', deviceId: bessId, targetPowerKw: 12, expireMs, epoch: 9n });
    await waitFor('both outcomes', () => fake.outcomes.length >= acks + 2);
    const byId = Object.fromEntries(fake.outcomes.map((o) => [o.setpointId, o]));
    expect(byId['restart-ep-8']).toMatchObject({ verified: false, reason: `stale epoch 8 (epoch 9 has been seen for device ${bessId})` });
    expect(byId['restart-ep-9']).toMatchObject({ verified: true, reason: '' });
    expect(sim.bess[0]!.state()).toMatchObject({ wsetEna: 1, wsetW: 12_000 });
  });
});

describe('relay mode with a custom register map', () => {
  const acme = JSON.parse(readFileSync(path.resolve(import.meta.dirname, '../fixtures/acme-bc500.register-map.json'), 'utf8')) as Record<
    string,
    unknown
  >;
  let sim: Simulator;
  let fake: Awaited<ReturnType<typeof startFakeControlPlane>>;
  let dir: string;
  let agent: Agent | undefined;
  const bessId = randomUUID();
  const readOnlyId = randomUUID();

  beforeAll(async () => {
    sim = await startSimulator({ bess: 0, custom: 1, registerMap: parseRegisterMap(acme), port: 0 });
    fake = await startFakeControlPlane();
    dir = await mkdtemp(path.join(os.tmpdir(), 'pp-relay-map-'));
  });
  afterAll(async () => {
    await agent?.stop();
    await fake?.stop();
    await sim?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('polls a battery on its own register map, holds a relayed setpoint on it with the heartbeat, and lets go at the expiry', async () => {
    const device = sim.custom[0]!;
    const { control: _, ...readOnlyMap } = acme;
    const config = parseSiteConfig({
      site: 'site-relay-map',
      server: { url: `http://127.0.0.1:${fake.port}` },
      devices: [
        {
          deviceId: bessId,
          kind: 'bess',
          endpoint: device.endpoint,
          registerMap: acme,
          pollingIntervalMs: 100,
          reversionTimeoutS: 1,
          heartbeatIntervalMs: 250,
        },
        // The same controller through a map without a control section: polled, never written.
        {
          deviceId: readOnlyId,
          kind: 'bess',
          endpoint: device.endpoint,
          profile: 'custom',
          registerMap: readOnlyMap,
          pollingIntervalMs: 100,
        },
      ],
      spool: { dir: path.join(dir, 'spool'), maxBytes: 4 * 1024 * 1024 },
      batch: { maxReadings: 10, maxDelayMs: 100 },
    });
    agent = createAgent(config, { log: silentLog, stream: { backoff: { initialMs: 50, maxMs: 400 } } });
    await agent.start();

    // Polled through the map: SoE from its 0.1-scaled register, no power commanded, local control.
    await waitFor('readings of both devices', () => [bessId, readOnlyId].every((id) => fake.bessReadings.some((r) => r.deviceId === id)));
    const idle = fake.bessReadings.find((r) => r.deviceId === bessId)!;
    expect(idle.soePercent).toBeCloseTo(50, 1);
    expect(idle.targetPowerKw).toBe(0);
    expect(device.state()).toMatchObject({ remote: false, mode: 0, reversions: 0 });

    fake.relay({ setpointId: 'map-read-only', deviceId: readOnlyId, targetPowerKw: 10, expireMs: Date.now() + 5000 });
    const expiresAt = Date.now() + 3000;
    fake.relay({ setpointId: 'map-1', deviceId: bessId, targetPowerKw: -40, expireMs: expiresAt });
    await waitFor('both outcomes', () => fake.outcomes.filter((o) => o.setpointId.startsWith('map-')).length >= 2);
    const byId = Object.fromEntries(fake.outcomes.map((o) => [o.setpointId, o]));
    expect(byId['map-1']).toMatchObject({ verified: true, reason: '' });
    expect(byId['map-read-only']).toMatchObject({ verified: false });
    expect(byId['map-read-only']!.reason).toMatch(/cannot take setpoints .*has no control section/);

    // Written through the map's control section: mode 2, -40 kW, the device's timeout armed at 1 s.
    expect(device.state()).toMatchObject({ remote: true, mode: 2, commandW: -40_000, timeoutS: 1, reversions: 0 });
    const beat = device.state().heartbeat!;
    await waitFor('the heartbeat counting up', () => (device.state().heartbeat ?? 0) >= beat + 2);
    // Held across more than one timeout of the device by the heartbeat alone.
    await new Promise((r) => setTimeout(r, Math.max(0, expiresAt - Date.now() - 300)));
    expect(device.state()).toMatchObject({ remote: true, commandW: -40_000, reversions: 0 });
    await waitFor('a reading of the held power', () =>
      fake.bessReadings.some((r) => r.deviceId === bessId && Math.abs((r.targetPowerKw ?? 0) + 40) < 1e-6),
    );

    await waitFor('the battery reverted after the setpoint expired', () => (device.state().reversions ?? 0) >= 1, 5000);
    expect(device.state()).toMatchObject({ remote: false, mode: 0, commandW: 0 });
  });
});
