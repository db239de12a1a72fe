import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator, type SimulatedDevice, type Simulator, type WriteLogEntry } from '../../src/simulator/simulator.ts';
import { apiAt, reportBatteries, writesTo, type Api } from '../support/api.ts';
import { createTestDatabase, type TestDatabase } from '../support/databases.ts';
import { registerBattery } from '../support/fleet.ts';
import { startServeProcess, type LogLine, type ServeProcess } from '../support/serve-process.ts';
import { localTcpPorts } from '../support/socket-owner.ts';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.ts';
import { sleep, waitFor } from '../support/wait.ts';

/** The line `src/control/leadership.ts` logs when a replica starts driving batteries. */
const leads = (line: LogLine) => typeof line.msg === 'string' && line.msg.startsWith('this replica holds the control lock');

/** Each battery's target, kW: two sites of two batteries, each site's power split evenly. */
const SITES = [
  { site: 'replica-a', kw: 50, batteries: [0, 1] },
  { site: 'replica-b', kw: 60, batteries: [2, 3] },
] as const;
const targetW = (battery: number) => (SITES.find((s) => (s.batteries as readonly number[]).includes(battery))!.kw / 2) * 1_000;

/** One client connection's writes to one battery: which connection, and its first and last write. */
interface Span {
  readonly connection: number;
  readonly remotePort: number;
  readonly from: number;
  readonly to: number;
}

function spans(writes: readonly WriteLogEntry[]): Span[] {
  const byConnection = new Map<number, Span>();
  for (const w of writes) {
    const t = w.time.getTime();
    const span = byConnection.get(w.connection);
    byConnection.set(w.connection, span ? { ...span, to: t } : { connection: w.connection, remotePort: w.remotePort, from: t, to: t });
  }
  return [...byConnection.values()].sort((a, b) => a.from - b.from);
}

/** Whether every connection's writes to a battery end before the next connection's begin. */
function oneWriterAtATime(writes: readonly WriteLogEntry[]): boolean {
  const ordered = spans(writes);
  return ordered.every((span, i) => i === 0 || span.from >= ordered[i - 1]!.to);
}

/**
 * `powerplane serve` processes on one PostgreSQL, as replicas behind a load balancer, each
 * reaching the database through a fault proxy of its own. Who writes to a battery is read
 * from the simulator's write log, which records the client connection of every write: a
 * connection belongs to one process, so two processes driving a battery at once would show
 * as two connections whose writes interleave. Which process a connection belongs to is
 * found from the processes' own open sockets (`/proc`), matched on the client port the
 * simulator saw. Three replicas, so that after one is killed two remain for the partition.
 */
describe('replicas of serve on one PostgreSQL', () => {
  let testDatabase: TestDatabase;
  let sim: Simulator;
  let proxies: TcpProxy[] = [];
  let replicas: ServeProcess[] = [];
  let apis: Api[] = [];
  /** The replica driving the batteries, once the tests have found out. */
  let leader: ServeProcess | undefined;

  beforeAll(async () => {
    testDatabase = await createTestDatabase('postgres');
    sim = await startSimulator({ bess: 4 });
    const url = new URL(testDatabase.config.kind === 'postgres' ? testDatabase.config.url : '');
    proxies = await Promise.all([0, 1, 2].map(() => startTcpProxy({ host: url.hostname, port: Number(url.port) })));
    const env = (proxy: TcpProxy) => ({
      DATABASE_URL: Object.assign(new URL(url), { port: String(proxy.port) }).toString(),
      // The production ratio: a control period (and so a writer's lease of three periods)
      // longer than the two check intervals in which a cut-off leader gives up its lock.
      POWERPLANE_CONTROL_PERIOD_MS: '2000',
      POWERPLANE_HEARTBEAT_INTERVAL_MS: '200',
      POWERPLANE_MODBUS_TIMEOUT_MS: '500',
      POWERPLANE_MAX_TELEMETRY_AGE_MS: '600000',
      POWERPLANE_DEVICE_CACHE_TTL_MS: '0',
      POWERPLANE_HEALTH_PROBE_INTERVAL_MS: '1000',
    });
    // Started together: they also race to apply the migrations, under the migrator's lock.
    const started = await Promise.allSettled(proxies.map((proxy) => startServeProcess(env(proxy), 110_000)));
    replicas = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    const failed = started.find((s) => s.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
    apis = replicas.map((r) => apiAt(r.baseUrl));
  }, 120_000);
  afterAll(async () => {
    proxies.forEach((p) => p.heal());
    await Promise.all(replicas.map((r) => r.stop()));
    await Promise.all(proxies.map((p) => p.close()));
    await sim?.stop();
    await testDatabase?.drop();
  });

  it('both ingest and answer queries, whichever wrote the data', async () => {
    const [a, b] = apis as [Api, Api];
    const ids: string[] = [];
    for (const { site, batteries } of SITES) {
      for (const i of batteries)
        ids.push(await registerBattery(a.registry, site, `bess-${i}`, sim.bess[i]!.endpoint, { reversionTimeoutS: 3 }));
    }
    await reportBatteries(a, ids.slice(0, 2), 1);
    await reportBatteries(b, ids.slice(2), 1);
    const since = { startTime: timestampFromMs(Date.now() - 60_000), endTime: timestampFromMs(Date.now() + 60_000) };
    expect((await b.readings.listBessReadings({ deviceIds: [ids[0]!], range: since })).bessReadings).toHaveLength(1);
    expect((await a.readings.listBessReadings({ deviceIds: [ids[3]!], range: since })).bessReadings).toHaveLength(1);
    expect((await b.registry.getDevice({ id: ids[1]! })).device?.name).toBe('bess-1');
  });

  it('let exactly one drive the batteries, and another take over within a bounded time when it is killed', async () => {
    await waitFor('one replica to take the control lock', () => replicas.some((r) => r.logs.some(leads)), 30_000);
    const first = replicas.find((r) => r.logs.some(leads))!;
    const others = replicas.filter((r) => r !== first);
    for (const [n, { site, kw }] of SITES.entries()) {
      // Submitted through a replica that does not drive: it is planned by the one that does.
      await apis[replicas.indexOf(others[0]!)]!.dispatch.submitDispatch({
        requestId: `replicas-${n}`,
        target: { case: 'site', value: site },
        intervals: [
          {
            startTime: timestampFromMs(Date.now() - 1_000),
            endTime: timestampFromMs(Date.now() + 600_000),
            command: { case: 'powerKw', value: kw },
          },
        ],
      });
    }
    await waitFor('every battery at its target', () => sim.bess.every((_, i) => atTarget(i)), 20_000);
    expect(others.filter((r) => r.logs.some(leads))).toEqual([]);

    // Who holds the batteries' connections: the leader, never another replica.
    const leaderPorts = await localTcpPorts(first.pid);
    const otherPorts = new Set((await Promise.all(others.map((r) => localTcpPorts(r.pid)))).flatMap((p) => [...p]));
    for (const battery of sim.bess) {
      const writes = writesTo(sim, battery);
      expect(writes.filter((w) => otherPorts.has(w.remotePort))).toEqual([]);
      expect(leaderPorts.has(writes.at(-1)!.remotePort)).toBe(true);
    }
    const connectionsBefore = new Set(sim.writeLog.map((w) => w.connection));

    await first.kill();
    const killedAt = Date.now();
    // Bounded failover: the lock goes with the dead process's session; the others retry
    // every 2 s and the winner waits two intervals before it writes.
    leader = await Promise.any(others.map((r) => r.waitForLog(leads, 20_000).then(() => r)));
    await drivenAgainBy(leader, connectionsBefore);
    expect(others.filter((r) => r !== leader && r.logs.some(leads))).toEqual([]);
    for (const battery of sim.bess) {
      const after = writesTo(sim, battery).filter((w) => !connectionsBefore.has(w.connection));
      expect(after.every((w) => w.time.getTime() >= killedAt)).toBe(true);
      expect(oneWriterAtATime(writesTo(sim, battery))).toBe(true);
    }
  }, 60_000);

  it('let another take over when the driving replica is cut off from the database, never two writing at once', async () => {
    const cutOff = leader!;
    const last = replicas.find((r) => r !== cutOff && !r.exited())!;
    const connectionsBefore = new Set(sim.writeLog.map((w) => w.connection));
    const leadsBefore = last.logs.filter(leads).length;
    // A partition, not a crash: the replica lives on, its database connections go silent.
    proxies[replicas.indexOf(cutOff)]!.blackhole();
    try {
      await cutOff.waitForLog((line) => typeof line.msg === 'string' && line.msg.startsWith('control lock check failed'), 15_000);
      // The database ends the silent holder's session after its idle timeout, freeing the lock.
      await waitFor('the last replica to take the control lock', () => last.logs.filter(leads).length > leadsBefore, 30_000);
      await drivenAgainBy(last, connectionsBefore);
      // Long enough for a writer the cut-off replica had left running to show itself.
      await sleep(1_000);
      for (const battery of sim.bess) expect(oneWriterAtATime(writesTo(sim, battery))).toBe(true);
    } finally {
      proxies[replicas.indexOf(cutOff)]!.heal();
    }
  }, 60_000);

  /** Waits until every battery is at its target through a connection `replica` opened since `connectionsBefore`. */
  async function drivenAgainBy(replica: ServeProcess, connectionsBefore: Set<number>): Promise<void> {
    const fresh = (battery: SimulatedDevice) => writesTo(sim, battery).some((w) => !connectionsBefore.has(w.connection));
    await waitFor('every battery driven again', () => sim.bess.every((battery, i) => fresh(battery) && atTarget(i)), 20_000);
    const ports = await localTcpPorts(replica.pid);
    for (const battery of sim.bess) {
      const latest = writesTo(sim, battery)
        .filter((w) => !connectionsBefore.has(w.connection))
        .at(-1)!;
      expect(ports.has(latest.remotePort)).toBe(true);
    }
  }

  const atTarget = (i: number) => sim.bess[i]!.state().wsetEna === 1 && sim.bess[i]!.state().wsetW === targetW(i);
});
