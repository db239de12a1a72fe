import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/errors.ts';
import type { Database } from '../../src/storage/database.ts';
import { migrate, MIGRATIONS_DIR } from '../../src/storage/migrator.ts';
import { createTestDatabase, ENGINES, silentLog, type TestDatabase } from '../support/databases.ts';

describe.each(ENGINES)('the shard count chosen at the first migration on %s', (engine) => {
  let testDb: TestDatabase;
  let database: Database;
  beforeAll(async () => {
    testDb = await createTestDatabase(engine);
    database = await testDb.open({ migrated: false });
  });
  afterAll(() => testDb.drop());

  const shardsStored = async () => {
    const { rows } = await sql<{ rows: number; settings: number; highest: number }>`
      select count(*)::int as rows, max(shard) as highest, (select shard_count from powerplane.cluster_settings) as settings
      from powerplane.shard_leases`.execute(database.db);
    return rows[0];
  };

  it('refuses a shard count outside 1–4096 before touching the database, naming the option', async () => {
    for (const shardCount of [0, 4_097, 2.5]) {
      const refused = migrate(database, silentLog, MIGRATIONS_DIR, { shardCount });
      await expect(refused).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(refused).rejects.toThrow(/shardCount/);
    }
    const { rows } = await sql<{ present: boolean }>`select to_regclass('powerplane.schema_migrations') is not null as present`.execute(
      database.db,
    );
    expect(rows[0]!.present).toBe(false);
  });

  it('fills one lease row per shard of the count a fresh database is migrated with', async () => {
    await migrate(database, silentLog, MIGRATIONS_DIR, { shardCount: 16 });
    expect(await shardsStored()).toEqual({ rows: 16, highest: 15, settings: 16 });
  });

  it('keeps the count of the first migration when a later one is given another', async () => {
    const later = await migrate(database, silentLog, MIGRATIONS_DIR, { shardCount: 64 });
    expect(later.applied).toEqual([]);
    expect(await shardsStored()).toEqual({ rows: 16, highest: 15, settings: 16 });
  });
});
