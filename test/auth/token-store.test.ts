import type { KyselyPlugin } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTokenStore, type TokenStore } from '../../src/auth/tokens.ts';
import type { Database } from '../../src/storage/database.ts';
import { createTestDatabase, ENGINES, type TestDatabase } from '../support/databases.ts';

/** Counts the queries a store runs, on the real database. */
function queryCounter(): KyselyPlugin & { count: number } {
  return {
    count: 0,
    transformQuery(args) {
      this.count++;
      return args.node;
    },
    transformResult(args) {
      return Promise.resolve(args.result);
    },
  };
}

describe.each(ENGINES)('the token store on %s', (engine) => {
  let testDatabase: TestDatabase;
  let database: Database;
  let t = Date.UTC(2026, 11, 1);
  const now = () => t;

  beforeAll(async () => {
    testDatabase = await createTestDatabase(engine);
    database = await testDatabase.open();
  });
  afterAll(async () => {
    await testDatabase?.drop();
  });

  const store = (cacheMs: number): { tokens: TokenStore; queries: ReturnType<typeof queryCounter> } => {
    const queries = queryCounter();
    return { tokens: createTokenStore({ db: database.db.withPlugin(queries), cacheMs, now }), queries };
  };

  it('stops accepting a remembered token at its expire_time, however long the cache would keep it', async () => {
    const { tokens, queries } = store(60_000);
    const { secret } = await tokens.create({ name: 'short-lived', scopes: ['readings:read'], expireTime: new Date(t + 1_000) }, 'test');
    expect((await tokens.verify(secret))?.kind).toBe('token');
    t += 999;
    const before = queries.count;
    expect((await tokens.verify(secret))?.kind).toBe('token');
    expect(queries.count).toBe(before);
    t += 1;
    expect(await tokens.verify(secret)).toBeUndefined();
    expect(await tokens.verify(secret)).toBeUndefined();
  });

  it('looks up an unknown secret once, however often or concurrently it is presented', async () => {
    const { tokens, queries } = store(0);
    const unknown = `pp_${'A'.repeat(43)}`;
    expect(await Promise.all([tokens.verify(unknown), tokens.verify(unknown), tokens.verify(unknown)])).toEqual([
      undefined,
      undefined,
      undefined,
    ]);
    expect(queries.count).toBe(1);
    for (let i = 0; i < 5; i++) expect(await tokens.verify(unknown)).toBeUndefined();
    expect(queries.count).toBe(1);
    // Anything not shaped like a token costs nothing at all.
    expect(await tokens.verify('pp_short')).toBeUndefined();
    expect(queries.count).toBe(1);
  });

  it('remembers a revoked token as refused, and a valid one only for the cache time', async () => {
    const { tokens, queries } = store(0);
    const { secret, info } = await tokens.create({ name: 'to revoke', scopes: ['readings:read'] }, 'test');
    const created = queries.count;
    expect((await tokens.verify(secret))?.id).toBe(`token:${info.id}`);
    expect((await tokens.verify(secret))?.id).toBe(`token:${info.id}`);
    // A cache time of 0 means every use of a valid token is looked up again.
    expect(queries.count).toBe(created + 2);
    await tokens.revoke(info.id, 'test');
    const revoked = queries.count;
    expect(await tokens.verify(secret)).toBeUndefined();
    expect(await tokens.verify(secret)).toBeUndefined();
    expect(queries.count).toBe(revoked + 1);
  });

  it('refuses a token that expires while it is being looked up', async () => {
    const { tokens } = store(60_000);
    const { secret } = await tokens.create({ name: 'expiring', scopes: ['readings:read'], expireTime: new Date(t + 1) }, 'test');
    const verifying = tokens.verify(secret);
    t += 1;
    expect(await verifying).toBeUndefined();
  });
});
