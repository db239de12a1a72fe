import { sql } from 'kysely';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { LeaseManager } from '../../src/cluster/cluster.types.ts';
import { createLeaseManager } from '../../src/cluster/leases.ts';
import { SYSTEM_CLOCK } from '../../src/clock.ts';
import { openDatabase, type Database } from '../../src/storage/database.ts';
import { migrate, MIGRATIONS_DIR } from '../../src/storage/migrator.ts';
import { createTestDatabase, silentLog, type TestDatabase } from '../support/databases.ts';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.ts';
import { waitFor } from '../support/wait.ts';

const SHARDS = 8;
const ALL = Array.from({ length: SHARDS }, (_, i) => i);

/** Keeps this thread busy, as a long synchronous stretch of planning or connecting would. */
function blockFor(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // busy
  }
}

describe('lease renewals on a thread of their own', () => {
  let testDb: TestDatabase;
  let shared: Database;
  const managers: LeaseManager[] = [];
  const databases: Database[] = [];
  const proxies: TcpProxy[] = [];
  const lost: Array<{ shard: number; why: string }> = [];

  beforeAll(async () => {
    testDb = await createTestDatabase('postgres');
    shared = await testDb.open({ migrated: false });
    await migrate(shared, silentLog, MIGRATIONS_DIR, { shardCount: SHARDS });
  });
  afterAll(() => testDb.drop());
  afterEach(async () => {
    for (const proxy of proxies) proxy.heal();
    await Promise.all(managers.splice(0).map((m) => m.stop()));
    await Promise.all([...databases.splice(0).map((d) => d.close()), ...proxies.splice(0).map((p) => p.close())]);
    lost.length = 0;
    await sql`
      update powerplane.shard_leases set owner = null, released = true, expires_at = '-infinity';
      delete from powerplane.replicas`.execute(shared.db);
  });

  /**
   * A replica renewing from its own thread; with `viaProxy`, everything it sends to
   * PostgreSQL goes through a fault proxy (which runs on this test's thread, so it stands
   * still while the thread is blocked).
   */
  async function join(
    replica: string,
    leaseMs: number,
    viaProxy: boolean | 'thread' = false,
  ): Promise<{ manager: LeaseManager; proxy?: TcpProxy }> {
    const url = new URL(testDb.config.kind === 'postgres' ? testDb.config.url : '');
    const proxy = viaProxy ? await startTcpProxy({ host: url.hostname, port: Number(url.port) }) : undefined;
    if (proxy) proxies.push(proxy);
    const proxied = proxy ? Object.assign(new URL(url), { port: String(proxy.port) }).toString() : url.toString();
    const mainUrl = viaProxy === 'thread' ? url.toString() : proxied;
    const database = await openDatabase({ kind: 'postgres', url: mainUrl }, { log: silentLog, poolSize: 2 });
    databases.push(database);
    const manager = createLeaseManager({
      db: database.db,
      replicaId: replica,
      leaseMs,
      writeGuardMs: 100,
      clock: SYSTEM_CLOCK,
      log: silentLog,
      renewalThreadUrl: proxied,
    });
    managers.push(manager);
    await manager.start({
      acquired: () => undefined,
      lost: async (shard, _epoch, why) => void lost.push({ shard, why }),
    });
    await waitFor('every shard writable', () => manager.writableShards().length === SHARDS, 15_000);
    return { manager, proxy };
  }

  const epochs = async () =>
    (
      await sql<{
        shard: number;
        owner: string | null;
        epoch: number;
      }>`select shard, owner, epoch::int as epoch from powerplane.shard_leases order by shard`.execute(shared.db)
    ).rows;

  it('keeps every shard while the main thread is blocked for longer than the lease: the thread renewed them', async () => {
    // Renewed every 1.5 s, lost 3 s after a renewal is sent unless the next one succeeds.
    const { manager } = await join('a', 4_500);
    const before = await epochs();
    blockFor(7_000);
    // Asked before any timer or message of this thread could run: the deadlines moved without it.
    expect(manager.writableShards()).toEqual(ALL);
    const after = await epochs();
    expect(after.map((r) => r.owner)).toEqual(ALL.map(() => 'a'));
    expect(after.map((r) => r.epoch)).toEqual(before.map((r) => r.epoch));
    const { rows } = await sql<{ live: boolean }>`select expires_at > now() as live from powerplane.shard_leases`.execute(shared.db);
    expect(rows.every((r) => r.live)).toBe(true);
    expect(lost).toEqual([]);
  });

  it('refuses to write past the deadline when renewals stop, even before the blocked main thread runs its deadline timer', async () => {
    const { manager, proxy } = await join('a', 1_500, true);
    expect(manager.fence(0)).toBeDefined();
    proxy!.blackhole();
    // Past any deadline a renewal sent before the cut could have set (1 s after sending).
    blockFor(2_500);
    expect(manager.writableShards()).toEqual([]);
    expect(manager.fence(0)).toBeUndefined();
    // The listener is told once this thread runs again.
    expect(lost).toEqual([]);
    await waitFor('the losses told', () => lost.length === SHARDS, 5_000);
    expect(lost.map((l) => l.why)).toEqual(ALL.map(() => 'expired'));
  });

  it('renews on new connections when its own stop answering without closing (half-open), and keeps its shards from then on', async () => {
    // Renewed every second; a renewal on a dead connection times out at the 2 s deadline.
    const { manager, proxy } = await join('a', 3_000, 'thread');
    // Both of the thread's connections go half-open. Slow answers first make renewals
    // overlap, so the thread holds two established connections; then both stop carrying
    // bytes, unclosed.
    await waitFor('the thread connected', () => proxy!.stats().open >= 1, 10_000);
    proxy!.latency(600);
    await waitFor('a second renewal connection', () => proxy!.stats().open >= 2, 15_000);
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    proxy!.latency(0);
    proxy!.stall();
    // Renewals on new connections: the shards are (again) writable, and stay so.
    await waitFor('every shard writable', () => manager.writableShards().length === SHARDS, 15_000);
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    await waitFor('every shard writable after the stalled renewals timed out', () => manager.writableShards().length === SHARDS, 15_000);
    const lostBefore = lost.length;
    // Held through three leases: only renewals on working connections keep them that long.
    const until = Date.now() + 9_000;
    while (Date.now() < until) {
      expect(manager.writableShards()).toEqual(ALL);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(lost.length).toBe(lostBefore);
    expect(proxy!.stats().accepted).toBeGreaterThanOrEqual(3);
  }, 60_000);

  it('leaves no row behind when it leaves with a renewal stuck in PostgreSQL: the renewal is cancelled there first', async () => {
    const { manager } = await join('a', 1_500);
    // Holds up the next renewal inside PostgreSQL (its housekeeping deletes agent streams),
    // without holding up the leave, which touches neither that table nor a row the
    // renewal has locked.
    const locker = new pg.Client({ connectionString: testDb.config.kind === 'postgres' ? testDb.config.url : '' });
    await locker.connect();
    try {
      await locker.query('begin');
      await locker.query('lock table powerplane.agent_streams in access exclusive mode');
      const stuck = async () =>
        (
          await sql<{ n: number }>`
            select count(*)::int as n from pg_stat_activity
            where application_name = 'powerplane-leases' and wait_event_type = 'Lock' and datname = current_database()`.execute(shared.db)
        ).rows[0]!.n;
      await waitFor('a renewal waiting in PostgreSQL', async () => (await stuck()) > 0, 10_000);
      await manager.stop();
      const rows = async () =>
        (await sql<{ n: number }>`select count(*)::int as n from powerplane.replicas where id = 'a'`.execute(shared.db)).rows[0]!.n;
      expect(await rows()).toBe(0);
      expect(await stuck()).toBe(0);
      await locker.query('commit');
      // Long enough for a renewal still queued behind the lock to run and commit.
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      expect(await rows()).toBe(0);
    } finally {
      await locker.end();
    }
  }, 30_000);
});
