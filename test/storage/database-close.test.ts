import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { openDatabase } from '../../src/storage/database.ts';
import { createTestDatabase, silentLog, type TestDatabase } from '../support/databases.ts';
import { waitFor } from '../support/wait.ts';

describe('closing a PostgreSQL database', () => {
  let testDatabase: TestDatabase;
  beforeAll(async () => {
    testDatabase = await createTestDatabase('postgres');
  });
  afterAll(() => testDatabase?.drop());

  /** Connections to the test database, seen from the administrator's connection. */
  async function connections(admin: pg.Client, name: string): Promise<number> {
    const { rows } = await admin.query<{ n: number }>(
      'select count(*)::int as n from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()',
      [name],
    );
    return rows[0]!.n;
  }

  it('ends the connections of one used only through sessions (as powerplane migrate uses it), not after their idle timeout', async () => {
    if (testDatabase.config.kind !== 'postgres') throw new Error('a PostgreSQL database was expected');
    const name = new URL(testDatabase.config.url).pathname.slice(1);
    const database = await openDatabase(testDatabase.config, { log: silentLog, poolSize: 1 });
    const admin = new pg.Client({ connectionString: inject('postgresAdminUrl') });
    await admin.connect();
    try {
      expect(await database.withSession((s) => s.query<{ one: number }>('select 1 as one'))).toEqual([{ one: 1 }]);
      expect(await connections(admin, name)).toBe(1);
      await database.close();
      // The pool's idle timeout is 30 s; a closed database must not wait for it.
      await waitFor('the session connection to end', async () => (await connections(admin, name)) === 0, 10_000);
    } finally {
      await database.close();
      await admin.end();
    }
  });
});
