import pg from 'pg';
import { UnavailableError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { TCP_KEEPALIVE_IDLE_MS } from './pg-pool.ts';

/** A running `LISTEN`; {@link close} stops it. */
export interface Listening {
  /** Stops listening and ends its connection. Idempotent. */
  close(): Promise<void>;
}

/** Options of {@link listenPostgres}. */
export interface PgListenOptions {
  readonly url: string;
  /** The channel: a plain lower-case identifier (see {@link requireChannelName}). */
  readonly channel: string;
  /** Called with each notification's payload on `channel`. */
  readonly onPayload: (payload: string) => void;
  /** Called after each re-established `LISTEN` (not the first): notifications sent while it was down were missed. */
  readonly onReconnect: () => void;
  readonly log: Logger;
  /** First wait before reconnecting, ms; doubled after each failed attempt. Default 100. */
  readonly minBackoffMs?: number;
  /** Longest wait between attempts, ms. Default 2000. */
  readonly maxBackoffMs?: number;
  /**
   * How often the connection is asked a trivial query while it listens, ms; default 10 000.
   * A connection that stopped carrying bytes without closing (a NAT or firewall that dropped
   * it) delivers no notification and reports no error: only a query that gets no answer
   * tells, and then it is replaced.
   */
  readonly pingEveryMs?: number;
  /** How long the LISTEN, and each ping, may wait for its answer, ms; default 5000. */
  readonly queryTimeoutMs?: number;
}

/** Shown in `pg_stat_activity`, so an operator can tell the listening connection from the pools. */
export const LISTEN_APPLICATION_NAME = 'powerplane-listen';

/**
 * Listens on `channel` on a connection of its own (a pooled connection is shared and may be
 * closed when idle, which would end the `LISTEN`), with the pool's connection settings: the
 * same bounded connect time and TCP keepalive, and a trivial query every `pingEveryMs` that
 * must be answered within `queryTimeoutMs`. When the connection fails, ends or leaves a
 * ping unanswered, it reconnects with a backoff that starts at `minBackoffMs` and doubles
 * up to `maxBackoffMs`, for as long as it is not closed, and calls `onReconnect` after each
 * new `LISTEN`. Resolves once the first `LISTEN` is in place; throws
 * {@link UnavailableError} if that fails.
 */
export async function listenPostgres(options: PgListenOptions): Promise<Listening> {
  const { url, channel, onPayload, onReconnect, log } = options;
  requireChannelName(channel);
  const minBackoffMs = options.minBackoffMs ?? 100;
  const maxBackoffMs = options.maxBackoffMs ?? 2_000;
  const pingEveryMs = options.pingEveryMs ?? 10_000;
  const queryTimeoutMs = options.queryTimeoutMs ?? 5_000;
  let current: pg.Client | undefined;
  let timer: NodeJS.Timeout | undefined;
  let backoffMs = minBackoffMs;
  let closed = false;
  // Clients whose connection failed or ended, possibly before they became `current`.
  const dead = new WeakSet<pg.Client>();

  /** Connects and listens; the client becomes `current` only once its `LISTEN` succeeded. */
  async function connect(): Promise<pg.Client> {
    const client = new pg.Client({
      connectionString: url,
      connectionTimeoutMillis: 5_000,
      // A stalled server must not hold the LISTEN (and so every reconnect) or a ping forever.
      query_timeout: queryTimeoutMs,
      keepAlive: true,
      keepAliveInitialDelayMillis: TCP_KEEPALIVE_IDLE_MS,
      application_name: LISTEN_APPLICATION_NAME,
    });
    // Registered before connecting: an 'error' unheard would crash the process.
    client.on('error', (err) => lost(client, err));
    client.on('end', () => lost(client));
    client.on('notification', (message) => {
      if (!closed && !dead.has(client) && message.channel === channel && message.payload !== undefined) onPayload(message.payload);
    });
    try {
      await client.connect();
      await client.query(`listen ${client.escapeIdentifier(channel)}`);
      if (dead.has(client)) throw new Error('connection ended right after LISTEN');
    } catch (err) {
      void endQuietly(client);
      throw err;
    }
    return client;
  }

  function lost(client: pg.Client, err?: Error): void {
    dead.add(client);
    if (client !== current) return;
    current = undefined;
    void endQuietly(client);
    if (closed) return;
    log.warn({ err: err?.message, channel }, 'listening connection lost: reconnecting');
    schedule();
  }

  function schedule(): void {
    timer = setTimeout(() => {
      timer = undefined;
      void attempt();
    }, backoffMs);
  }

  async function attempt(): Promise<void> {
    let client: pg.Client;
    try {
      client = await connect();
    } catch (err) {
      if (closed) return;
      backoffMs = Math.min(backoffMs * 2, maxBackoffMs);
      log.warn({ err: (err as Error).message, channel, retryInMs: backoffMs }, 'listening connection failed');
      return schedule();
    }
    if (closed) return void endQuietly(client);
    current = client;
    backoffMs = minBackoffMs;
    log.info({ channel }, 'listening again');
    onReconnect();
  }

  /** Asks the listening connection a trivial query; one that fails or gets no answer in time is lost. */
  let pinging = false;
  async function ping(): Promise<void> {
    const client = current;
    if (!client || pinging) return;
    pinging = true;
    try {
      await client.query('select 1');
    } catch (err) {
      lost(client, err as Error);
    } finally {
      pinging = false;
    }
  }

  try {
    current = await connect();
  } catch (err) {
    throw new UnavailableError(`database unreachable for LISTEN (${(err as { code?: string }).code ?? (err as Error).message})`);
  }
  const pinger = setInterval(() => void ping(), pingEveryMs).unref();
  return {
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(pinger);
      clearTimeout(timer);
      const client = current;
      current = undefined;
      // An attempt under way ends its own client when it sees `closed`.
      if (client) await endQuietly(client);
    },
  };
}

/**
 * Ends `client`'s connection, waiting at most 2 s: a connection whose peer vanished may
 * never confirm the end, and closing must not hang on it.
 */
async function endQuietly(client: pg.Client): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, 2_000).unref()));
  await Promise.race([client.end().catch(() => undefined), timeout]);
  clearTimeout(timer);
}

/**
 * Throws unless `channel` is a plain lower-case identifier (letters, digits, `_`, at most 63
 * bytes): such a name means the same channel quoted or not, on either engine.
 */
export function requireChannelName(channel: string): void {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(channel)) throw new Error(`channel ${JSON.stringify(channel)} is not a plain lower-case identifier`);
}
