import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SCOPES } from '../../src/rpc/principal.ts';
import { createTokenStore } from '../../src/auth/tokens.ts';
import type { Database } from '../../src/storage/database.ts';
import { MIGRATIONS_DIR } from '../../src/storage/migrator.ts';
import { createTestDatabase, ENGINES, type TestDatabase } from '../support/databases.ts';

describe('the metrics:read scope', () => {
  it('is among the scopes, which the first-start admin token gets all of', () => {
    expect(SCOPES).toContain('metrics:read');
  });
});

describe.each(ENGINES)('the metrics:read scope on %s', (engine) => {
  let testDatabase: TestDatabase;
  let database: Database;

  beforeAll(async () => {
    testDatabase = await createTestDatabase(engine);
    database = await testDatabase.open();
  });
  afterAll(async () => {
    await testDatabase?.drop();
  });

  it('is given by the migration to unrestricted token administrators only, once', async () => {
    const tokens = createTokenStore({ db: database.db, cacheMs: 0 });
    // Tokens as they were before the scope existed.
    const everyOldScope = SCOPES.filter((s) => s !== 'metrics:read');
    const admin = await tokens.create({ name: 'old admin', scopes: everyOldScope }, 'test');
    const boundAdmin = await tokens.create({ name: 'site admin', scopes: ['tokens:admin', 'readings:read'], sites: ['site-a'] }, 'test');
    const reader = await tokens.create({ name: 'reader', scopes: ['readings:read'] }, 'test');
    const migration = await readFile(path.join(MIGRATIONS_DIR, '0015_metrics_scope.sql'), 'utf8');
    // Twice: a second run changes nothing.
    await sql.raw(migration).execute(database.db);
    await sql.raw(migration).execute(database.db);
    const scopesOf = async (secret: string) => [...((await tokens.verify(secret))?.scopes ?? [])];
    expect(await scopesOf(admin.secret)).toEqual([...everyOldScope, 'metrics:read']);
    expect(await scopesOf(boundAdmin.secret)).toEqual(['tokens:admin', 'readings:read']);
    expect(await scopesOf(reader.secret)).toEqual(['readings:read']);
  });
});
