import pg from 'pg';
import type { Logger } from '../logger.ts';

/** Options of {@link createPgPool}. */
export interface PgPoolOptions {
  readonly max: number;
  /** Shown in `pg_stat_activity`, so an operator can tell the pools apart. */
  readonly applicationName: string;
  readonly log: Logger;
  /**
   * Set on each connection as PostgreSQL's `statement_timeout`: the server cancels a
   * statement that runs longer (its locks freed, its changes undone) even when the client
   * has given up on it or gone. None by default.
   */
  readonly statementTimeoutMs?: number;
}

/**
 * Idle time before TCP keepalive probes a connection, ms. Node leaves the system's default
 * (usually 2 hours) unless given one; with this, a server that vanished without a reset
 * (a host power cut, a NAT or firewall dropping the flow) is noticed about 10 s plus the
 * system's probes (on Linux by default 9 × 75 s) after the connection went quiet.
 */
export const TCP_KEEPALIVE_IDLE_MS = 10_000;

/**
 * A `pg` pool as every part of Powerplane needs it: bounded connect and idle times, TCP
 * keepalive after {@link TCP_KEEPALIVE_IDLE_MS} (a server that vanished without a reset is
 * noticed in minutes, not hours), and a listener for connection errors. An idle client losing its server emits on the pool; a
 * checked-out one emits on itself (pg-pool removes its idle listener on checkout, Kysely
 * adds none). Either, unheard, would crash the process when PostgreSQL goes away; the
 * query in flight fails anyway.
 */
export function createPgPool(url: string, { max, applicationName, log, statementTimeoutMs }: PgPoolOptions): pg.Pool {
  const pool = new pg.Pool({
    connectionString: url,
    max,
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
    keepAlive: true,
    keepAliveInitialDelayMillis: TCP_KEEPALIVE_IDLE_MS,
    application_name: applicationName,
    ...(statementTimeoutMs !== undefined ? { statement_timeout: statementTimeoutMs } : {}),
  });
  pool.on('error', (err) => log.warn({ err: err.message, pool: applicationName }, 'idle database connection failed'));
  pool.on('connect', (client) =>
    client.on('error', (err) => log.warn({ err: err.message, pool: applicationName }, 'database connection failed')),
  );
  return pool;
}

/**
 * True when `err` says the connection itself is unusable (connection exceptions 08,
 * operator intervention 57, a socket error, or no SQLSTATE at all), so the client must be
 * destroyed rather than pooled. A constraint violation or a bad value leaves it healthy.
 */
export function isConnectionError(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code;
  return typeof code !== 'string' || code.startsWith('08') || code.startsWith('57') || code.startsWith('E');
}
