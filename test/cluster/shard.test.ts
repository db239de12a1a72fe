import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { siteShard } from '../../src/cluster/shard.ts';
import type { Database } from '../../src/storage/database.ts';
import { createTestDatabase, ENGINES, type TestDatabase } from '../support/databases.ts';

// Names with multi-byte UTF-8, the empty name, and enough ordinary ones to cover many shards.
const SITES = ['', 'site-a', 'site-b', 'é', 'Ω-north', '北京-1', 'a'.repeat(200), ...Array.from({ length: 300 }, (_, i) => `site-${i}`)];

describe('siteShard', () => {
  it('is stable: known values of FNV-1a', () => {
    // FNV-1a 32-bit of "" is the offset basis; of "a" is 0xe40c292c.
    expect(siteShard('', 2 ** 31)).toBe(2_166_136_261 % 2 ** 31);
    expect(siteShard('a', 2 ** 31)).toBe(0xe40c292c % 2 ** 31);
  });

  it('spreads sites over every shard and stays within range', () => {
    const shards = SITES.map((s) => siteShard(s, 16));
    expect(shards.every((s) => s >= 0 && s < 16)).toBe(true);
    expect(new Set(shards).size).toBe(16);
  });

  it('refuses a shard count that is not a positive integer', () => {
    expect(() => siteShard('a', 0)).toThrow(/shardCount/);
    expect(() => siteShard('a', 1.5)).toThrow(/shardCount/);
  });
});

describe.each(ENGINES)('powerplane.site_shard on %s', (engine) => {
  let testDb: TestDatabase;
  let database: Database;
  beforeAll(async () => {
    testDb = await createTestDatabase(engine);
    database = await testDb.open();
  });
  afterAll(() => testDb.drop());

  it('computes the same shard as siteShard for every name', async () => {
    const { rows } = await sql<{ site: string; shard: number }>`
      select s as site, powerplane.site_shard(s, 256) as shard from unnest(${SITES}::text[]) s`.execute(database.db);
    expect(rows.map((r) => r.shard)).toEqual(SITES.map((s) => siteShard(s, 256)));
  });

  it('fills one lease row per shard of the default count', async () => {
    const { rows } = await sql<{ n: number; settings: number }>`
      select count(*)::int as n, (select shard_count from powerplane.cluster_settings) as settings
      from powerplane.shard_leases`.execute(database.db);
    expect(rows[0]).toEqual({ n: 256, settings: 256 });
  });
});
