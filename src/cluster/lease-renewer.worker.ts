/**
 * The lease renewal thread (see `lease-renewer.ts`): every renewal interval, on a
 * connection of its own, it renews every shard the shared deadlines hold and moves their
 * deadlines itself, then tells the main thread what the renewal found. Its event loop runs
 * nothing else, so a main thread busy for a second does not make a renewal late.
 */
import { Kysely, PostgresDialect } from 'kysely';
import { parentPort, workerData } from 'node:worker_threads';
import type { Logger } from '../logger.ts';
import { createPgPool } from '../storage/pg-pool.ts';
import { bounded, BoundedTimeoutError } from './bounded.ts';
import { createLeaseDeadlines } from './lease-deadlines.ts';
import type { RenewerData, RenewerReport } from './lease-renewer.types.ts';
import { heartbeatAndRenew } from './leases.repository.ts';

const data = workerData as RenewerData;
const port = parentPort!;
const post = (report: RenewerReport) => port.postMessage(report);
/** The main thread's clock, read here: both count from the same monotonic source. */
const now = () => Number(process.hrtime.bigint()) / 1e6 + data.offsetMs;
const clock = {
  now,
  setTimeout: (callback: () => void, ms: number) => setTimeout(callback, ms),
  clearTimeout: (timer: unknown) => clearTimeout(timer as NodeJS.Timeout | undefined),
};
// Connection errors only: they go to the main thread's log.
const log = {
  warn: (fields: object, msg: string) => post({ t: 'log', fields, msg }),
} as unknown as Logger;
// A renewal PostgreSQL has not finished within the lease is cancelled there: it could no
// longer extend anything, and one still running when the thread stops must not write the
// replica's row after the replica has left.
const connect = () =>
  new Kysely<object>({
    dialect: new PostgresDialect({
      pool: createPgPool(data.url, { max: data.maxInFlight, applicationName: 'powerplane-leases', log, statementTimeoutMs: data.leaseMs }),
    }),
  });
let db = connect();

/**
 * New connections in place of the pool whose renewal timed out. A statement lost on a
 * half-open connection (a NAT or firewall that dropped the flow without a reset) never
 * ends, and its connection never returns to the pool: without this every later renewal
 * would wait for a connection until TCP keepalive gave up, which takes minutes to hours,
 * and the replica would keep losing the shards it claims. The old pool is left to end
 * when its connections do.
 */
function replaceConnections(): void {
  const old = db;
  db = connect();
  void old.destroy().catch(() => undefined);
  post({ t: 'log', fields: { replicaId: data.replicaId }, msg: 'a lease renewal timed out: renewing on new connections' });
}
const deadlines = createLeaseDeadlines(data.shardCount, data.memory);

let inFlight = 0;
let stopping = false;
const running = new Set<Promise<void>>();
let timer: NodeJS.Timeout | undefined;
let dueAt = now();

async function renew(tickLateMs: number): Promise<void> {
  inFlight++;
  const sentAt = now();
  const sent = deadlines.held();
  try {
    const renewal = await bounded(heartbeatAndRenew(db, data.replicaId, data.leaseMs, sent), data.deadlineMs, clock, 'lease renewal');
    // Moved here, at once: the main thread may be busy, and its writes check these.
    const receivedAt = now();
    const renewed = new Set(renewal.renewed);
    for (const { shard, epoch } of sent) if (renewed.has(shard)) deadlines.extend(shard, epoch, sentAt + data.deadlineMs, receivedAt);
    post({ t: 'renewed', sentAt, sent, renewal, receivedAt, tickLateMs });
  } catch (err) {
    if (err instanceof BoundedTimeoutError && !stopping) replaceConnections();
    post({ t: 'failed', sentAt, err: (err as Error).message, receivedAt: now(), tickLateMs });
  } finally {
    inFlight--;
  }
}

function tick(): void {
  if (stopping) return;
  const tickLateMs = Math.max(0, now() - dueAt);
  dueAt = now() + data.renewEveryMs;
  timer = setTimeout(tick, data.renewEveryMs);
  if (inFlight >= data.maxInFlight) return;
  const work = renew(tickLateMs);
  running.add(work);
  void work.finally(() => running.delete(work));
}

port.on('message', (message: { t: 'stop' }) => {
  if (message.t !== 'stop' || stopping) return;
  stopping = true;
  clearTimeout(timer);
  void (async () => {
    await Promise.allSettled([...running]);
    await db.destroy().catch(() => undefined);
    post({ t: 'stopped' });
  })();
});

post({ t: 'ready' });
tick();
