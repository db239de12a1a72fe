import type { PGlite } from '@electric-sql/pglite';
import {
  CompiledQuery,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  type DatabaseConnection,
  type Dialect,
  type Driver,
  type Kysely,
  type QueryResult,
  type TransactionSettings,
} from 'kysely';
import type { Mutex } from './mutex.ts';

/**
 * A Kysely dialect over embedded PGlite. Written here because the published
 * `kysely-pglite-dialect` does not support PGlite 0.5 and `kysely-pglite` pulls in a CLI
 * toolchain; the driver is small: PGlite is a single connection, so a connection is lent
 * to one caller at a time under `mutex` (shared with the migrator's sessions).
 */
export function createPGliteDialect(pglite: PGlite, mutex: Mutex): Dialect {
  return {
    createAdapter: () => new PostgresAdapter(),
    createDriver: () => createPGliteDriver(pglite, mutex),
    createIntrospector: (db: Kysely<unknown>) => new PostgresIntrospector(db),
    createQueryCompiler: () => new PostgresQueryCompiler(),
  };
}

function createPGliteDriver(pglite: PGlite, mutex: Mutex): Driver {
  const releases = new WeakMap<DatabaseConnection, () => void>();
  const connection: DatabaseConnection = {
    async executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
      const result = await pglite.query<R>(query.sql, query.parameters as unknown[]);
      return {
        rows: result.rows,
        ...(result.affectedRows !== undefined ? { numAffectedRows: BigInt(result.affectedRows) } : {}),
      };
    },
    async *streamQuery<R>(query: CompiledQuery): AsyncIterableIterator<QueryResult<R>> {
      const result = await pglite.query<R>(query.sql, query.parameters as unknown[]);
      yield { rows: result.rows };
    },
  };
  const run = (sql: string) => pglite.query(sql).then(() => undefined);
  return {
    async init() {},
    async acquireConnection() {
      const release = await mutex.acquire();
      // One object stands for the single connection; the mutex makes lending it exclusive.
      releases.set(connection, release);
      return connection;
    },
    async beginTransaction(_conn: DatabaseConnection, settings: TransactionSettings) {
      const level = settings.isolationLevel ? ` isolation level ${settings.isolationLevel}` : '';
      await run(`begin${level}`);
    },
    commitTransaction: () => run('commit'),
    rollbackTransaction: () => run('rollback'),
    async releaseConnection(conn: DatabaseConnection) {
      const release = releases.get(conn);
      releases.delete(conn);
      release?.();
    },
    async destroy() {},
  };
}
