import { PGlite } from '@electric-sql/pglite';
import { Kysely, PostgresDialect, sql } from 'kysely';
import { redactUrl, type DatabaseConfig } from '../config.ts';
import { UnavailableError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { OwnerOnlyNodeFS, secureDataDir } from './data-dir.ts';
import { createMutex, type Mutex } from './mutex.ts';
import { createPgPool } from './pg-pool.ts';
import { listenPostgres, requireChannelName, type Listening } from './pg-listener.ts';
import { createPGliteDialect } from './pglite-dialect.ts';

/** A raw session on one connection, for work that must stay on it (advisory locks). */
export interface Session {
  /** Runs one parameterised statement and returns its rows. */
  query<R = Record<string, unknown>>(text: string, params?: unknown[]): Promise<R[]>;
  /** Runs a script of several statements without parameters, in one round trip. */
  exec(script: string): Promise<void>;
}

/**
 * The product's database, whichever engine is behind it. Domains query through `db`
 * (typed per domain with `db.withTables<…>()`); the migrator uses `withSession`.
 */
export interface Database {
  readonly kind: DatabaseConfig['kind'];
  /** What it was opened with (a second pool of the same database is opened from it). */
  readonly config: DatabaseConfig;
  readonly db: Kysely<object>;
  /** Lends one connection to `fn` for its whole run, then returns it. */
  withSession<T>(fn: (session: Session) => Promise<T>): Promise<T>;
  /**
   * Listens on a notification channel (a plain lower-case identifier): `onPayload` gets each
   * payload sent to it (`pg_notify`) by any connection, this process's own included, once
   * the sending transaction commits. PostgreSQL: on a connection of its own that reconnects
   * when lost and calls `onReconnect` after each new `LISTEN`, since what was sent in
   * between is lost. PGlite: the one connection, which is never lost. Resolves once
   * listening; close it before {@link close}.
   */
  listen(channel: string, onPayload: (payload: string) => void, onReconnect: () => void): Promise<Listening>;
  /** Resolves when the database answers `select 1` within `timeoutMs`; throws otherwise. */
  ping(timeoutMs: number): Promise<void>;
  /** Closes every connection. Idempotent. */
  close(): Promise<void>;
}

/** Options of {@link openDatabase}. */
export interface OpenDatabaseOptions {
  /** Connections in the PostgreSQL pool. Default 10. */
  readonly poolSize?: number;
  readonly log: Logger;
  /** A second pool to a database already opened (and logged) by this process: no `using PostgreSQL` line. */
  readonly quiet?: boolean;
  /**
   * For an in-memory PGlite (`memory://`) only: a dump of a freshly created data directory
   * (`PGlite.dumpDataDir`) to start from, which skips creating the cluster (about half of
   * PGlite's start). Tests pass one made once per run; a database on disk ignores it.
   */
  readonly pgliteImage?: Blob;
}

/**
 * Opens the configured database: a `pg` pool for PostgreSQL, or PGlite persisted in the
 * data directory, which is created 0700 if missing and made private if not (see
 * `secureDataDir`), with every file PGlite writes there owner-only. It does not migrate;
 * see `migrator.ts`.
 */
export async function openDatabase(config: DatabaseConfig, options: OpenDatabaseOptions): Promise<Database> {
  return config.kind === 'postgres' ? openPostgres(config.url, options) : openPGlite(config.dataDir, options.log, options.pgliteImage);
}

async function openPostgres(url: string, { poolSize = 10, log, quiet = false }: OpenDatabaseOptions): Promise<Database> {
  const pool = createPgPool(url, { max: poolSize, applicationName: 'powerplane', log });
  const db = new Kysely<object>({ dialect: new PostgresDialect({ pool }) });
  let closed = false;
  if (!quiet) log.info({ database: redactUrl(url) }, 'using PostgreSQL');
  return {
    kind: 'postgres',
    config: { kind: 'postgres', url },
    db,
    async withSession(fn) {
      const client = await pool.connect().catch((err: Error) => {
        throw new UnavailableError(`database unreachable (${describeConnectError(err)})`);
      });
      let broken: Error | undefined;
      // While lent out, a client is not watched by the pool: a connection that dies
      // between queries (a long session holding a lock) would otherwise emit an unhandled
      // 'error' and crash the process. The next query on it fails and the session ends.
      const onError = (err: Error) => {
        broken ??= err;
        log.warn({ err: err.message }, 'database session connection failed');
      };
      client.on('error', onError);
      try {
        return await fn({
          query: async (text, params) => (await client.query(text, params)).rows,
          exec: async (script) => void (await client.query(script)),
        });
      } catch (err) {
        broken = err as Error;
        throw err;
      } finally {
        // A session that failed is destroyed, whatever the error: sessions hold session-level
        // state (advisory locks, settings) that a failure may leave behind, and a pooled
        // connection still holding the control or migration lock would block every replica.
        client.off('error', onError);
        client.release(broken);
      }
    },
    listen: (channel, onPayload, onReconnect) =>
      listenPostgres({ url, channel, onPayload, onReconnect, log: log.child({ module: 'listen' }) }),
    ping: (timeoutMs) => withTimeout(sql`select 1`.execute(db), timeoutMs),
    async close() {
      if (closed) return;
      closed = true;
      await db.destroy();
      // Kysely ends the pool only if it ran a query itself; one used only through
      // withSession (`powerplane migrate`) would otherwise keep the process alive until its
      // idle connections time out.
      if (!pool.ending) await pool.end();
    },
  };
}

async function openPGlite(dataDir: string, log: Logger, image: Blob | undefined): Promise<Database> {
  // `memory://` keeps everything in memory (tests); anything else is a directory on disk.
  const inMemory = dataDir.startsWith('memory://');
  if (!inMemory) await secureDataDir(dataDir, log);
  const pglite = await PGlite.create(
    inMemory ? { dataDir, ...(image ? { loadDataDir: image } : {}) } : { fs: new OwnerOnlyNodeFS(dataDir) },
  );
  const mutex = createMutex();
  const db = new Kysely<object>({ dialect: createPGliteDialect(pglite, mutex) });
  let closed = false;
  log.info({ dataDir }, 'using embedded PGlite');
  return {
    kind: 'pglite',
    config: { kind: 'pglite', dataDir },
    db,
    async withSession(fn) {
      const release = await mutex.acquire();
      try {
        return await fn({
          query: async (text, params) => (await pglite.query(text, params)).rows as never[],
          exec: async (script) => void (await pglite.exec(script)),
        });
      } finally {
        release();
      }
    },
    async listen(channel, onPayload) {
      requireChannelName(channel);
      // Under the mutex: a LISTEN run inside another caller's open transaction would be
      // undone by its rollback.
      const unlisten = await exclusive(mutex, () => pglite.listen(channel, onPayload));
      let stopped = false;
      return {
        async close() {
          if (stopped || closed) return;
          stopped = true;
          await exclusive(mutex, () => unlisten());
        },
      };
    },
    ping: (timeoutMs) => withTimeout(pglite.query('select 1'), timeoutMs),
    async close() {
      if (closed) return;
      closed = true;
      await db.destroy();
      await pglite.close();
    },
  };
}

async function exclusive<T>(mutex: Mutex, fn: () => Promise<T>): Promise<T> {
  const release = await mutex.acquire();
  try {
    return await fn();
  } finally {
    release();
  }
}

async function withTimeout(work: Promise<unknown>, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new UnavailableError(`database did not answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function describeConnectError(err: Error & { code?: string }): string {
  return err.code ?? err.message;
}
