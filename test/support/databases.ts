import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import pg from 'pg';
import { inject } from 'vitest';
import type { DatabaseConfig } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';
import { openDatabase, type Database } from '../../src/storage/database.ts';
import { migrate } from '../../src/storage/migrator.ts';

/** The engines every storage test runs on. */
export const ENGINES = ['pglite', 'postgres'] as const;
export type Engine = (typeof ENGINES)[number];

/** The run's fresh PGlite data directory (see `global-setup.ts`), read at most once per test file. */
let pgliteImage: Promise<Blob> | undefined;
const readPGliteImage = () => (pgliteImage ??= fs.readFile(inject('pgliteImageFile')).then((bytes) => new Blob([bytes])));

/** A logger that prints nothing, for tests. */
export const silentLog = createLogger('silent');

/** A database for one test file: its own PostgreSQL database, or in-memory PGlite. */
export interface TestDatabase {
  readonly config: DatabaseConfig;
  /** Opens a connection to it, migrated unless `migrated` is false. Closed by `drop`. */
  open(options?: { migrated?: boolean }): Promise<Database>;
  /** Closes what `open` opened and drops the PostgreSQL database. */
  drop(): Promise<void>;
}

/** Creates an empty database on `engine`. */
export async function createTestDatabase(engine: Engine): Promise<TestDatabase> {
  const opened: Database[] = [];
  if (engine === 'pglite') {
    const config: DatabaseConfig = { kind: 'pglite', dataDir: 'memory://' };
    let shared: Database | undefined;
    return {
      config,
      // In-memory PGlite is one database per instance, so every open shares the first.
      async open({ migrated = true } = {}) {
        shared ??= await openDatabase(config, { log: silentLog, pgliteImage: await readPGliteImage() });
        if (migrated) await migrate(shared, silentLog);
        return shared;
      },
      async drop() {
        await shared?.close();
      },
    };
  }
  const adminUrl = inject('postgresAdminUrl');
  const name = `powerplane_test_${randomBytes(6).toString('hex')}`;
  await withAdmin(adminUrl, (client) => client.query(`create database ${name}`));
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const config: DatabaseConfig = { kind: 'postgres', url: url.toString() };
  return {
    config,
    async open({ migrated = true } = {}) {
      const database = await openDatabase(config, { log: silentLog, poolSize: 5 });
      opened.push(database);
      if (migrated) await migrate(database, silentLog);
      return database;
    },
    async drop() {
      await Promise.all(opened.map((d) => d.close()));
      await withAdmin(adminUrl, (client) => client.query(`drop database if exists ${name} with (force)`));
    },
  };
}

async function withAdmin<T>(adminUrl: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}
