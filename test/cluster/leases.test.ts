import { sql } from 'kysely';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Fence, LeaseManager } from '../../src/cluster/cluster.types.ts';
import { fenceHolds } from '../../src/cluster/fence.ts';
import { createLeaseManager } from '../../src/cluster/leases.ts';
import { renewShards } from '../../src/cluster/leases.repository.ts';
import { SYSTEM_CLOCK, type Clock } from '../../src/clock.ts';
import { createFakeClock } from '../../src/clock.fixtures.ts';
import { openDatabase, type Database } from '../../src/storage/database.ts';
import { migrate, MIGRATIONS_DIR } from '../../src/storage/migrator.ts';
import { createTestDatabase, silentLog, type TestDatabase } from '../support/databases.ts';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.ts';
import { sleep, waitFor } from '../support/wait.ts';

/**
 * The lease of every replica whose lease is not the subject: renewed every 2 s and lost
 * locally 4 s after a renewal was sent, so a loaded machine (a stalled event loop, a slow
 * statement) cannot let it run out by accident and move a shard the test did not move.
 */
const LEASE_MS = 6_000;
/**
 * The lease of a replica whose death is the subject: its rows run out 600 ms after its last
 * renewal. On a loaded machine it may also run out while the replica lives, so the tests
 * that use it assert orderings and relations that such a loss leaves true.
 */
const SHORT_LEASE_MS = 600;
const GUARD_MS = 300;
const SHARDS = 16;
const ALL = Array.from({ length: SHARDS }, (_, i) => i);

/** What a listener was told, in the order every listener of the test was told it. */
interface LeaseEvent {
  readonly replica: string;
  readonly kind: 'acquired' | 'lost';
  readonly shard: number;
  readonly epoch: number;
  readonly why?: string;
  /** Date.now(): the same host clock PostgreSQL's now() reads. */
  readonly wall: number;
}

interface JoinOptions {
  readonly database?: Database;
  readonly leaseMs?: number;
  readonly writeGuardMs?: number;
  readonly clock?: Clock;
  readonly metricsRegistry?: Registry;
  readonly onLost?: (shard: number, why: string) => Promise<void>;
}

describe('shard leases of several replicas on one PostgreSQL', () => {
  let testDb: TestDatabase;
  let shared: Database;
  const managers: LeaseManager[] = [];
  const ownDatabases: Database[] = [];
  const proxies: TcpProxy[] = [];
  const events: LeaseEvent[] = [];
  const samplers: Array<ReturnType<typeof setInterval>> = [];

  beforeAll(async () => {
    testDb = await createTestDatabase('postgres');
    shared = await testDb.open({ migrated: false });
    await migrate(shared, silentLog, MIGRATIONS_DIR, { shardCount: SHARDS });
    // Every change of owner, with the row it replaced: the old lease's expiry as the
    // claiming replica found it.
    await sql`
      create table test_lease_changes (
        shard int, old_owner text, old_epoch bigint, old_expires_at timestamptz, new_owner text, new_epoch bigint
      );
      create function test_record_lease_change() returns trigger language plpgsql as $$
      begin
        if new.owner is distinct from old.owner or new.epoch <> old.epoch then
          insert into test_lease_changes values (old.shard, old.owner, old.epoch, old.expires_at, new.owner, new.epoch);
        end if;
        return new;
      end $$;
      create trigger test_record_lease_change before update on powerplane.shard_leases
        for each row execute function test_record_lease_change();
      create table test_fence_probe (shard int, replica text, epoch bigint);
    `.execute(shared.db);
  });
  afterAll(() => testDb.drop());

  beforeEach(async () => {
    events.length = 0;
    // Every shard free and handed over, as after a graceful stop of the whole fleet.
    await sql`
      update powerplane.shard_leases set owner = null, released = true, expires_at = '-infinity';
      delete from powerplane.replicas; delete from powerplane.agent_streams; delete from test_lease_changes; delete from test_fence_probe;
    `.execute(shared.db);
  });
  afterEach(async () => {
    for (const sampler of samplers.splice(0)) clearInterval(sampler);
    for (const proxy of proxies) proxy.heal();
    await Promise.all(managers.map((m) => m.stop()));
    await Promise.all([...ownDatabases.map((d) => d.close()), ...proxies.map((p) => p.close())]);
    managers.length = 0;
    ownDatabases.length = 0;
    proxies.length = 0;
  });

  /** A replica's lease manager, started; its listener records into {@link events}. */
  async function join(replica: string, options: JoinOptions = {}): Promise<LeaseManager> {
    const manager = createLeaseManager({
      db: (options.database ?? shared).db,
      replicaId: replica,
      leaseMs: options.leaseMs ?? LEASE_MS,
      writeGuardMs: options.writeGuardMs ?? GUARD_MS,
      clock: options.clock ?? SYSTEM_CLOCK,
      log: silentLog,
      ...(options.metricsRegistry ? { metricsRegistry: options.metricsRegistry } : {}),
      // What the notifications module does: the others hear of released leases at once.
      notify: async (message) => {
        for (const other of managers) if (other.replicaId !== message.from) other.claimSoon();
      },
    });
    managers.push(manager);
    await manager.start({
      acquired: (shard, epoch) => void events.push({ replica, kind: 'acquired', shard, epoch, wall: Date.now() }),
      lost: async (shard, epoch, why) => {
        events.push({ replica, kind: 'lost', shard, epoch, why, wall: Date.now() });
        await options.onLost?.(shard, why);
      },
    });
    return manager;
  }

  /** A connection of its own, to close when the replica "dies". */
  async function ownDatabase(): Promise<Database> {
    const database = await testDb.open({ migrated: false });
    ownDatabases.push(database);
    return database;
  }

  async function rows(): Promise<Map<number, { owner: string | null; epoch: number; released: boolean }>> {
    const result = await sql<{ shard: number; owner: string | null; epoch: number; released: boolean }>`
      select shard, owner, epoch::int as epoch, released from powerplane.shard_leases order by shard`.execute(shared.db);
    return new Map(result.rows.map((r) => [r.shard, r]));
  }

  const eventsOf = (replica: string, kind: LeaseEvent['kind']) => events.filter((e) => e.replica === replica && e.kind === kind);
  /** Where in {@link events} `replica` was told `kind` of `shard` (under `epoch`, when given); -1 if never. */
  const indexOf = (replica: string, kind: LeaseEvent['kind'], shard: number, epoch?: number) =>
    events.findIndex((e) => e.replica === replica && e.kind === kind && e.shard === shard && (epoch === undefined || e.epoch === epoch));
  const balanced = (...ms: LeaseManager[]) =>
    waitFor('the shares to even out', () => {
      // Fair shares: none above ceil(shards / replicas), every shard written by one of them.
      const counts = ms.map((m) => m.writableShards().length);
      return counts.reduce((a, b) => a + b, 0) === SHARDS && counts.every((n) => n <= Math.ceil(SHARDS / ms.length));
    });
  /** The fences `manager` holds now. */
  const fencesOf = (manager: LeaseManager) => ALL.map((shard) => manager.fence(shard)).filter((f): f is Fence => f !== undefined);

  /**
   * Samples `manager`'s fences every millisecond until the test ends: for each tenure
   * (`shard@epoch`), the last instant it was writable, by the wall clock read before asking.
   */
  function sampleWritable(manager: LeaseManager): Map<string, number> {
    const lastWritable = new Map<string, number>();
    const sample = () => {
      const wall = Date.now();
      for (const fence of fencesOf(manager)) lastWritable.set(`${fence.shard}@${fence.epoch}`, wall);
    };
    sample();
    samplers.push(setInterval(sample, 1));
    return lastWritable;
  }

  /**
   * What a replica that died (`dead`) and the one that took its shards (`survivor`) must
   * show, however often a loaded machine let the dead replica's short lease run out while
   * it lived:
   * - every shard it wrote when it died (`wrote`) is the survivor's under a higher epoch,
   *   and the dead replica was told it lost it ('expired');
   * - every shard the survivor took from it was taken under epoch + 1, and acquired only
   *   after the old lease had run out and after the dead replica was told it lost it;
   * - none of its fences was writable at or after the expiry of that lease as the next
   *   owner found it (`lastWritable`, from {@link sampleWritable}).
   */
  async function expectTakenOnlyAfterExpiry(dead: string, survivor: string, wrote: readonly Fence[], lastWritable: Map<string, number>) {
    const { rows: changes } = await sql<{ shard: number; old_epoch: number; new_owner: string | null; new_epoch: number; expired: number }>`
      select shard, old_epoch::int, new_owner, new_epoch::int, extract(epoch from old_expires_at)::float8 * 1000 as expired
      from test_lease_changes where old_owner = ${dead} order by shard, old_epoch`.execute(shared.db);
    const taken = changes.filter((c) => c.new_owner === survivor);
    const after = await rows();
    expect(wrote.length).toBeGreaterThan(0);
    for (const fence of wrote) {
      expect(after.get(fence.shard)!.owner).toBe(survivor);
      expect(after.get(fence.shard)!.epoch).toBeGreaterThan(fence.epoch);
      expect(taken.map((c) => c.shard)).toContain(fence.shard);
      expect(events[indexOf(dead, 'lost', fence.shard, fence.epoch)]).toMatchObject({ why: 'expired' });
    }
    for (const change of taken) {
      expect(change.new_epoch).toBe(change.old_epoch + 1);
      const acquired = indexOf(survivor, 'acquired', change.shard, change.new_epoch);
      expect(acquired).toBeGreaterThanOrEqual(0);
      expect(events[acquired]!.wall).toBeGreaterThan(change.expired);
      // A tenure still in its guard when the replica died was never written, so never lost.
      if (indexOf(dead, 'acquired', change.shard, change.old_epoch) < 0) continue;
      const lost = indexOf(dead, 'lost', change.shard, change.old_epoch);
      expect(events[lost]).toMatchObject({ why: 'expired' });
      expect(lost).toBeLessThan(acquired);
    }
    // It stopped by its own deadline, before its lease ran out: compared for every instant
    // sampled rather than by when the loss was told, which a stalled event loop delays.
    expect(lastWritable.size).toBeGreaterThan(0);
    for (const [tenure, wall] of lastWritable) {
      const ended = changes.find((c) => `${c.shard}@${c.old_epoch}` === tenure);
      expect(ended, tenure).toBeDefined();
      expect(wall, tenure).toBeLessThan(ended!.expired);
    }
  }

  it('gives one replica every shard, then moves half of them, and only those, to a second that joins', async () => {
    const registry = new Registry();
    const a = await join('a', { metricsRegistry: registry });
    expect(a.shardCount).toBe(SHARDS);
    expect(a.writableShards()).toEqual(ALL);
    expect(a.fence(3)).toEqual({ replica: 'a', shard: 3, epoch: (await rows()).get(3)!.epoch });
    const before = await rows();

    const b = await join('b');
    await balanced(a, b);
    const after = await rows();
    // The highest shard numbers are handed over first.
    expect(b.writableShards()).toEqual(ALL.slice(8));
    expect(a.writableShards()).toEqual(ALL.slice(0, 8));
    for (const shard of ALL) {
      const moved = shard >= 8;
      expect(after.get(shard)).toMatchObject({ owner: moved ? 'b' : 'a', epoch: before.get(shard)!.epoch + (moved ? 1 : 0) });
      if (!moved) continue;
      expect(indexOf('a', 'lost', shard)).toBeLessThan(indexOf('b', 'acquired', shard));
      expect(eventsOf('a', 'lost').find((e) => e.shard === shard)?.why).toBe('released');
      expect(b.fence(shard)).toEqual({ replica: 'b', shard, epoch: after.get(shard)!.epoch });
      expect(a.fence(shard)).toBeUndefined();
    }
    expect(eventsOf('a', 'lost')).toHaveLength(8);
    const values = async (name: string) => (await registry.getSingleMetric(name)!.get()).values.map((v) => [v.labels.why, v.value]);
    expect(await values('powerplane_shards_owned')).toEqual([[undefined, 8]]);
    expect(await values('powerplane_shard_epoch_changes_total')).toEqual([
      ['acquired', 16],
      ['released', 8],
    ]);
    const renewals = /powerplane_lease_renew_seconds_count (\d+)/.exec(
      await registry.getSingleMetricAsString('powerplane_lease_renew_seconds'),
    );
    expect(Number(renewals?.[1])).toBeGreaterThan(0);
  });

  it('hands every shard of a replica that stops over at once, its writers stopped before its rows were released', async () => {
    // The survivor's guard and the leaver's lease are far longer than the test may wait:
    // the survivor can take the shards only because they were handed over.
    const b = await join('b', { writeGuardMs: 600_000 });
    // The leaver's writers take until the test lets them finish.
    let writersStop!: () => void;
    const writersStopped = new Promise<void>((resolve) => (writersStop = resolve));
    const stopping = new Set<number>();
    const a = await join('a', {
      leaseMs: 60_000,
      onLost: async (shard) => {
        stopping.add(shard);
        await writersStopped;
      },
    });
    await balanced(a, b);
    const handed = a.writableShards();
    const epochs = await rows();

    const stopped = a.stop();
    await waitFor('the leaver to stop its writers', () => stopping.size === handed.length);
    expect(a.writableShards()).toEqual([]);
    // While its writers have not stopped, its rows stay its own and nobody else writes them.
    await sleep(300);
    const whileStopping = await rows();
    for (const shard of handed) expect(whileStopping.get(shard)).toMatchObject({ owner: 'a', released: false });
    expect(b.writableShards()).toHaveLength(SHARDS - handed.length);
    writersStop();
    await stopped;
    await a.stop();
    await waitFor('the survivor to write every shard', () => b.writableShards().length === SHARDS, 10_000);
    expect([...stopping].sort((x, y) => x - y)).toEqual(handed);
    const after = await rows();
    for (const shard of handed) {
      expect(after.get(shard)).toMatchObject({ owner: 'b', epoch: epochs.get(shard)!.epoch + 1 });
      expect(indexOf('a', 'lost', shard)).toBeGreaterThanOrEqual(0);
      expect(indexOf('a', 'lost', shard)).toBeLessThan(indexOf('b', 'acquired', shard, epochs.get(shard)!.epoch + 1));
    }
    const { rows: replicas } = await sql<{ id: string }>`select id from powerplane.replicas order by id`.execute(shared.db);
    expect(replicas.map((r) => r.id)).toEqual(['b']);
  });

  it('lets the others take the shards of a replica that stopped renewing after its lease ran out, with a higher epoch', async () => {
    const aDatabase = await ownDatabase();
    const a = await join('a', { database: aDatabase, leaseMs: SHORT_LEASE_MS });
    const lastWritable = sampleWritable(a);
    const b = await join('b');
    await balanced(a, b);
    const wrote = fencesOf(a);

    // Dead as far as the database can tell: no statement of it arrives any more.
    await aDatabase.close();
    await waitFor('the survivor to write every shard', () => b.writableShards().length === SHARDS, 15_000);
    await expectTakenOnlyAfterExpiry('a', 'b', wrote, lastWritable);
  });

  it('makes a shard that was not handed over writable the write guard after the old lease ran out, on the monotonic clock', async () => {
    const aDatabase = await ownDatabase();
    // The dead replica's clock stands still, so it never claims again: its rows run out in
    // the database 600 ms after its one claim, under the epochs read here.
    await join('a', { database: aDatabase, leaseMs: SHORT_LEASE_MS, clock: createFakeClock() });
    const epochs = await rows();
    await aDatabase.close();
    // At least 100 ms past the old leases' end when the survivor claims them.
    await new Promise((resolve) => setTimeout(resolve, SHORT_LEASE_MS + 100));

    const clock = createFakeClock();
    const registry = new Registry();
    // Shorter than the survivor's own deadline (4 s after a renewal is sent), which the fake clock would pass too.
    const guardMs = 3_000;
    const b = await join('b', { clock, metricsRegistry: registry, writeGuardMs: guardMs });
    const owned = async () => (await registry.getSingleMetric('powerplane_shards_owned')!.get()).values[0]?.value;
    // Claims are made in real time; the guard runs on the fake clock.
    await waitFor('the survivor to claim every shard', async () => {
      b.claimSoon();
      return (await owned()) === SHARDS;
    });
    expect(b.writableShards()).toEqual([]);
    expect(b.fence(0)).toBeUndefined();
    // Counted from the old leases' end, at least 100 ms before the claim: less than the whole guard is left.
    await clock.advance(guardMs - 100);
    expect(b.writableShards()).toEqual(ALL);
    expect(eventsOf('b', 'acquired').map((e) => [e.shard, e.epoch])).toEqual(ALL.map((s) => [s, epochs.get(s)!.epoch + 1]));
  });

  it('makes a shard whose old lease ran out longer than the write guard ago writable at once', async () => {
    const aDatabase = await ownDatabase();
    await join('a', { database: aDatabase, leaseMs: SHORT_LEASE_MS, clock: createFakeClock() });
    await aDatabase.close();
    await new Promise((resolve) => setTimeout(resolve, SHORT_LEASE_MS + GUARD_MS + 100));

    const clock = createFakeClock();
    const b = await join('b', { clock });
    // The fake clock never moves: no guard is waited out.
    await waitFor('the survivor to write every shard', () => {
      b.claimSoon();
      return b.writableShards().length === SHARDS;
    });
    expect(eventsOf('b', 'acquired').map((e) => e.shard)).toEqual(ALL);
  });

  it('stops writing at its local deadline when renewals do not return, touching no database', async () => {
    const clock = createFakeClock();
    const aDatabase = await ownDatabase();
    const a = await join('a', { database: aDatabase, clock });
    expect(a.writableShards()).toEqual(ALL);
    await aDatabase.close();
    // Deadline: the claim was sent at the clock's start, plus the lease, less one renewal interval.
    await clock.advance(LEASE_MS - LEASE_MS / 3 - 1);
    expect(a.writableShards()).toEqual(ALL);
    expect(eventsOf('a', 'lost')).toEqual([]);
    await clock.advance(1);
    expect(a.writableShards()).toEqual([]);
    expect(eventsOf('a', 'lost').map((e) => [e.shard, e.why])).toEqual(ALL.map((s) => [s, 'expired']));
  });

  it('loses its shards by its own deadline when the database becomes unreachable, before any other replica could take them', async () => {
    const url = new URL(testDb.config.kind === 'postgres' ? testDb.config.url : '');
    const proxy = await startTcpProxy({ host: url.hostname, port: Number(url.port) });
    proxies.push(proxy);
    const aDatabase = await openDatabase(
      { kind: 'postgres', url: Object.assign(new URL(url), { port: String(proxy.port) }).toString() },
      { log: silentLog, poolSize: 5 },
    );
    ownDatabases.push(aDatabase);
    const a = await join('a', { database: aDatabase, leaseMs: SHORT_LEASE_MS });
    const lastWritable = sampleWritable(a);
    const b = await join('b');
    await balanced(a, b);
    const wrote = fencesOf(a);

    proxy.blackhole();
    await waitFor('the survivor to write every shard', () => b.writableShards().length === SHARDS, 15_000);
    await expectTakenOnlyAfterExpiry('a', 'b', wrote, lastWritable);
  });

  it("refuses a stale owner's renewal and its fenced writes once another replica took the shard", async () => {
    const aDatabase = await ownDatabase();
    // The stale owner's clock stands still: it never renews or claims again and keeps its
    // fence in hand, while its rows run out in the database 600 ms after its claim.
    const a = await join('a', { database: aDatabase, leaseMs: SHORT_LEASE_MS, clock: createFakeClock() });
    const stale = a.fence(3)!;
    await aDatabase.close();
    const b = await join('b');
    await waitFor('the survivor to write shard 3', () => b.fence(3) !== undefined, 15_000);
    const current = b.fence(3)!;
    expect(current.epoch).toBe(stale.epoch + 1);

    expect(await renewShards(shared.db, 'a', LEASE_MS, [{ shard: 3, epoch: stale.epoch }])).toEqual([]);
    // The owner's own earlier tenure is stale too: the epoch is part of the condition.
    expect(await renewShards(shared.db, 'b', LEASE_MS, [{ shard: 3, epoch: current.epoch - 1 }])).toEqual([]);
    expect(await renewShards(shared.db, 'b', LEASE_MS, [{ shard: 3, epoch: current.epoch }])).toEqual([3]);
    const probe = async (fence: Fence) => {
      const result = await sql`
        insert into test_fence_probe (shard, replica, epoch)
        select ${fence.shard}, ${fence.replica}, ${fence.epoch} where ${fenceHolds(fence)}`.execute(shared.db);
      return Number(result.numAffectedRows);
    };
    expect(await probe(stale)).toBe(0);
    expect(await probe(current)).toBe(1);
    const { rows: probes } = await sql<{ replica: string }>`select replica from test_fence_probe`.execute(shared.db);
    expect(probes).toEqual([{ replica: 'b' }]);
  });

  it('loses at once, as taken, a shard its renewal no longer finds its own', async () => {
    const clock = createFakeClock();
    const a = await join('a', { clock });
    const epoch = a.fence(5)!.epoch;
    await sql`update powerplane.shard_leases set owner = 'intruder', epoch = epoch + 1 where shard = 5`.execute(shared.db);
    // The next renewal, long before any deadline.
    await clock.advance(LEASE_MS / 3);
    await waitFor('the renewal to notice', () => eventsOf('a', 'lost').length > 0);
    expect(eventsOf('a', 'lost')).toMatchObject([{ shard: 5, epoch, why: 'taken' }]);
    expect(a.fence(5)).toBeUndefined();
    expect(a.writableShards()).toEqual(ALL.filter((s) => s !== 5));
  });

  it('removes the agent streams of replicas no longer live, and keeps those of live ones', async () => {
    await sql`
      insert into powerplane.replicas (id, expires_at) values ('gone', now() - interval '1 second'), ('other', now() + interval '1 minute');
      insert into powerplane.agent_streams (site, replica) values ('s1', 'gone'), ('s2', 'never-seen'), ('s3', 'other'), ('s4', 'a');
    `.execute(shared.db);
    await join('a');
    const streams = async () =>
      (await sql<{ site: string }>`select site from powerplane.agent_streams order by site`.execute(shared.db)).rows.map((r) => r.site);
    await waitFor('the streams of dead replicas to go', async () => (await streams()).length === 2);
    expect(await streams()).toEqual(['s3', 's4']);
  });

  it('never lets two replicas hold a writable fence for one shard, through joins, a graceful stop and a death', async () => {
    const violations: string[] = [];
    const highest = new Map<number, number>();
    let instants = 0;
    const sample = () => {
      instants++;
      for (const shard of ALL) {
        const fences = managers.map((m) => m.fence(shard)).filter((f): f is Fence => f !== undefined);
        if (fences.length > 1) violations.push(`shard ${shard}: ${fences.map((f) => `${f.replica}@${f.epoch}`).join(' and ')}`);
        for (const f of fences) {
          if (f.epoch < (highest.get(shard) ?? 0)) violations.push(`shard ${shard}: epoch ${f.epoch} after ${highest.get(shard)}`);
          highest.set(shard, Math.max(f.epoch, highest.get(shard) ?? 0));
        }
      }
    };
    const sampler = setInterval(sample, 1);
    try {
      const cDatabase = await ownDatabase();
      const a = await join('a');
      const b = await join('b');
      const c = await join('c', { database: cDatabase, leaseMs: SHORT_LEASE_MS });
      await balanced(a, b, c);
      await a.stop();
      await balanced(b, c);
      await cDatabase.close();
      await waitFor('the last replica to write every shard', () => b.writableShards().length === SHARDS, 15_000);
    } finally {
      clearInterval(sampler);
    }
    expect(violations).toEqual([]);
    expect(instants).toBeGreaterThan(100);
    expect(highest.size).toBe(SHARDS);
  });
});

describe('shard leases on embedded PGlite', () => {
  let testDb: TestDatabase;
  let database: Database;
  beforeAll(async () => {
    testDb = await createTestDatabase('pglite');
    database = await testDb.open();
  });
  afterAll(() => testDb.drop());

  it('gives the one replica every shard, and releases them all when it stops', async () => {
    const lost: number[] = [];
    const manager = createLeaseManager({
      db: database.db,
      replicaId: 'solo',
      leaseMs: LEASE_MS,
      writeGuardMs: GUARD_MS,
      clock: SYSTEM_CLOCK,
      log: silentLog,
    });
    await manager.start({ acquired: () => undefined, lost: async (shard) => void lost.push(shard) });
    expect(manager.shardCount).toBe(256);
    expect(manager.writableShards()).toHaveLength(256);
    expect(manager.fence(255)).toMatchObject({ replica: 'solo', shard: 255 });
    await manager.stop();
    expect(lost).toHaveLength(256);
    expect(manager.writableShards()).toEqual([]);
    const { rows } = await sql<{ held: number; released: number; replicas: number }>`
      select count(owner)::int as held, count(*) filter (where released)::int as released,
        (select count(*)::int from powerplane.replicas) as replicas
      from powerplane.shard_leases`.execute(database.db);
    expect(rows[0]).toEqual({ held: 0, released: 256, replicas: 0 });
  });
});
