/**
 * `npm run bench:fanout [-- --quick]`: how setpoint events reach the watchers of another
 * replica, for bursts of 1000 events (one site's plan of 1000 batteries' worth of steps).
 * Two replicas in this process, each with its own connection pool to one throwaway
 * PostgreSQL (fsync off). Replica A records every burst with the controller's recorder
 * (batches of at most 500, 20 ms flush delay); replica B publishes them on its own bus,
 * through one of:
 *  - notify: the recorder's insert NOTIFYs each batch's id range in the same statement;
 *    B LISTENs on a dedicated connection and fetches `id between min and max and replica = A`
 *    (`control/setpoint-fanout.ts`, the product's path);
 *  - poll N ms: B reads `id > watermark` every N ms (20 and 100), the alternative.
 * Per burst: time from its first event recorded on A to its last event published on B's bus
 * (p50/p99/max), beside the time A's own inserts of the burst took (the floor either way),
 * events lost, and the queries B sends per second while nothing happens.
 * Binds 127.0.0.1 only, bounds every loop and stops everything it starts. The last line
 * is one JSON object with the headline figures.
 */
import { randomUUID } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import pg from 'pg';
import { CLUSTER_CHANNEL, type ClusterMessage } from '../src/cluster/cluster.types.ts';
import { createSetpointFanout } from '../src/control/setpoint-fanout.ts';
import { SYSTEM_CLOCK } from '../src/clock.ts';
import { createEventRecorder, createSetpointBus } from '../src/control/setpoint-bus.ts';
import * as repo from '../src/dispatch/dispatch.repository.ts';
import type { DispatchTables } from '../src/dispatch/dispatch.table.ts';
import type { SetpointBus, SetpointRecord } from '../src/dispatch/setpoint-events.ts';
import { createLogger } from '../src/logger.ts';
import { openDatabase, type Database } from '../src/storage/database.ts';
import { migrate } from '../src/storage/migrator.ts';
import { startPostgresCluster } from '../test/support/postgres-cluster.ts';
import { percentile } from './support/stats.ts';
import { createBenchDatabase } from './support/bench-database.ts';

const quick = process.argv.includes('--quick');
const BURST = 1000;
const BURSTS = quick ? 15 : 60;
/** How long B is watched doing nothing, to count its idle queries, ms. */
const IDLE_MS = quick ? 1_000 : 3_000;
/** No burst waits longer than this for its last event, ms. */
const BURST_TIMEOUT_MS = 10_000;
const POLL_PAGE = 2_000;

const log = createLogger('warn');
const fmt = (n: number) => n.toFixed(1);
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** How B learns of A's events; returns a stop function, and counts the queries it sends. */
type Transport = (b: { db: Kysely<object>; url: string; bus: SetpointBus; queries: { n: number } }) => Promise<() => Promise<void>>;

const notifyTransport: Transport = async ({ db, url, bus, queries }) => {
  const fanout = createSetpointFanout({ db, bus, replicaId: 'B', log });
  const listener = new pg.Client({ connectionString: url });
  await listener.connect();
  listener.on('notification', (n) => {
    if (n.channel !== CLUSTER_CHANNEL || n.payload === undefined) return;
    const message = JSON.parse(n.payload) as ClusterMessage;
    // Each range is one fetch (a page of up to 2000 rows; the recorder's batches hold 500).
    if (message.k === 'events' && message.from !== 'B') queries.n++;
    fanout.onMessage(message);
  });
  await listener.query(`listen ${CLUSTER_CHANNEL}`);
  return async () => {
    await listener.end();
    await fanout.stop();
  };
};

const pollTransport =
  (intervalMs: number): Transport =>
  async ({ db: database, bus, queries }) => {
    const db = database.withTables<DispatchTables>();
    const { rows } = await sql<{ max: string | null }>`select max(id)::text as max from powerplane.setpoint_events`.execute(db);
    let watermark = Number(rows[0]?.max ?? 0);
    let stopped = false;
    const loop = (async () => {
      while (!stopped) {
        // A page at a time until caught up, then the interval: one query per page, with the
        // fan-out's own columns and order (by id, from the watermark on).
        for (let page = 0; page < 100 && !stopped; page++) {
          queries.n++;
          const events = await repo.findSetpointEventsOf(db, 'A', watermark + 1, Number.MAX_SAFE_INTEGER, POLL_PAGE);
          for (const { id: _id, ...record } of events) bus.publish(record);
          if (events.length > 0) watermark = events.at(-1)!.id;
          if (events.length < POLL_PAGE) break;
        }
        await sleep(intervalMs);
      }
    })();
    return async () => {
      stopped = true;
      await loop;
    };
  };

/** One transport's run: `BURSTS` bursts of `BURST` events from A, timed to their last event on B. */
async function run(name: string, transport: Transport, a: Database, b: Database, url: string) {
  const adb = a.db.withTables<DispatchTables>();
  const notifies = transport === notifyTransport;
  let insertedAt = 0;
  const recorder = createEventRecorder(
    async (records, notifyFrom) => {
      await repo.insertSetpointEvents(adb, records, notifyFrom !== undefined ? { notifyFrom } : {});
      insertedAt = performance.now();
    },
    log,
    SYSTEM_CLOCK,
    notifies ? { replicaId: 'A' } : {},
  );
  const bus = createSetpointBus();
  const queries = { n: 0 };
  const stopTransport = await transport({ db: b.db, url, bus, queries });
  const site = `bench-${name}`;
  let seen = 0;
  let onSeen: (() => void) | undefined;
  const watch = new AbortController();
  const watching = (async () => {
    for await (const batch of bus.subscribe((r) => r.site === site, watch.signal, { maxQueued: 20_000 })) {
      seen += batch.length;
      onSeen?.();
    }
  })();
  const latencies: number[] = [];
  const inserts: number[] = [];
  let lost = 0;
  try {
    // Idle: what B costs the database while no event is recorded.
    queries.n = 0;
    await sleep(IDLE_MS);
    const idleQueriesPerS = (queries.n * 1000) / IDLE_MS;
    for (let burst = 0; burst < BURSTS; burst++) {
      const target = seen + BURST;
      const done = new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), BURST_TIMEOUT_MS);
        onSeen = () => {
          if (seen >= target) {
            clearTimeout(timer);
            resolve(true);
          }
        };
      });
      const started = performance.now();
      for (let i = 0; i < BURST; i++) recorder.add(event(site, burst * BURST + i));
      if (await done) latencies.push(performance.now() - started);
      else lost += target - seen;
      await recorder.stop();
      inserts.push(insertedAt - started);
      onSeen = undefined;
      // A gap unrelated to the poll interval, so polling is not measured in phase with it.
      await sleep(100 + Math.random() * 200);
    }
    await recorder.stop();
    return { idleQueriesPerS, latencies: latencies.sort((x, y) => x - y), inserts: inserts.sort((x, y) => x - y), lost };
  } finally {
    await recorder.stop();
    await stopTransport();
    watch.abort();
    await watching;
  }
}

function event(site: string, i: number): SetpointRecord {
  return {
    setpointId: randomUUID(),
    deviceId: randomUUID(),
    site,
    phase: 'VERIFIED',
    targetPowerKw: i % 100,
    source: 'DISPATCH',
    at: new Date(),
    elapsedMs: 1,
    replica: 'A',
  };
}

async function main(): Promise<void> {
  const cluster = await startPostgresCluster();
  const opened: Database[] = [];
  try {
    const url = await createBenchDatabase(cluster.adminUrl);
    const open = async () => {
      const database = await openDatabase({ kind: 'postgres', url }, { log, poolSize: 4 });
      opened.push(database);
      return database;
    };
    const [a, b] = [await open(), await open()];
    await migrate(a, log);
    console.log(`PostgreSQL (throwaway, fsync off); ${BURSTS} bursts of ${BURST} events from replica A to replica B's bus`);
    const results: Record<string, Awaited<ReturnType<typeof run>>> = {};
    for (const [name, transport] of [
      ['notify', notifyTransport],
      ['poll20', pollTransport(20)],
      ['poll100', pollTransport(100)],
    ] as const) {
      const r = await run(name, transport, a, b, url);
      results[name] = r;
      console.log(
        `${name.padEnd(8)} last event of a burst on B after p50 ${fmt(percentile(r.latencies, 50))} ms, ` +
          `p99 ${fmt(percentile(r.latencies, 99))} ms, max ${fmt(r.latencies.at(-1) ?? Number.NaN)} ms ` +
          `(A's own inserts of a burst done after p50 ${fmt(percentile(r.inserts, 50))} ms); ` +
          `lost ${r.lost}; idle ${fmt(r.idleQueriesPerS)} queries/s`,
      );
    }
    const p = (name: string, q: number) => percentile(results[name]!.latencies, q);
    console.log(
      `comparison: NOTIFY+fetch p50 ${fmt(p('notify', 50))} ms / p99 ${fmt(p('notify', 99))} ms against polling every 20 ms ` +
        `${fmt(p('poll20', 50))} / ${fmt(p('poll20', 99))} ms and every 100 ms ${fmt(p('poll100', 50))} / ${fmt(p('poll100', 99))} ms; ` +
        `idle queries/s ${fmt(results.notify!.idleQueriesPerS)} vs ` +
        `${fmt(results.poll20!.idleQueriesPerS)} / ${fmt(results.poll100!.idleQueriesPerS)}`,
    );
    console.log(
      JSON.stringify({
        burst: BURST,
        bursts: BURSTS,
        notify_p50_ms: +fmt(p('notify', 50)),
        notify_p99_ms: +fmt(p('notify', 99)),
        poll20_p50_ms: +fmt(p('poll20', 50)),
        poll20_p99_ms: +fmt(p('poll20', 99)),
        poll100_p50_ms: +fmt(p('poll100', 50)),
        poll100_p99_ms: +fmt(p('poll100', 99)),
        lost: Object.values(results).reduce((n, r) => n + r.lost, 0),
        idle_queries_per_s: {
          notify: results.notify!.idleQueriesPerS,
          poll20: results.poll20!.idleQueriesPerS,
          poll100: results.poll100!.idleQueriesPerS,
        },
      }),
    );
  } finally {
    await Promise.all(opened.map((d) => d.close()));
    await cluster.stop();
  }
}

await main();
