import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { InvalidArgumentError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Database, Session } from './database.ts';
import { checkRetentionDays, type RetentionDays } from './retention.types.ts';
import { setupTimescale, type TimescaleSetup } from './timescale-setup.ts';

/** The folder of ordered `NNNN_name.sql` migrations shipped with the product. */
export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url));

/** Any 64-bit number unique to Powerplane; two replicas migrating wait on it in turn. */
const MIGRATION_LOCK_KEY = 7_026_110_523;

/** A migration edited in place: the checksum of its file now, and those it had before. */
export interface EditedMigration {
  readonly current: string;
  readonly former: readonly string[];
}

/**
 * Migrations edited in place, by `version_name`. Migrations are append-only; an entry
 * belongs here only when the edit makes no difference to a database already past it. A
 * database that applied a former text passes when the file is exactly the current text
 * (its checksum is `current`); any other edit is refused as for any migration.
 * - `1_flux_schema` and `4_meter_readings_30m` lost their TimescaleDB blocks: the first ran
 *   `create extension timescaledb` whenever the extension was installed, which ends the
 *   connection with a FATAL error where it is not preloaded. Their work (hypertables, the
 *   continuous aggregate, compression) is now the TimescaleDB setup that {@link migrate} runs
 *   after the migrations, which finds it already done on databases that ran the old blocks.
 *
 * The stored checksum is left as it was, so a replica still running the previous version
 * keeps accepting the database during a rolling upgrade.
 */
export const EDITED_MIGRATIONS: Readonly<Record<string, EditedMigration>> = {
  '1_flux_schema': {
    current: '33542952d0d2c73f69ba8db48c0f4019b73ea2a7979b72bfa87ba4547607a18d',
    former: ['88c26fc45294de20a754886dcf6e5924293d7cd5bfb8d09973ec89b0ef888da8'],
  },
  '4_meter_readings_30m': {
    current: '1cc0f2596a3070fe31e1f1e6f98df9b8796497759846d0259ef4860eb1641765',
    former: ['fedcd631390dcc84226ac8734e86a1ba24e93b3cbae38ea72031381267c93da3'],
  },
};

/** Whether a migration applied with checksum `stored` may be run as `migration` now. */
function sameMigration(migration: Migration, stored: string): boolean {
  if (stored === migration.checksum) return true;
  const edited = EDITED_MIGRATIONS[`${migration.version}_${migration.name}`];
  return edited !== undefined && edited.current === migration.checksum && edited.former.includes(stored);
}

/** One migration file. */
export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
  readonly checksum: string;
}

/** Settings the first migrations read; later runs ignore them. */
export interface MigrateOptions {
  /**
   * The number of control shards (1–4096), set for each migration's transaction as
   * `powerplane.shard_count`. Only the migration that creates the lease table reads it: the
   * count is fixed once that table is filled, and a later run with another value changes
   * nothing. Unset: the migration's default, 256.
   */
  readonly shardCount?: number;
  /**
   * Days of readings kept per kind, for the TimescaleDB retention policies; a kind left out
   * is kept forever (a policy there is removed). Read on every run, unlike `shardCount`.
   * Without TimescaleDB it changes nothing here.
   */
  readonly retention?: RetentionDays;
}

/** What {@link migrate} did. */
export interface MigrateResult {
  /** The migrations applied by this run, as `version_name`. */
  readonly applied: readonly string[];
  /** The version of the newest migration. */
  readonly current: number;
  /** Whether TimescaleDB is used and what its setup found and did. */
  readonly timescale: TimescaleSetup;
}

/**
 * Applies the pending migrations in order, each in its own transaction, under a
 * PostgreSQL advisory lock held for the whole run, so replicas starting together apply
 * each migration once. A migration already applied whose file has changed is an error:
 * migrations are append-only (but see {@link EDITED_MIGRATIONS}). Then, still under the
 * lock, the TimescaleDB setup runs (`setupTimescale`): it does nothing unless TimescaleDB
 * is usable, and otherwise converts the tables and sets the policies, so a database
 * migrated before TimescaleDB was preloaded is converted by the next run.
 *
 * Kysely's own Migrator is not used because it runs migrations through the extended
 * query protocol, which refuses the multi-statement SQL files the Flux schema is kept in.
 */
export async function migrate(database: Database, log: Logger, dir = MIGRATIONS_DIR, options: MigrateOptions = {}): Promise<MigrateResult> {
  const { shardCount, retention = {} } = options;
  if (shardCount !== undefined && (!Number.isInteger(shardCount) || shardCount < 1 || shardCount > 4_096)) {
    throw new InvalidArgumentError('shardCount', shardCount, 'must be a whole number from 1 to 4096');
  }
  checkRetentionDays(retention);
  const migrations = await loadMigrations(dir);
  return database.withSession(async (session) => {
    await session.query('select pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    try {
      const result = await applyPending(session, migrations, log, shardCount);
      const timescale = await setupTimescale(session, log, { retention });
      return { ...result, timescale };
    } finally {
      await session.query('select pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]);
    }
  });
}

async function applyPending(
  session: Session,
  migrations: readonly Migration[],
  log: Logger,
  shardCount: number | undefined,
): Promise<Omit<MigrateResult, 'timescale'>> {
  // Only when missing: `create ... if not exists` still needs CREATE on the database and
  // the schema, which an application role that merely reads the table has not.
  const [{ present }] = (await session.query<{ present: boolean }>(
    `select to_regclass('powerplane.schema_migrations') is not null as present`,
  )) as [{ present: boolean }];
  if (!present) {
    await session.exec(`
      create schema if not exists powerplane;
      create table if not exists powerplane.schema_migrations (
        version integer primary key,
        name text not null,
        checksum text not null,
        applied_at timestamptz not null default now()
      );`);
  }
  const rows = await session.query<{ version: number; name: string; checksum: string }>(
    'select version, name, checksum from powerplane.schema_migrations order by version',
  );
  const done = new Map(rows.map((row) => [row.version, row]));
  const applied: string[] = [];
  for (const migration of migrations) {
    const previous = done.get(migration.version);
    if (previous) {
      if (!sameMigration(migration, previous.checksum)) {
        throw new Error(`migration ${migration.version}_${migration.name} changed after it was applied; add a new migration instead`);
      }
      continue;
    }
    const started = Date.now();
    await session.exec('begin');
    try {
      // Local to the transaction: the pooled connection keeps no setting afterwards.
      if (shardCount !== undefined) await session.query(`select set_config('powerplane.shard_count', $1, true)`, [String(shardCount)]);
      await session.exec(migration.sql);
      await session.query('insert into powerplane.schema_migrations (version, name, checksum) values ($1, $2, $3)', [
        migration.version,
        migration.name,
        migration.checksum,
      ]);
      await session.exec('commit');
    } catch (err) {
      await session.exec('rollback');
      // 42501: the role may not create or change the schema (an application role).
      const hint = (err as { code?: unknown }).code === '42501' ? ' (run powerplane migrate as the schema owner or a superuser)' : '';
      throw new Error(`migration ${migration.version}_${migration.name} failed: ${(err as Error).message}${hint}`, { cause: err });
    }
    applied.push(`${migration.version}_${migration.name}`);
    log.info({ version: migration.version, name: migration.name, durationMs: Date.now() - started }, 'migration applied');
  }
  const current = migrations.at(-1)?.version ?? 0;
  return { applied, current };
}

/** Reads and orders the migration files of `dir`; names must be `NNNN_name.sql`. */
export async function loadMigrations(dir: string): Promise<Migration[]> {
  const files = (await fs.readdir(dir)).filter((file) => file.endsWith('.sql')).sort();
  const migrations: Migration[] = [];
  for (const file of files) {
    const match = /^(\d{4})_([a-z0-9_]+)\.sql$/.exec(file);
    if (!match) throw new Error(`migration file ${JSON.stringify(file)} is not named NNNN_name.sql`);
    const sql = await fs.readFile(path.join(dir, file), 'utf8');
    const version = Number(match[1]);
    if (migrations.some((m) => m.version === version)) throw new Error(`two migrations have version ${version}`);
    migrations.push({ version, name: match[2]!, sql, checksum: createHash('sha256').update(sql).digest('hex') });
  }
  return migrations;
}
