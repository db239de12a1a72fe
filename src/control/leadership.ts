import type { Logger } from '../logger.ts';
import type { Database } from '../storage/database.ts';

/** A PostgreSQL advisory-lock key only the control loop uses. */
const CONTROL_LOCK_KEY = 7_026_110_524;

/** The loop this module starts and stops. */
export interface Leader {
  stop(): Promise<void>;
}

/** Options of {@link runWhileLeader}. */
export interface LeadershipOptions {
  readonly database: Database;
  readonly log: Logger;
  /** Starts the control loop once this replica holds the lock. */
  readonly start: () => Leader;
  /** How often the lock's connection is checked, and a follower retries. Default 2000 ms. */
  readonly checkIntervalMs?: number;
}

/**
 * Runs the control loop in at most one replica at a time. Several `serve` processes can
 * share one PostgreSQL for ingest and queries, but two control loops would drive the same
 * batteries from two places. The replica holding a session advisory lock runs the loop;
 * the others retry every interval. When the lock's connection breaks (database or
 * network gone, process killed) the lock is released by PostgreSQL and another replica
 * takes over; the old leader stops its loop as soon as its check fails, so its writers
 * stop heartbeating and the batteries fall back until the new leader plans them.
 *
 * A holder cut off by the network (not dead, so no FIN or RST reaches the database) would
 * keep the lock for as long as the server's TCP keepalive takes to notice, hours by
 * default. The lock's session therefore sets `idle_session_timeout` to three intervals:
 * the holder checks every interval, so only a silent holder idles that long, and the
 * server then ends its session and frees the lock.
 *
 * Embedded PGlite is one process's database, so there the loop simply runs.
 */
export function runWhileLeader(options: LeadershipOptions): { isLeader(): boolean; stop(): Promise<void> } {
  const { database, log } = options;
  const interval = options.checkIntervalMs ?? 2_000;
  if (database.kind === 'pglite') {
    const leader = options.start();
    return { isLeader: () => true, stop: () => leader.stop() };
  }
  let stopped = false;
  let leading = false;
  let wake: (() => void) | undefined;
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });

  const loop = (async () => {
    while (!stopped) {
      try {
        await database.withSession(async (session) => {
          // Bounded: a pooled connection to a server that vanished (failover without a reset)
          // would hang here until TCP gives up, minutes. A timeout ends the session, and the
          // pool destroys its connection, so a lock granted late is freed with it.
          const [row] = await bounded(
            session.query<{ ok: boolean }>('select pg_try_advisory_lock($1) as ok', [CONTROL_LOCK_KEY]),
            interval,
          );
          if (!row?.ok) return;
          try {
            await session.query(`select set_config('idle_session_timeout', $1, false)`, [String(3 * interval)]).catch((err: Error) => {
              // PostgreSQL before 14 has no such setting; leading still works, only the
              // failover after a partition waits for the server's TCP keepalive.
              log.warn(
                { err: err.message },
                'idle_session_timeout not available: a cut-off holder keeps the control lock until TCP keepalive notices',
              );
            });
            // Fencing by time: a previous holder notices its lost lock within two intervals
            // (a check every interval, each bounded by the interval) and stops its writers;
            // its lock outlives its last check by three intervals at least (the idle
            // timeout) and this holder waits two more before it writes, so two replicas
            // never drive a battery at once. It checks its own session meanwhile, so it
            // never idles near the timeout itself.
            for (let i = 0; i < 2 && !stopped; i++) {
              await pause(interval);
              if (!stopped) await bounded(session.query('select 1'), interval);
            }
            if (stopped) return;
            log.info('this replica holds the control lock: running the control loop');
            const leader = options.start();
            leading = true;
            try {
              while (!stopped) {
                await pause(interval);
                if (stopped) break;
                await bounded(session.query('select 1'), interval).catch((err: Error) => {
                  // Said now, not after the loop has stopped: stopping waits for work in flight.
                  log.warn({ err: err.message }, 'control lock check failed: stopping the control loop');
                  throw err;
                });
              }
            } finally {
              leading = false;
              await leader.stop();
            }
          } finally {
            // Bounded too: on a lost connection these would wait forever, and this loop with them.
            await bounded(session.query('select pg_advisory_unlock($1)', [CONTROL_LOCK_KEY]), interval).catch(() => undefined);
            // The connection goes back to the pool, where an idle timeout would only end it.
            await bounded(session.query(`select set_config('idle_session_timeout', '0', false)`), interval).catch(() => undefined);
          }
        });
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'control lock lost or unreachable; control loop stopped until it is held again');
      }
      if (!stopped) await pause(interval);
    }
  })();

  return {
    isLeader: () => leading,
    async stop() {
      stopped = true;
      wake?.();
      await loop;
    },
  };
}

/** `work`, or a rejection once `ms` pass: a check on a blackholed connection must fail, not hang. */
async function bounded<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      work,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`control lock check took longer than ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
