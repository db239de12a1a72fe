import type { Registry } from 'prom-client';
import type { Clock } from '../clock.ts';
import { watchLoopDelay } from './loop-delay.ts';

/** Where the time of a late or failed lease renewal went, for its log line. */
export interface RenewalTiming {
  /** From sending the renewal to seeing its answer, ms. */
  readonly statementMs: number;
  /** Of that, the time the statement ran in the database, ms (when it answered). */
  readonly dbMs?: number;
  /** How late the renewal timer fired, ms. */
  readonly tickLateMs: number;
  /** From the last renewal that succeeded being sent to this one, ms. */
  readonly sinceLastRenewalMs?: number;
  /** The longest event-loop delay of the main thread over the last one to two seconds, ms. */
  readonly loopDelayMaxMs: number;
  /** The main thread's 99th percentile event-loop delay over the last full second, ms. */
  readonly loopDelayP99Ms: number;
}

/** The lease manager's record of its renewals' timing, and the event-loop delay beside it. */
export interface RenewalDiagnostics {
  /** A renewal timer fired: how late, ms, against the renewal interval since the last one. */
  ticked(): number;
  /** A renewal sent at `sentAt` succeeded. */
  renewed(sentAt: number): void;
  /** The figures of a renewal sent at `sentAt`. */
  timing(sentAt: number, tickLateMs: number, dbMs?: number, receivedAt?: number): RenewalTiming;
  /** The figures of shards lost at their deadline now. */
  expiry(): { sinceLastRenewalMs?: number; loopDelayMaxMs: number };
  /** Stops watching the event loop. Idempotent. */
  stop(): void;
}

/** Diagnostics on `clock`, the event-loop delay metrics in `registry` (see `loop-delay.ts`). */
export function createRenewalDiagnostics(clock: Clock, registry: Registry | undefined, renewEveryMs: number): RenewalDiagnostics {
  const loopDelay = watchLoopDelay(registry);
  let lastSentAt: number | undefined;
  let dueAt: number | undefined;
  const since = (at: number) => (lastSentAt === undefined ? {} : { sinceLastRenewalMs: Math.round(at - lastSentAt) });
  return {
    ticked() {
      const now = clock.now();
      const late = dueAt === undefined ? 0 : Math.max(0, now - dueAt);
      dueAt = now + renewEveryMs;
      return late;
    },
    renewed(sentAt) {
      lastSentAt = Math.max(lastSentAt ?? sentAt, sentAt);
    },
    timing: (sentAt, tickLateMs, dbMs, receivedAt = clock.now()) => ({
      statementMs: Math.round(receivedAt - sentAt),
      ...(dbMs === undefined ? {} : { dbMs: Math.round(dbMs) }),
      tickLateMs: Math.round(tickLateMs),
      ...since(sentAt),
      loopDelayMaxMs: Math.round(loopDelay.recentMaxMs()),
      loopDelayP99Ms: Math.round(loopDelay.lastP99Ms()),
    }),
    expiry: () => ({ ...since(clock.now()), loopDelayMaxMs: Math.round(loopDelay.recentMaxMs()) }),
    stop: () => loopDelay.stop(),
  };
}
