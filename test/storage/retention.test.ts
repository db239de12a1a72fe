import { randomBytes, randomUUID } from 'node:crypto';
import pg from 'pg';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { createFakeClock, type FakeClock } from '../../src/clock.fixtures.ts';
import { appRoleGrants } from '../../src/storage/app-role.ts';
import { openDatabase, type Database, type Session } from '../../src/storage/database.ts';
import { startRetentionJob, type RetentionJob, type RetentionJobDeps } from '../../src/storage/retention.ts';
import { deleteExpiredReadings, READING_TABLES, type ReadingKind } from '../../src/storage/retention.repository.ts';
import type { RetentionDays } from '../../src/storage/retention.types.ts';
import { createTestDatabase, ENGINES, silentLog, type TestDatabase } from '../support/databases.ts';
import { startTestServer, type TestServer } from '../support/server.ts';
import { waitFor } from '../support/wait.ts';

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
/** The wall clock of every job here: fixed, and moved by the tests only. */
const NOW = Date.parse('2026-06-01T12:00:00Z');
const OPTIONS = { batchRows: 100, maxBatchesPerRun: 3, intervalMs: HOUR_MS, checkMs: 1_000, pauseMs: 50 };
const KINDS: readonly ReadingKind[] = ['meter', 'bess', 'datum', 'market'];

/** Inserts one reading of `kind` at each of `times`. */
async function seed(session: Session, kind: ReadingKind, times: readonly number[]): Promise<void> {
  const iso = times.map((t) => new Date(t).toISOString());
  if (kind === 'meter' || kind === 'bess') {
    const table = READING_TABLES[kind].table;
    await session.query(`insert into ${table} ("time", device_id) select t, $2::uuid from unnest($1::timestamptz[]) t`, [
      iso,
      randomUUID(),
    ]);
  } else if (kind === 'datum') {
    const [stream] = await session.query<{ stream_id: string }>(
      `insert into powerplane.datum_streams (device_id, source_id) values ($1, 'cells') returning stream_id`,
      [randomUUID()],
    );
    await session.query(`insert into powerplane.datum_readings (stream_id, ts) select $2::uuid, t from unnest($1::timestamptz[]) t`, [
      iso,
      stream!.stream_id,
    ]);
  } else {
    await session.query(`insert into flux.market_data ("time", type, value) select t, 1, 42 from unnest($1::timestamptz[]) t`, [iso]);
  }
}

/** `count` readings an hour apart, the newest `newestHoursAgo` hours before {@link NOW}. */
const hourly = (count: number, newestHoursAgo = 0) => Array.from({ length: count }, (_, i) => NOW - (newestHoursAgo + i) * HOUR_MS);

async function stats(database: Database, kind: ReadingKind): Promise<{ count: number; oldest: number | undefined }> {
  const { table, time } = READING_TABLES[kind];
  return database.withSession(async (session) => {
    const [row] = await session.query<{ count: number; oldest: Date | string | null }>(
      `select count(*)::int as count, min(${time}) as oldest from ${table}`,
    );
    return { count: row!.count, oldest: row!.oldest == null ? undefined : new Date(row!.oldest).getTime() };
  });
}

async function metricValues(registry: Registry, name: string): Promise<Record<string, number>> {
  const metric = registry.getSingleMetric(name);
  if (!metric) return {};
  const { values } = await metric.get();
  return Object.fromEntries(values.map((v) => [String(v.labels.kind), v.value]));
}

describe.each(ENGINES)('readings retention on %s', (engine) => {
  let testDb: TestDatabase;
  let database: Database;
  let clock: FakeClock;
  let registry: Registry;
  let wall: number;
  let owner: boolean;
  const jobs: RetentionJob[] = [];

  beforeAll(async () => {
    testDb = await createTestDatabase(engine);
    database = await testDb.open();
  });
  afterAll(async () => {
    await testDb?.drop();
  });
  beforeEach(async () => {
    clock = createFakeClock();
    registry = new Registry();
    wall = NOW;
    owner = true;
    await database.withSession((s) =>
      s.exec('truncate flux.mg_meter_readings, flux.mg_bess_readings, powerplane.datum_readings, flux.market_data'),
    );
  });
  afterEach(async () => {
    await Promise.all(jobs.splice(0).map((job) => job.stop()));
  });

  function start(retention: RetentionDays, extra: Partial<RetentionJobDeps> = {}): RetentionJob {
    const job = startRetentionJob({
      database,
      retention,
      isOwner: () => owner,
      clock,
      wallClock: () => wall,
      log: silentLog,
      metricsRegistry: registry,
      options: OPTIONS,
      ...extra,
    });
    jobs.push(job);
    return job;
  }

  /** Moves the fake clock by `ms` and waits for the step it started, if any. */
  async function step(job: RetentionJob, ms: number): Promise<void> {
    await clock.advance(ms);
    await job.settled();
  }

  /** Steps by `ms` until a run newer than the current last one has finished (at most 200 steps). */
  async function nextRun(job: RetentionJob, ms = OPTIONS.pauseMs) {
    const before = job.lastRun;
    for (let i = 0; i < 200 && job.lastRun === before; i++) await step(job, ms);
    expect(job.lastRun).not.toBe(before);
    return job.lastRun!;
  }

  it('refuses a retention or options it cannot run with, naming them', () => {
    expect(() => start({ meter: 1.5 })).toThrow(/retention\.meter/);
    expect(() => start({ bess: 0 })).toThrow(/retention\.bess/);
    expect(() => start({ meter: 1 }, { options: { ...OPTIONS, batchRows: 0 } })).toThrow(/batchRows/);
    expect(() => start({ meter: 1 }, { options: { ...OPTIONS, maxBatchesPerRun: 0 } })).toThrow(/maxBatchesPerRun/);
  });

  it('deletes each kind older than its own retention, oldest first, and keeps audit, setpoint and source history', async () => {
    await database.withSession(async (s) => {
      for (const kind of KINDS) await seed(s, kind, hourly(240));
      await s.query(
        `insert into powerplane.audit_log (at, call_id, principal, method, phase)
         values ('2000-01-01', $1, 'token:old', 'Old', 'completed')`,
        [randomUUID()],
      );
      await s.query(
        `insert into powerplane.setpoint_events (setpoint_id, device_id, site, phase, target_power_kw, command_source, elapsed_ms, at)
         values ($1, $2, 'old-site', 'VERIFIED', 5, 2, 1, '2000-01-01')`,
        [randomUUID(), randomUUID()],
      );
      await s.query(
        `insert into powerplane.command_source_history (device_id, source, reason, changed_at) values ($1, 1, 'old', '2000-01-01')`,
        [randomUUID()],
      );
    });
    const retention = { meter: 2, bess: 3, datum: 4, market: 5 } as const;
    const job = start(retention);

    const run = await nextRun(job, OPTIONS.checkMs);
    // A reading exactly at the cutoff is kept: 240 hourly readings, (days × 24 + 1) kept.
    expect(run).toEqual({ deleted: { meter: 191, bess: 167, datum: 143, market: 119 }, skipped: [], backlog: [] });
    for (const kind of KINDS) {
      expect(await stats(database, kind)).toEqual({ count: retention[kind] * 24 + 1, oldest: NOW - retention[kind] * DAY_MS });
    }
    expect(await metricValues(registry, 'powerplane_retention_deleted_rows_total')).toEqual(run.deleted);
    expect(await metricValues(registry, 'powerplane_retention_oldest_reading_timestamp_seconds')).toEqual(
      Object.fromEntries(KINDS.map((kind) => [kind, (NOW - retention[kind] * DAY_MS) / 1_000])),
    );
    const history = await database.withSession((s) =>
      s.query<{ n: number }>(
        `select (select count(*) from powerplane.audit_log where at < '2001-01-01')
              + (select count(*) from powerplane.setpoint_events where at < '2001-01-01')
              + (select count(*) from powerplane.command_source_history where changed_at < '2001-01-01') as n`,
      ),
    );
    expect(Number(history[0]!.n)).toBe(3);

    // A day later by the wall clock, the next run (an interval after this one) deletes that day too.
    wall += DAY_MS;
    await step(job, OPTIONS.intervalMs - OPTIONS.checkMs);
    expect((await stats(database, 'meter')).count).toBe(49);
    const later = await nextRun(job, OPTIONS.checkMs);
    expect(later.deleted).toEqual({ meter: 24, bess: 24, datum: 24, market: 24 });
    expect((await metricValues(registry, 'powerplane_retention_deleted_rows_total')).meter).toBe(191 + 24);
  });

  it('pauses between statements, stops a run at its bound and goes on at the next check; a kind without retention is kept', async () => {
    await database.withSession(async (s) => {
      await seed(s, 'meter', hourly(700, 48));
      await seed(s, 'meter', hourly(10));
      await seed(s, 'bess', hourly(700, 48));
    });
    const job = start({ meter: 1 });
    await step(job, OPTIONS.checkMs);
    expect((await stats(database, 'meter')).count).toBe(610);
    // Nothing more until the pause after the statement has passed.
    await step(job, OPTIONS.pauseMs - 1);
    expect((await stats(database, 'meter')).count).toBe(610);
    await step(job, 1);
    expect((await stats(database, 'meter')).count).toBe(510);

    const first = await nextRun(job);
    expect(first).toEqual({ deleted: { meter: 300 }, skipped: [], backlog: ['meter'] });
    expect((await stats(database, 'meter')).count).toBe(410);
    // The rest is not left for an interval: the next run starts after a pause.
    const second = await nextRun(job);
    expect(second).toEqual({ deleted: { meter: 300 }, skipped: [], backlog: ['meter'] });
    const third = await nextRun(job);
    expect(third).toEqual({ deleted: { meter: 100 }, skipped: [], backlog: [] });
    expect(await stats(database, 'meter')).toEqual({ count: 10, oldest: NOW - 9 * HOUR_MS });
    expect((await stats(database, 'bess')).count).toBe(700);

    // Caught up: readings that pass the retention now wait for the interval.
    await database.withSession((s) => seed(s, 'meter', hourly(5, 30)));
    await step(job, OPTIONS.intervalMs - 2 * OPTIONS.checkMs);
    expect(job.lastRun).toBe(third);
    expect((await stats(database, 'meter')).count).toBe(15);
    const fourth = await nextRun(job, OPTIONS.checkMs);
    expect(fourth.deleted).toEqual({ meter: 5 });
    expect(await metricValues(registry, 'powerplane_retention_deleted_rows_total')).toEqual({ meter: 705 });
  });

  it('runs only while this replica owns shard 0, stops between statements on losing it, and starts at once on gaining it', async () => {
    await database.withSession((s) => seed(s, 'market', hourly(500, 48)));
    owner = false;
    const job = start({ market: 1 });
    for (let i = 0; i < 10; i++) await step(job, OPTIONS.intervalMs);
    expect(job.lastRun).toBeUndefined();
    expect((await stats(database, 'market')).count).toBe(500);

    owner = true;
    await step(job, OPTIONS.checkMs);
    expect((await stats(database, 'market')).count).toBe(400);
    owner = false;
    for (let i = 0; i < 10; i++) await step(job, OPTIONS.checkMs);
    expect((await stats(database, 'market')).count).toBe(400);
    expect(job.lastRun).toBeUndefined();

    owner = true;
    const run = await nextRun(job, OPTIONS.checkMs);
    expect(run.deleted).toEqual({ market: 300 });
    expect(await metricValues(registry, 'powerplane_retention_oldest_reading_timestamp_seconds')).toEqual({
      market: (NOW - 48 * HOUR_MS - 99 * HOUR_MS) / 1_000,
    });
    // A replica that is not the owner reports no oldest reading: the owner does.
    owner = false;
    await step(job, OPTIONS.checkMs);
    expect(await metricValues(registry, 'powerplane_retention_oldest_reading_timestamp_seconds')).toEqual({});
  });

  it('leaves a hypertable to TimescaleDB but still reports its oldest reading', async () => {
    await database.withSession(async (s) => {
      await seed(s, 'meter', hourly(50, 48));
      await seed(s, 'bess', hourly(50, 48));
    });
    const job = start({ meter: 1, bess: 1 }, { hypertables: async () => new Set([READING_TABLES.meter.table]) });
    const run = await nextRun(job, OPTIONS.checkMs);
    expect(run).toEqual({ deleted: { bess: 50 }, skipped: ['meter'], backlog: [] });
    expect((await stats(database, 'meter')).count).toBe(50);
    expect(await metricValues(registry, 'powerplane_retention_oldest_reading_timestamp_seconds')).toEqual({
      meter: (NOW - 97 * HOUR_MS) / 1_000,
    });
  });

  it('logs a failed run and tries again later, without stopping', async () => {
    await database.withSession((s) => seed(s, 'datum', hourly(20, 48)));
    let fail = true;
    const job = start(
      { datum: 1 },
      {
        hypertables: async (session) => {
          if (fail) await session.query('select * from powerplane.no_such_table');
          return new Set();
        },
      },
    );
    await step(job, OPTIONS.checkMs);
    expect(job.lastRun).toBeUndefined();
    fail = false;
    // Retried after a minute (the interval is an hour), not at the next check.
    await step(job, 30_000);
    expect(job.lastRun).toBeUndefined();
    const run = await nextRun(job, OPTIONS.checkMs);
    expect(run.deleted).toEqual({ datum: 20 });
  });

  it('refuses statements the function is not for: too many rows, an unknown kind, a table with children', async () => {
    await database.withSession(async (s) => {
      const code = (work: Promise<unknown>) =>
        work.then(
          () => 'ok',
          (err: { code?: string }) => err.code,
        );
      expect(await code(deleteExpiredReadings(s, 'meter', new Date(NOW), 10_001))).toBe('22023');
      expect(await code(deleteExpiredReadings(s, 'meter', new Date(NOW), 0))).toBe('22023');
      expect(await code(deleteExpiredReadings(s, 'weather' as ReadingKind, new Date(NOW), 10))).toBe('22023');
      await s.exec('create table flux.meter_child () inherits (flux.mg_meter_readings)');
      try {
        expect(await code(deleteExpiredReadings(s, 'meter', new Date(NOW), 10))).toBe('0A000');
      } finally {
        await s.exec('drop table flux.meter_child');
      }
      expect(await code(deleteExpiredReadings(s, 'meter', new Date(NOW), 10))).toBe('ok');
    });
  });
});

describe('readings retention as the application role, on PostgreSQL', () => {
  const role = `pp_ret_${randomBytes(5).toString('hex')}`;
  const password = randomBytes(12).toString('hex');
  let testDb: TestDatabase;
  let appDatabase: Database | undefined;

  beforeAll(async () => {
    testDb = await createTestDatabase('postgres');
    const owner = await testDb.open();
    await owner.withSession(async (s) => {
      await s.exec(`create role ${role} login password '${password}'`);
      await s.exec((await appRoleGrants(s, role)).sql);
    });
  });
  afterAll(async () => {
    await appDatabase?.close();
    await testDb?.drop();
    const admin = new pg.Client({ connectionString: inject('postgresAdminUrl') });
    await admin.connect();
    await admin.query(`drop role if exists ${role}`).finally(() => admin.end());
  });

  it('deletes through the migration function while a DELETE of its own is refused', async () => {
    if (testDb.config.kind !== 'postgres') throw new Error('a PostgreSQL database was expected');
    const url = new URL(testDb.config.url);
    url.username = role;
    url.password = password;
    appDatabase = await openDatabase({ kind: 'postgres', url: url.toString() }, { log: silentLog, poolSize: 1 });
    const app = appDatabase;
    await app.withSession((s) => seed(s, 'meter', hourly(30)));
    const refused = await app
      .withSession((s) => s.query('delete from flux.mg_meter_readings'))
      .then(
        () => 'ok',
        (err: { code?: string }) => err.code,
      );
    expect(refused).toBe('42501');

    const clock = createFakeClock();
    const job = startRetentionJob({
      database: app,
      retention: { meter: 1 },
      isOwner: () => true,
      clock,
      wallClock: () => NOW,
      log: silentLog,
      options: OPTIONS,
    });
    try {
      await clock.advance(OPTIONS.checkMs);
      await job.settled();
      expect(job.lastRun).toEqual({ deleted: { meter: 5 }, skipped: [], backlog: [] });
    } finally {
      await job.stop();
    }
    expect((await stats(app, 'meter')).count).toBe(25);
  });
});

describe('serve with a retention', () => {
  let t: TestServer;
  afterAll(async () => {
    await t?.stop();
  });

  it('deletes readings past it on its own, as the owner of every shard on PGlite, and counts them in /metrics', async () => {
    t = await startTestServer('pglite', { retention: { bess: 1 } });
    const now = Date.now();
    await t.server.database.withSession((s) =>
      seed(s, 'bess', [now - 3 * DAY_MS, now - 2 * DAY_MS, now - 25 * HOUR_MS, now - HOUR_MS, now - 60_000]),
    );
    await waitFor('old battery readings to be deleted', async () => (await stats(t.server.database, 'bess')).count === 2, 20_000);
    const metrics = await (await fetch(`${t.baseUrl}/metrics`)).text();
    expect(metrics).toContain('powerplane_retention_deleted_rows_total{kind="bess"} 3');
    expect(metrics).toMatch(/powerplane_retention_oldest_reading_timestamp_seconds\{kind="bess"\} \d+/);
  });
});
