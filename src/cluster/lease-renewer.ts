/**
 * Lease renewals on a thread of their own. A replica's main thread plans, writes and
 * answers calls; a long synchronous stretch of it (a plan of thousands of batteries, a
 * burst of connections) used to delay the renewal timer past the replica's own deadline,
 * and the replica lost shards it was entitled to. The renewal thread renews on its own
 * connections and moves the shared deadlines ({@link LeaseDeadlines}) itself; the main
 * thread's writes read them, so a write past the deadline is still refused.
 */
import { Worker } from 'node:worker_threads';
import type { Clock } from '../clock.ts';
import type { LeaseDeadlines } from './lease-deadlines.ts';
import type { RenewerData, RenewerReport } from './lease-renewer.types.ts';

/** What {@link startRenewerThread} needs. */
export interface RenewerThreadOptions {
  /** PostgreSQL URL of the thread's own connections. */
  readonly url: string;
  readonly replicaId: string;
  readonly leaseMs: number;
  readonly renewEveryMs: number;
  readonly deadlineMs: number;
  /** The lease manager's clock: the process's `performance.now()` (the thread reads the same monotonic time). */
  readonly clock: Clock;
  readonly deadlines: LeaseDeadlines;
  /** Every report of the thread but `ready` and `stopped`. */
  readonly onReport: (report: RenewerReport) => void;
  /** The thread ended without being asked: renewals stop until the caller takes over. */
  readonly onCrash: (err: Error) => void;
}

/** A running renewal thread. */
export interface RenewerThread {
  /** Stops renewing; resolves once renewals in flight ended and the connections closed. Idempotent. */
  stop(): Promise<void>;
}

/** Renewals on the way at once, and the thread's connections: one more may start while a slow one is still bounded. */
const THREAD_RENEWALS_IN_FLIGHT = 2;

/**
 * How long a stop may wait for the thread to finish its renewals in flight: 5 s, or the
 * lease and a second when that is longer, so a renewal PostgreSQL is still running has been
 * cancelled there (the thread's `statement_timeout` is the lease) before the replica leaves.
 */
const stopWaitMs = (leaseMs: number) => Math.max(5_000, leaseMs + 1_000);

/** Starts the renewal thread; resolves once it is connected and renewing. */
export async function startRenewerThread(options: RenewerThreadOptions): Promise<RenewerThread> {
  // Both clocks are read back to back: the offset is exact to well under a millisecond,
  // and the thread takes a millisecond off every deadline it sets for it.
  const offsetMs = options.clock.now() - Number(process.hrtime.bigint()) / 1e6 - 1;
  const data: RenewerData = {
    url: options.url,
    replicaId: options.replicaId,
    leaseMs: options.leaseMs,
    renewEveryMs: options.renewEveryMs,
    deadlineMs: options.deadlineMs,
    maxInFlight: THREAD_RENEWALS_IN_FLIGHT,
    offsetMs,
    shardCount: options.deadlines.memory.slots.byteLength / 8,
    memory: options.deadlines.memory,
  };
  const worker = new Worker(new URL('../../bin/lease-renewer-thread.js', import.meta.url), { workerData: data });
  let stopping = false;
  let crashed = false;
  const crash = (err: Error) => {
    if (stopping || crashed) return;
    crashed = true;
    options.onCrash(err);
  };
  let stopped: () => void = () => undefined;
  const gone = new Promise<void>((resolve) => (stopped = resolve));
  await new Promise<void>((resolve, reject) => {
    worker.on('message', (report: RenewerReport) => {
      if (report.t === 'ready') resolve();
      else if (report.t === 'stopped') stopped();
      else options.onReport(report);
    });
    worker.on('error', (err) => {
      reject(err);
      crash(err);
    });
    worker.on('exit', (code) => {
      stopped();
      const err = new Error(`the lease renewal thread exited (code ${code})`);
      reject(err);
      crash(err);
    });
  });
  worker.unref();
  return {
    async stop() {
      if (!stopping) {
        stopping = true;
        worker.postMessage({ t: 'stop' });
      }
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([gone, new Promise((resolve) => (timer = setTimeout(resolve, stopWaitMs(options.leaseMs))))]);
      clearTimeout(timer);
      await worker.terminate();
    },
  };
}
