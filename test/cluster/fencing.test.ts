import { randomUUID } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import pg from 'pg';
import { Registry as MetricsRegistry } from 'prom-client';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ClusterMessage, Fence } from '../../src/cluster/cluster.types.ts';
import { createFenceRefusals, FENCED_WRITES_REFUSED_METRIC } from '../../src/cluster/fence-refusals.ts';
import { siteShard } from '../../src/cluster/shard.ts';
import { createSetpointFanout, type SetpointFanout, FANOUT_PAGE_ROWS } from '../../src/control/setpoint-fanout.ts';
import { createEventRecorder, createSetpointBus } from '../../src/control/setpoint-bus.ts';
import * as repo from '../../src/dispatch/dispatch.repository.ts';
import type { DispatchTables } from '../../src/dispatch/dispatch.table.ts';
import type { SetpointBus, SetpointRecord } from '../../src/dispatch/setpoint-events.ts';
import { createLogger } from '../../src/logger.ts';
import type { Database } from '../../src/storage/database.ts';
import { serveDispatchFleet, type DispatchFleet } from '../../src/dispatch/dispatch.service.fixtures.ts';
import { createTestDatabase, ENGINES, silentLog, type TestDatabase } from '../support/databases.ts';
import { waitFor } from '../support/wait.ts';

const SHARDS = 256;
const SITE = 'fenced-site';
const SHARD = siteShard(SITE, SHARDS);
const OTHER_SITE = 'other-site';
const OTHER_SHARD = siteShard(OTHER_SITE, SHARDS);

/** A logger whose warnings a test reads, and a metrics registry, behind one refusals report. */
function refusalsProbe() {
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger('warn', { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  const metricsRegistry = new MetricsRegistry();
  const refusals = createFenceRefusals({ log, metricsRegistry });
  const counted = async (table: string) => {
    const metric = await metricsRegistry.getSingleMetric(FENCED_WRITES_REFUSED_METRIC)!.get();
    return metric.values.find((v) => v.labels.table === table)?.value ?? 0;
  };
  return { lines, refusals, counted };
}

const event = (i: number, fence?: Partial<Fence> & { replica?: string }, site = SITE): SetpointRecord => ({
  setpointId: randomUUID(),
  deviceId: randomUUID(),
  site,
  phase: 'WRITTEN',
  targetPowerKw: i,
  source: 'DISPATCH',
  at: new Date(1_700_000_000_000 + i),
  elapsedMs: 1,
  ...fence,
});

describe.each(ENGINES)('fenced controller writes on %s', (engine) => {
  let testDb: TestDatabase;
  let database: Database;
  let db: Kysely<DispatchTables>;

  /** Gives `shard` to `owner` at `epoch`, its lease expiring `expiresInS` from now (negative: expired). */
  async function lease(shard: number, owner: string | null, epoch: number, expiresInS = 60): Promise<void> {
    await sql`update powerplane.shard_leases set owner = ${owner}, epoch = ${epoch}::int8,
              expires_at = now() + make_interval(secs => ${expiresInS}::float8) where shard = ${shard}::int`.execute(db);
  }

  const storedEvents = async (site = SITE) =>
    (
      await sql<{ target_power_kw: number; replica: string | null; epoch: string | null }>`
        select target_power_kw, replica, epoch::text as epoch from powerplane.setpoint_events where site = ${site} order by id`.execute(db)
    ).rows.map((r) => ({ kw: r.target_power_kw, replica: r.replica, epoch: r.epoch === null ? null : Number(r.epoch) }));

  beforeAll(async () => {
    testDb = await createTestDatabase(engine);
    database = await testDb.open();
    db = database.db.withTables<DispatchTables>();
  });
  afterAll(() => testDb.drop());
  beforeEach(async () => {
    await lease(SHARD, 'r1', 5);
    await lease(OTHER_SHARD, 'r1', 2);
  });

  describe('setpoint events', () => {
    const site = (name: string) => `${SITE}-${name}`;
    // Each test its own site on the same shard, so the table's other rows do not get in the way.
    const at = (name: string, i: number, fence?: Partial<Fence>) => ({ ...event(i, fence), site: site(name) });

    it('stores events under the current epoch with their replica and epoch, and unfenced ones as they are', async () => {
      const { refusals, lines } = refusalsProbe();
      const fenced = { replica: 'r1', shard: siteShard(site('current'), SHARDS), epoch: 7 };
      await lease(fenced.shard, 'r1', 7);
      const result = await repo.insertSetpointEvents(
        db,
        [at('current', 1, fenced), at('current', 2), at('current', 3, { replica: 'r1' })],
        // The NOTIFY in the statement works on either engine, listened to or not.
        { refusals, notifyFrom: 'r1' },
      );
      expect(result).toMatchObject({ inserted: 3, refused: 0 });
      expect(result.max! - result.min!).toBeGreaterThanOrEqual(2);
      expect(await storedEvents(site('current'))).toEqual([
        { kw: 1, replica: 'r1', epoch: 7 },
        { kw: 2, replica: null, epoch: null },
        { kw: 3, replica: 'r1', epoch: null },
      ]);
      expect(lines).toEqual([]);
    });

    it.each([
      ['a stale epoch', 'stale', { owner: 'r1', epoch: 8, expiresInS: 60 }],
      ['an expired lease', 'expired', { owner: 'r1', epoch: 7, expiresInS: -1 }],
      ['another owner', 'taken', { owner: 'r2', epoch: 7, expiresInS: 60 }],
      ['no owner (released)', 'released', { owner: null, epoch: 7, expiresInS: 60 }],
    ])('refuses events written under %s: nothing stored, logged with the fence and counted', async (_, name, held) => {
      const { refusals, lines, counted } = refusalsProbe();
      const shard = siteShard(site(name), SHARDS);
      await lease(shard, held.owner, held.epoch, held.expiresInS);
      const fence = { replica: 'r1', shard, epoch: 7 };
      const result = await repo.insertSetpointEvents(db, [at(name, 1, fence), at(name, 2, fence)], { refusals });
      expect(result).toEqual({ inserted: 0, refused: 2 });
      expect(await storedEvents(site(name))).toEqual([]);
      expect(lines).toEqual([expect.objectContaining({ level: 40, table: 'setpoint_events', rows: 2, replica: 'r1', shard, epoch: 7 })]);
      expect(await counted('setpoint_events')).toBe(2);
    });

    it('refuses only the rows of a batch whose fence no longer holds', async () => {
      const { refusals, counted } = refusalsProbe();
      const current = { replica: 'r1', shard: SHARD, epoch: 5 };
      const stale = { replica: 'r1', shard: OTHER_SHARD, epoch: 1 };
      const batch = [
        { ...event(1, current), site: site('mixed') },
        { ...event(2, stale), site: site('mixed') },
        { ...event(3, current), site: site('mixed') },
      ];
      expect(await repo.insertSetpointEvents(db, batch, { refusals })).toMatchObject({ inserted: 2, refused: 1 });
      expect(await storedEvents(site('mixed'))).toEqual([
        { kw: 1, replica: 'r1', epoch: 5 },
        { kw: 3, replica: 'r1', epoch: 5 },
      ]);
      expect(await counted('setpoint_events')).toBe(1);
    });
  });

  describe('command source changes', () => {
    const change = (deviceId: string, reason: string) => ({ deviceId, source: 'DISPATCH' as const, reason, cause: `test ${reason}` });
    const state = async (deviceId: string) =>
      (
        await sql<{ reason: string; replica: string | null; epoch: string | null }>`
          select reason, replica, epoch::text as epoch from powerplane.command_source_state where device_id = ${deviceId}::uuid`.execute(db)
      ).rows.map((r) => ({ ...r, epoch: r.epoch === null ? null : Number(r.epoch) }));
    const history = async (deviceId: string) =>
      (
        await sql<{ reason: string; replica: string | null; epoch: string | null }>`
          select reason, replica, epoch::text as epoch from powerplane.command_source_history where device_id = ${deviceId}::uuid
          order by id`.execute(db)
      ).rows.map((r) => ({ ...r, epoch: r.epoch === null ? null : Number(r.epoch) }));

    it('applies changes under the current epoch, storing replica and epoch in the state and its history', async () => {
      const { refusals, lines } = refusalsProbe();
      const [a, b] = [randomUUID(), randomUUID()];
      const changes = [change(a, 'first'), change(b, 'first')];
      const applied = await repo.recordSourceChanges(db, changes, { replica: 'r1', shard: SHARD, epoch: 5 }, refusals);
      expect(applied).toEqual(changes);
      expect(await state(a)).toEqual([{ reason: 'first', replica: 'r1', epoch: 5 }]);
      expect(await history(b)).toEqual([{ reason: 'first', replica: 'r1', epoch: 5 }]);
      expect(lines).toEqual([]);
      // Without a fence (tests, tools) a change is applied as before, with no replica or epoch.
      expect(await repo.recordSourceChanges(db, [change(a, 'unfenced')])).toHaveLength(1);
      expect(await state(a)).toEqual([{ reason: 'unfenced', replica: null, epoch: null }]);
    });

    it.each([
      ['a stale epoch', { owner: 'r1', epoch: 6, expiresInS: 60 }],
      ['an expired lease', { owner: 'r1', epoch: 5, expiresInS: -1 }],
      ['another owner', { owner: 'r2', epoch: 6, expiresInS: 60 }],
    ])('refuses changes made under %s: neither state nor history written, logged and counted', async (_, held) => {
      const { refusals, lines, counted } = refusalsProbe();
      const device = randomUUID();
      await repo.recordSourceChanges(db, [change(device, 'before')], { replica: 'r1', shard: SHARD, epoch: 5 }, refusals);
      await lease(SHARD, held.owner, held.epoch, held.expiresInS);
      const applied = await repo.recordSourceChanges(db, [change(device, 'late')], { replica: 'r1', shard: SHARD, epoch: 5 }, refusals);
      expect(applied).toEqual([]);
      expect(await state(device)).toEqual([{ reason: 'before', replica: 'r1', epoch: 5 }]);
      expect(await history(device)).toEqual([{ reason: 'before', replica: 'r1', epoch: 5 }]);
      expect(lines.map((l) => [l.table, l.rows, l.shard, l.epoch])).toEqual([
        ['command_source_state', 1, SHARD, 5],
        ['command_source_history', 1, SHARD, 5],
      ]);
      expect(await counted('command_source_state')).toBe(1);
    });
  });

  describe('fan-out to another replica', () => {
    /** Collects what `bus` publishes for `site`, in order. */
    function collect(bus: SetpointBus, site: string) {
      const seen: SetpointRecord[] = [];
      const stop = new AbortController();
      const done = (async () => {
        for await (const batch of bus.subscribe((r) => r.site === site, stop.signal)) seen.push(...batch);
      })();
      return {
        seen,
        async close() {
          stop.abort();
          await done;
        },
      };
    }

    it("publishes another replica's events to the local bus in id order, paging through a large batch, and ignores its own", async () => {
      const site = 'fanout-site';
      const shard = siteShard(site, SHARDS);
      await lease(shard, 'r2', 3);
      const fence = { replica: 'r2', shard, epoch: 3 };
      const count = FANOUT_PAGE_ROWS + 100;
      const first = await repo.insertSetpointEvents(
        db,
        Array.from({ length: count }, (_, i) => ({ ...event(i, fence), site })),
      );
      // Rows of this replica inside the range: stored, already on its own bus, not fetched again.
      const own = await repo.insertSetpointEvents(db, [{ ...event(-1, { replica: 'r1' }), site }]);
      const second = await repo.insertSetpointEvents(db, [{ ...event(count, fence), site }]);
      const bus = createSetpointBus();
      const watcher = collect(bus, site);
      const fanout = createSetpointFanout({ db: database.db, bus, replicaId: 'r1', log: silentLog });
      try {
        fanout.onMessage({ k: 'events', from: 'r1', min: own.min!, max: own.max! });
        fanout.onMessage({ k: 'market', from: 'r2' });
        fanout.onMessage({ k: 'events', from: 'r2', min: first.min!, max: second.max! });
        fanout.onResync();
        await fanout.idle();
        await waitFor('the watcher to have every event', () => watcher.seen.length >= count + 1, 10_000, 10);
        expect(watcher.seen.map((r) => r.targetPowerKw)).toEqual(Array.from({ length: count + 1 }, (_, i) => i));
        expect(watcher.seen[0]).toMatchObject({ site, phase: 'WRITTEN', source: 'DISPATCH', replica: 'r2', epoch: 3 });
      } finally {
        await fanout.stop();
        await watcher.close();
      }
    });

    it('after a resync publishes what other replicas recorded while notices were missed, once, in id order', async () => {
      const site = 'fanout-resync';
      const insert = (powers: number[], replica: string) =>
        repo.insertSetpointEvents(
          db,
          powers.map((i) => ({ ...event(i, { replica }), site })),
        );
      // Stored before the fan-out started: not published by a resync.
      await insert([1], 'r5');
      const bus = createSetpointBus();
      const watcher = collect(bus, site);
      const fanout = createSetpointFanout({ db: database.db, bus, replicaId: 'r1', log: silentLog });
      try {
        await fanout.idle();
        const heard = await insert([10, 11], 'r2');
        fanout.onMessage({ k: 'events', from: 'r2', min: heard.min!, max: heard.max! });
        await fanout.idle();
        // Recorded while the listening connection was down: no message reaches the fan-out.
        const missed = await insert([12, 13], 'r2');
        const newcomer = await insert([20], 'r6');
        await insert([30], 'r1'); // this replica's own: on its bus already
        await insert([14], 'r2');
        fanout.onResync();
        // The missed batch's notice arriving late, then a new batch.
        fanout.onMessage({ k: 'events', from: 'r2', min: missed.min!, max: missed.max! });
        fanout.onMessage({ k: 'events', from: 'r6', min: newcomer.min!, max: newcomer.max! });
        const next = await insert([15], 'r2');
        fanout.onMessage({ k: 'events', from: 'r2', min: next.min!, max: next.max! });
        await fanout.idle();
        await waitFor('the watcher to have every event', () => watcher.seen.length >= 7, 10_000, 10);
        expect(watcher.seen.map((r) => r.targetPowerKw)).toEqual([10, 11, 12, 13, 20, 14, 15]);
      } finally {
        await fanout.stop();
        await watcher.close();
      }
    });

    it('lets go of the oldest origins beyond its bound without publishing their events again after a resync', async () => {
      const site = 'fanout-origins';
      const insert = async (power: number, replica: string, fanout?: SetpointFanout) => {
        const stored = await repo.insertSetpointEvents(db, [{ ...event(power, { replica }), site }]);
        fanout?.onMessage({ k: 'events', from: replica, min: stored.min!, max: stored.max! });
      };
      const bus = createSetpointBus();
      const watcher = collect(bus, site);
      const fanout = createSetpointFanout({ db: database.db, bus, replicaId: 'r1', log: silentLog, maxOrigins: 2 });
      try {
        await fanout.idle();
        await insert(1, 'a', fanout);
        await insert(2, 'b', fanout);
        await insert(3, 'c', fanout); // 'a' let go
        await fanout.idle();
        await insert(4, 'a'); // missed
        fanout.onResync();
        await fanout.idle();
        await waitFor('the watcher to have every event', () => watcher.seen.length >= 4, 10_000, 10);
        expect(watcher.seen.map((r) => r.targetPowerKw)).toEqual([1, 2, 3, 4]);
      } finally {
        await fanout.stop();
        await watcher.close();
      }
    });

    it('ignores a malformed range and carries on with the next', async () => {
      const site = 'fanout-malformed';
      const bus = createSetpointBus();
      const watcher = collect(bus, site);
      const fanout = createSetpointFanout({ db: database.db, bus, replicaId: 'r1', log: silentLog });
      try {
        const stored = await repo.insertSetpointEvents(db, [{ ...event(42, { replica: 'r3' }), site }]);
        fanout.onMessage({ k: 'events', from: 'r3', min: 10, max: 2 });
        fanout.onMessage({ k: 'events', from: 'r3', min: Number.NaN, max: 2 });
        fanout.onMessage({ k: 'events', from: 'r3', min: stored.min!, max: stored.max! });
        await fanout.idle();
        await waitFor('the watcher to have the event', () => watcher.seen.length >= 1, 10_000, 10);
        expect(watcher.seen.map((r) => r.targetPowerKw)).toEqual([42]);
      } finally {
        await fanout.stop();
        await watcher.close();
      }
    });
  });
});

describe('the recorder notifies other replicas of its batches on PostgreSQL', () => {
  let testDb: TestDatabase;
  let database: Database;
  let listener: pg.Client;
  const payloads: string[] = [];

  beforeAll(async () => {
    testDb = await createTestDatabase('postgres');
    database = await testDb.open();
    if (testDb.config.kind !== 'postgres') throw new Error('expected PostgreSQL');
    listener = new pg.Client({ connectionString: testDb.config.url });
    await listener.connect();
    listener.on('notification', (n) => {
      if (n.channel === 'powerplane' && n.payload !== undefined) payloads.push(n.payload);
    });
    await listener.query('listen powerplane');
  });
  afterAll(async () => {
    await listener.end();
    await testDb.drop();
  });

  it("NOTIFYs each insert's id range, which another replica's fan-out fetches and publishes", async () => {
    const db = database.db.withTables<DispatchTables>();
    const site = 'notified-site';
    const shard = siteShard(site, SHARDS);
    await sql`update powerplane.shard_leases set owner = 'r1', epoch = 4, expires_at = now() + interval '1 minute'
              where shard = ${shard}::int`.execute(db);
    const ranges: Array<{ min?: number; max?: number }> = [];
    const recorder = createEventRecorder(
      async (records, notifyFrom) => {
        const result = await repo.insertSetpointEvents(db, records, notifyFrom !== undefined ? { notifyFrom } : {});
        ranges.push(result);
      },
      silentLog,
      undefined,
      { replicaId: 'r1' },
    );
    // A batch refused whole (stale epoch) inserts nothing and notifies nothing.
    await repo.insertSetpointEvents(db, [{ ...event(0, { replica: 'r1', shard, epoch: 3 }), site }], { notifyFrom: 'r1' });
    for (let i = 1; i <= 3; i++) recorder.add({ ...event(i, { replica: 'r1', shard, epoch: 4 }), site });
    recorder.add({ ...event(4), site }); // stamped with the recorder's replica
    await recorder.stop();
    await waitFor('the notification', () => payloads.length >= 1, 10_000, 10);
    expect(ranges).toHaveLength(1);
    const message = JSON.parse(payloads[0]!) as ClusterMessage;
    expect(message).toEqual({ k: 'events', from: 'r1', min: ranges[0]!.min, max: ranges[0]!.max });
    expect(ranges[0]!.max! - ranges[0]!.min!).toBe(3);

    const otherBus = createSetpointBus();
    const stop = new AbortController();
    const seen: number[] = [];
    const watching = (async () => {
      for await (const batch of otherBus.subscribe((r) => r.site === site, stop.signal)) seen.push(...batch.map((r) => r.targetPowerKw));
    })();
    const fanout = createSetpointFanout({ db: database.db, bus: otherBus, replicaId: 'r2', log: silentLog });
    fanout.onMessage(message);
    await fanout.idle();
    await waitFor('the other replica to publish the batch', () => seen.length >= 4, 10_000, 10);
    expect(seen).toEqual([1, 2, 3, 4]);
    await fanout.stop();
    stop.abort();
    await watching;
  });

  it('refuses a command-source change whose lease was taken while it waited for the lease row', async () => {
    const db = database.db.withTables<DispatchTables>();
    const shard = siteShard('contended', SHARDS);
    await sql`update powerplane.shard_leases set owner = 'r1', epoch = 9, expires_at = now() + interval '1 minute'
              where shard = ${shard}::int`.execute(db);
    if (testDb.config.kind !== 'postgres') throw new Error('expected PostgreSQL');
    const taker = new pg.Client({ connectionString: testDb.config.url });
    await taker.connect();
    try {
      await taker.query('begin');
      await taker.query(`update powerplane.shard_leases set owner = 'r2', epoch = 10 where shard = $1`, [shard]);
      const device = randomUUID();
      const { refusals } = refusalsProbe();
      const write = repo.recordSourceChanges(
        db,
        [{ deviceId: device, source: 'DISPATCH', reason: 'late', cause: 'late' }],
        { replica: 'r1', shard, epoch: 9 },
        refusals,
      );
      await waitFor(
        'the write to wait for the lease row',
        async () =>
          (
            await taker.query<{ n: number }>(
              // The write is the only statement of this database that can wait for a lock.
              `select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`,
            )
          ).rows[0]!.n > 0,
        10_000,
        10,
      );
      await taker.query('commit');
      expect(await write).toEqual([]);
      const { rows } = await sql`select 1 from powerplane.command_source_state where device_id = ${device}::uuid`.execute(db);
      expect(rows).toEqual([]);
    } finally {
      await taker.end();
    }
  });
});

describe.each(ENGINES)('GetControlState on %s', (engine) => {
  let fleet: DispatchFleet;
  beforeAll(async () => {
    fleet = await serveDispatchFleet(engine);
  });
  afterAll(() => fleet.close());

  it("shows each battery's owner replica and epoch: the current holder of its site's shard, none when expired or free", async () => {
    const db = (await fleet.testDb.open({ migrated: false })).db;
    const lease = (site: string, owner: string, epoch: number, expiresInS: number) =>
      sql`update powerplane.shard_leases set owner = ${owner}, epoch = ${epoch}::int8,
          expires_at = now() + make_interval(secs => ${expiresInS}::float8)
          where shard = powerplane.site_shard(${site}, (select shard_count from powerplane.cluster_settings))`.execute(db);
    await lease('alpha', 'replica-a', 12, 60);
    await lease('beta', 'replica-b', 3, -1);
    const { states } = await fleet.dispatch.getControlState({
      deviceIds: [fleet.ids.alpha0!, fleet.ids.alpha1!, fleet.ids.beta0!, fleet.ids.gamma0!],
    });
    expect(states.map((s) => [s.site, s.ownerReplica, s.epoch])).toEqual([
      ['alpha', 'replica-a', 12n],
      ['alpha', 'replica-a', 12n],
      ['beta', '', 0n],
      ['gamma', '', 0n],
    ]);
    await lease('alpha', 'replica-c', 13, 60);
    expect((await fleet.dispatch.getControlState({ site: 'alpha' })).states.map((s) => [s.ownerReplica, s.epoch])).toEqual([
      ['replica-c', 13n],
      ['replica-c', 13n],
    ]);
  });
});
