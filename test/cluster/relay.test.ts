import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import { sql } from 'kysely';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TelemetryService } from '../../gen/powerplane/v1/telemetry_pb.ts';
import { createAgent, type Agent } from '../../src/agent/agent.ts';
import { parseSiteConfig } from '../../src/agent/agent-config.ts';
import { createAgentStreams, type AgentStreams } from '../../src/telemetry/agent-streams.ts';
import type { Notifications } from '../../src/cluster/cluster.types.ts';
import { createNotifications } from '../../src/cluster/notifications.ts';
import { createClusterRelayChannel, type ClusterRelayChannel } from '../../src/telemetry/relay-channel.ts';
import { toConfig } from '../../src/config.ts';
import { createRelayWriter } from '../../src/control/relay-writer.ts';
import type { SetpointEvent } from '../../src/modbus/types.ts';
import type { SetpointWriter } from '../../src/modbus/setpoint-writer.ts';
import { startSimulator, type Simulator } from '../../src/simulator/simulator.ts';
import type { Database } from '../../src/storage/database.ts';
import { createRelayHub, type RelayHub, type RelayOutcome } from '../../src/telemetry/relay-hub.ts';
import { createTelemetryService } from '../../src/telemetry/telemetry.service.ts';
import { createTelemetry, type Telemetry } from '../../src/telemetry/telemetry.ts';
import { createTestDatabase, silentLog, type TestDatabase } from '../support/databases.ts';
import { waitFor } from '../support/wait.ts';

/** One "replica": its hub, its view of every replica's streams, its channel, its notifications. */
interface Replica {
  readonly id: string;
  readonly hub: RelayHub;
  readonly streams: AgentStreams;
  readonly channel: ClusterRelayChannel;
  readonly notifications: Notifications;
}

async function startReplica(database: Database, id: string): Promise<Replica> {
  await sql`insert into powerplane.replicas (id, expires_at) values (${id}, now() + interval '1 hour')`.execute(database.db);
  const notifications = await createNotifications({ database, replicaId: id, log: silentLog });
  const streams = createAgentStreams({ db: database.db, notifications, replicaId: id, log: silentLog });
  const hub = createRelayHub({ log: silentLog, membership: streams });
  const channel = createClusterRelayChannel({ hub, streams, notifications, replicaId: id, log: silentLog });
  await streams.start();
  return { id, hub, streams, channel, notifications };
}

async function stopReplica(replica: Replica | undefined): Promise<void> {
  replica?.channel.close();
  await replica?.streams.stop();
  await replica?.notifications.close();
}

const setpoint = (deviceId: string, epoch: number) => ({
  setpointId: randomUUID(),
  deviceId,
  targetPowerKw: 7,
  release: false,
  expireAt: new Date(Date.now() + 10_000),
  epoch,
});

describe('relay across replicas on postgres', () => {
  const site = 'relay-across';
  const PERIOD_MS = 400;
  let testDb: TestDatabase;
  let database: Database;
  let a: Replica | undefined;
  let b: Replica | undefined;
  let telemetry: Telemetry | undefined;
  let server: http2.Http2Server | undefined;
  const sessions = new Set<http2.ServerHttp2Session>();
  let sim: Simulator | undefined;
  let agent: Agent | undefined;
  let dir: string | undefined;
  const writers: SetpointWriter[] = [];

  beforeAll(async () => {
    testDb = await createTestDatabase('postgres');
    database = await testDb.open();
    a = await startReplica(database, 'replica-a');
    b = await startReplica(database, 'replica-b');
    // Replica B serves agent streams over HTTP/2 into its own hub.
    const config = { ...toConfig({ listen: '127.0.0.1:0', auth: 'off' }), database: testDb.config };
    telemetry = createTelemetry({ config, database, metricsRegistry: new Registry(), log: silentLog });
    const service = createTelemetryService(telemetry.ingest, silentLog, b.hub);
    server = http2.createServer(connectNodeAdapter({ routes: (router) => router.service(TelemetryService, service) }));
    server.on('session', (session) => {
      sessions.add(session);
      session.on('close', () => sessions.delete(session));
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    sim = await startSimulator({ bess: 1, port: 0 });
    dir = await mkdtemp(path.join(os.tmpdir(), 'pp-relay-cluster-'));
  });
  afterAll(async () => {
    for (const w of writers) await w.stop();
    await agent?.stop();
    for (const session of sessions) session.destroy();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    await stopReplica(a);
    await stopReplica(b);
    await telemetry?.close();
    await sim?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
    await testDb?.drop();
  });

  const writerOn = (replica: Replica, deviceId: string, epoch: number, events: SetpointEvent[]): SetpointWriter => {
    const w = createRelayWriter({
      deviceId,
      site,
      channel: replica.channel,
      refreshIntervalMs: PERIOD_MS,
      onEvent: (e) => events.push(e),
      epoch: () => epoch,
      log: silentLog,
    });
    writers.push(w);
    return w;
  };

  it(
    'drives a battery through the agent stream another replica holds, gets each outcome back, ' +
      "and the agent refuses the old owner's lower epoch",
    async () => {
      const bessId = randomUUID();
      const config = parseSiteConfig({
        site,
        server: { url: `http://127.0.0.1:${(server!.address() as AddressInfo).port}` },
        devices: [
          {
            deviceId: bessId,
            kind: 'bess',
            endpoint: sim!.bess[0]!.endpoint,
            pollingIntervalMs: 500,
            reversionTimeoutS: 2,
            heartbeatIntervalMs: 300,
          },
        ],
        spool: { dir: path.join(dir!, 'spool'), maxBytes: 4 * 1024 * 1024 },
        batch: { maxReadings: 10, maxDelayMs: 200 },
      });
      agent = createAgent(config, { log: silentLog, stream: { backoff: { initialMs: 50, maxMs: 300 } } });
      await agent.start();
      await waitFor('replica A to learn of the stream on B', () => a!.channel.connected(site), 10_000);
      expect(a!.hub.connected(site)).toBe(false);
      expect(a!.streams.holders(site).map((h) => h.replica)).toEqual(['replica-b']);
      let closings = 0;
      a!.channel.watch(site, () => closings++);

      // Replica A owns the site under epoch 3; its writer sends, B's hub carries it down the stream.
      const events: SetpointEvent[] = [];
      const owner = writerOn(a!, bessId, 3, events);
      const seq = owner.setTarget(25);
      await waitFor('the setpoint verified on A', () => events.some((e) => e.seq === seq && e.phase === 'verified'), 15_000);
      expect(events.find((e) => e.phase === 'verified')!.reason).toBe(`relayed through the agent of site ${site}`);
      expect(sim!.bess[0]!.state()).toMatchObject({ wsetEna: 1, wsetW: 25_000 });
      expect(a!.channel.stats().forwarded).toBeGreaterThanOrEqual(1);
      expect(b!.channel.stats().delivered).toBeGreaterThanOrEqual(1);
      expect(b!.channel.stats().forwarded).toBe(0);

      // A replica that held the site under epoch 2 and has not noticed losing it: refused, not written.
      const staleEvents: SetpointEvent[] = [];
      const stale = writerOn(b!, bessId, 2, staleEvents);
      const staleSeq = stale.setTarget(-10);
      await waitFor('the stale setpoint failed', () => staleEvents.some((e) => e.seq === staleSeq && e.phase === 'failed'), 15_000);
      expect(staleEvents.find((e) => e.phase === 'failed')!.reason).toBe(
        `the agent of site ${site} could not apply it (stale epoch 2 (epoch 3 has been seen for device ${bessId}))`,
      );
      expect(sim!.bess[0]!.state()).toMatchObject({ wsetEna: 1, wsetW: 25_000 });
      await stale.stop();

      // Held across refreshes: every refresh goes through B and is answered to A.
      const forwarded = a!.channel.stats().forwarded;
      await waitFor('three more refreshes forwarded', () => a!.channel.stats().forwarded >= forwarded + 3, 15_000);
      expect(events.filter((e) => e.phase === 'failed')).toEqual([]);
      expect(sim!.bess[0]!.state()).toMatchObject({ wsetEna: 1, wsetW: 25_000 });

      // The stream on B goes away: A's watch hears it, the held setpoint fails, and a new one cannot be sent.
      await agent.stop();
      agent = undefined;
      await waitFor('replica A to see the stream gone', () => !a!.channel.connected(site), 10_000);
      await waitFor('the held setpoint failed', () => events.some((e) => e.seq === seq && e.phase === 'failed'), 10_000);
      expect(closings).toBeGreaterThanOrEqual(1);
      expect(events.find((e) => e.phase === 'failed')!.reason).toMatch(
        new RegExp(`^(the agent stream of site ${site} closed|the agent of site ${site} could not apply it \\(.*closed\\))$`),
      );
      const next = owner.setTarget(5);
      await waitFor('the next setpoint failed', () => events.some((e) => e.seq === next && e.phase === 'failed'), 10_000);
      expect(events.find((e) => e.seq === next && e.phase === 'failed')!.reason).toBe(
        `unavailable (no agent connected to any replica for site ${site})`,
      );
    },
    60_000,
  );

  it("sends through its own hub when its stream of the site is the newest, else through the newest holder's", async () => {
    const other = 'relay-newest';
    const onB = b!.hub.open();
    onB.hello(other);
    await waitFor('replica A to learn of the stream on B', () => a!.channel.connected(other), 10_000);
    // A stream on A that joined after B's: A's own hub, before and after A's row is loaded.
    const onA = a!.hub.open();
    onA.hello(other);
    const outcomes: RelayOutcome[] = [];
    expect(a!.channel.send(other, setpoint('bess-1', 0), (o) => outcomes.push(o))).toBe(true);
    expect(onA.take()).toHaveLength(1);
    await a!.streams.flushed();
    await a!.streams.reload();
    expect(a!.streams.holders(other).map((h) => h.replica)).toEqual(['replica-a', 'replica-b']);
    expect(a!.channel.send(other, setpoint('bess-1', 0), (o) => outcomes.push(o))).toBe(true);
    expect(onA.take()).toHaveLength(1);
    expect(onB.take()).toEqual([]);

    // The agent reconnects to B while A has not noticed its old stream is dead: B's is the newest.
    const again = b!.hub.open();
    again.hello(other);
    await waitFor('replica A to see B holding the newest stream', () => a!.streams.holders(other)[0]?.replica === 'replica-b', 10_000);
    const sent = setpoint('bess-1', 4);
    expect(a!.channel.send(other, sent, (o) => outcomes.push(o))).toBe(true);
    const received: ReturnType<typeof again.take> = [];
    await waitFor('the setpoint on the newest stream of B', () => received.push(...again.take()) > 0, 10_000);
    expect(received).toEqual([{ ...sent }]);
    expect(onA.take()).toEqual([]);
    again.outcome({ setpointId: sent.setpointId, verified: true, reason: '' });
    await waitFor('the outcome back on A', () => outcomes.length === 1, 10_000);
    expect(outcomes).toEqual([{ setpointId: sent.setpointId, verified: true, reason: '' }]);
    expect(a!.channel.stats().awaitingOutcome).toBe(0);
    onA.close();
    onB.close();
    again.close();
  });

  it('answers a forwarded setpoint for a stream the holder no longer has, naming the replica', async () => {
    const other = 'relay-gone';
    // What A believes while B's close is still on its way.
    await sql`insert into powerplane.agent_streams (site, replica) values (${other}, 'replica-b')`.execute(database.db);
    await a!.streams.reload();
    const outcomes: RelayOutcome[] = [];
    expect(a!.channel.send(other, setpoint('bess-2', 1), (o) => outcomes.push(o))).toBe(true);
    await waitFor('the answer from B', () => outcomes.length === 1, 10_000);
    expect(outcomes[0]).toEqual({
      setpointId: expect.any(String),
      verified: false,
      reason: `the agent stream of site ${other} on replica replica-b closed`,
    });
    await sql`delete from powerplane.agent_streams where site = ${other}`.execute(database.db);
    await a!.streams.reload();
    expect(a!.channel.send(other, setpoint('bess-2', 1), (o) => outcomes.push(o))).toBe(false);
    expect(a!.channel.connected(other)).toBe(false);
  });

  it('ignores a relay message with a negative epoch, which no agent could be sent', async () => {
    const other = 'relay-negative';
    const onB = b!.hub.open();
    onB.hello(other);
    const delivered = b!.channel.stats().delivered;
    const base = { from: 'replica-a', to: 'replica-b', site: other, deviceId: 'bess-3', targetPowerKw: 1, release: false };
    await a!.notifications.notify({ k: 'relay', ...base, setpointId: 'negative', expireAt: Date.now() + 10_000, epoch: -1 });
    await a!.notifications.notify({ k: 'relay', ...base, setpointId: 'after', expireAt: Date.now() + 10_000, epoch: 1 });
    const received: ReturnType<typeof onB.take> = [];
    await waitFor('the valid message on B', () => received.push(...onB.take()) > 0, 10_000);
    expect(received.map((r) => r.setpointId)).toEqual(['after']);
    expect(b!.channel.stats().delivered).toBe(delivered + 1);
    onB.close();
  });
});
