import { timestampFromMs, timestampMs } from '@bufbuild/protobuf/wkt';
import type { Client } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TokenService } from '../../gen/powerplane/v1/auth_pb.ts';
import { errorOf } from '../../test/support/api.ts';
import { createTestDatabase, ENGINES, type TestDatabase } from '../../test/support/databases.ts';
import { serveInMemory, type InMemoryApi } from '../../test/support/services.ts';
import type { Database } from '../storage/database.ts';
import { SCOPES, UNRESTRICTED, type Principal, type Scope } from '../rpc/principal.ts';
import { createTokenStore, type TokenStore } from './tokens.ts';

/**
 * TokenService through `createRouterTransport`: the real service, request-text, audit and
 * error interceptors over a real database, no HTTP. The caller is injected; how a token
 * authenticates over HTTP is the subject of `test/auth/auth.test.ts`.
 */

type TokenClient = Client<typeof TokenService>;

const DAY_MS = 86_400_000;

/** Fields of a CreateToken request a case changes. */
type TokenFields = { name?: string; scopes?: string[]; sites?: string[]; expireTime?: { seconds: bigint; nanos: number } };

/** A token administrator bound to `sites` with `scopes`. */
const boundAdmin = (id: string, sites: string[], scopes: readonly Scope[] = ['tokens:admin', 'readings:read']): Principal => ({
  id,
  kind: 'token',
  scopes: new Set(scopes),
  sites: new Set(sites),
});

describe.each(ENGINES)('TokenService in memory on %s', (engine) => {
  let testDb: TestDatabase;
  let database: Database;
  let api: InMemoryApi;
  let admin: TokenClient;
  let store: TokenStore;

  beforeAll(async () => {
    testDb = await createTestDatabase(engine);
    database = await testDb.open();
    api = serveInMemory(database, testDb.config);
    admin = api.as(UNRESTRICTED).tokens;
    store = createTokenStore({ db: database.db, cacheMs: 0 });
  });
  afterAll(async () => {
    await api?.close();
    await testDb?.drop();
  });

  it('creates a token that authenticates with exactly the scopes and sites asked for, expiring in 90 days unless asked', async () => {
    const before = Date.now();
    const { token, secret } = await admin.createToken({
      name: 'agent north',
      scopes: ['telemetry:write', 'readings:read'],
      sites: ['north'],
    });
    const after = Date.now();
    expect(secret).toMatch(/^pp_/);
    expect(token).toMatchObject({
      name: 'agent north',
      scopes: ['telemetry:write', 'readings:read'],
      sites: ['north'],
      createdBy: 'unrestricted',
      prefix: secret.slice(0, 9),
    });
    expect(token!.revokeTime).toBeUndefined();
    const expires = timestampMs(token!.expireTime!);
    expect(expires).toBeGreaterThanOrEqual(before + 90 * DAY_MS);
    expect(expires).toBeLessThanOrEqual(after + 90 * DAY_MS);
    expect(await store.verify(secret)).toEqual({
      id: `token:${token!.id}`,
      kind: 'token',
      scopes: new Set(['telemetry:write', 'readings:read']),
      sites: new Set(['north']),
    });

    const yearAhead = timestampFromMs(Date.now() + 365 * DAY_MS);
    expect((await admin.createToken({ name: 'a year', scopes: ['readings:read'], expireTime: yearAhead })).token?.expireTime).toEqual(
      yearAhead,
    );
  });

  it.each<[string, TokenFields, string]>([
    ['an empty name', { name: '' }, 'name is required, at most 200 characters'],
    ['a name over 200 characters', { name: 'n'.repeat(201) }, 'name'],
    ['a name with a NUL', { name: 'agent\u0000' }, 'name must not contain a NUL character'],
    ['no scopes', { scopes: [] }, 'scopes must name at least one of'],
    ['an unknown scope', { scopes: ['readings:read', 'root'] }, 'scopes[1] must be one of'],
    ['an empty site', { sites: ['north', ' '] }, 'sites[1] must not be empty'],
    [
      'more than 1000 sites',
      { sites: Array.from({ length: 1001 }, (_, i) => `site-${i}`) },
      'sites must name at most 1000 sites (leave it empty for every site)',
    ],
    ['an expiry in the past', { expireTime: timestampFromMs(Date.now() - 1_000) }, 'expire_time must be in the future'],
    ['an expiry beyond 365 days', { expireTime: timestampFromMs(Date.now() + 366 * DAY_MS) }, 'expire_time must be at most 365 days ahead'],
    ['an expiry beyond any date', { expireTime: { seconds: 10n ** 13n, nanos: 0 } }, 'expire_time must be from year 1 to year 9999'],
  ])('refuses a token with %s, naming the field, and stores nothing', async (_case, change, message) => {
    const listed = async () => (await admin.listTokens({ includeRevoked: true, pageSize: 1000 })).tokens.length;
    const before = await listed();
    const err = await errorOf(
      admin.createToken({
        name: change.name ?? 'bad',
        scopes: change.scopes ?? ['readings:read'],
        sites: change.sites ?? [],
        ...(change.expireTime ? { expireTime: change.expireTime } : {}),
      }),
    );
    expect(err.code).toBe('InvalidArgument');
    expect(err.message.startsWith(message)).toBe(true);
    expect(await listed()).toBe(before);
  });

  it('lets a caller bound to sites hand out only what it holds: named sites of its own, scopes it has', async () => {
    const east = api.as(boundAdmin('token:east-admin', ['east'])).tokens;
    const own = await east.createToken({ name: 'agent east', scopes: ['readings:read'], sites: ['east'] });
    expect(own.token).toMatchObject({ sites: ['east'], createdBy: 'token:east-admin' });
    expect(await errorOf(east.createToken({ name: 'unbound', scopes: ['readings:read'] }))).toEqual({
      code: 'PermissionDenied',
      message: 'sites must be named by token:east-admin, which is bound to sites',
    });
    expect(await errorOf(east.createToken({ name: 'west', scopes: ['readings:read'], sites: ['east', 'west'] }))).toEqual({
      code: 'PermissionDenied',
      message: 'sites names site "west", which token:east-admin is not bound to',
    });
    expect(await errorOf(east.createToken({ name: 'wider', scopes: ['dispatch:write'], sites: ['east'] }))).toEqual({
      code: 'PermissionDenied',
      message: 'scopes names "dispatch:write", which token:east-admin does not hold',
    });
    // Bad input is answered as such before any question of what the caller may grant.
    expect(await errorOf(east.createToken({ name: '', scopes: ['dispatch:write'], sites: ['west'] }))).toMatchObject({
      code: 'InvalidArgument',
      message: expect.stringMatching(/^name /),
    });
  });

  it('lists tokens newest first, page by page, revoked ones only when asked', async () => {
    const site = 'paging';
    const created: string[] = [];
    for (let i = 0; i < 5; i++)
      created.push((await admin.createToken({ name: `page-${i}`, scopes: ['readings:read'], sites: [site] })).token!.id);
    await admin.revokeToken({ id: created[2]! });
    // A caller bound to the site sees exactly the site's tokens.
    const bound = api.as(boundAdmin('token:paging-admin', [site])).tokens;
    const pages = async (includeRevoked: boolean) => {
      const seen: string[][] = [];
      let pageToken = '';
      for (let i = 0; i < 10; i++) {
        const page = await bound.listTokens({ includeRevoked, pageSize: 2, pageToken });
        seen.push(page.tokens.map((t) => t.id));
        pageToken = page.nextPageToken;
        if (pageToken === '') break;
      }
      return seen;
    };
    const newestFirst = [...created].reverse();
    expect(await pages(true)).toEqual([newestFirst.slice(0, 2), newestFirst.slice(2, 4), newestFirst.slice(4)]);
    expect((await pages(false)).flat()).toEqual(newestFirst.filter((id) => id !== created[2]));

    const first = await bound.listTokens({ includeRevoked: true, pageSize: 2 });
    expect(await errorOf(bound.listTokens({ includeRevoked: false, pageSize: 2, pageToken: first.nextPageToken }))).toMatchObject({
      code: 'InvalidArgument',
      message: expect.stringMatching(/^page_token was made for a listing with other filters/),
    });
    expect(await errorOf(bound.listTokens({ pageSize: 1001 }))).toMatchObject({
      code: 'InvalidArgument',
      message: expect.stringMatching(/^page_size must be from 1 to 1000/),
    });
    // Listings never carry a secret.
    expect(JSON.stringify((await admin.listTokens({ pageSize: 1000 })).tokens.map((t) => t.prefix))).not.toMatch(/pp_[A-Za-z0-9_-]{20}/);
  });

  it('ends a page of tokens by bytes as well as by count', async () => {
    const site = 'paging-bytes';
    for (let i = 0; i < 3; i++) await admin.createToken({ name: `bytes-${i}`, scopes: ['readings:read'], sites: [site] });
    const tiny = serveInMemory(database, testDb.config, { pageBytes: 1 });
    try {
      const bound = tiny.as(boundAdmin('token:bytes-admin', [site])).tokens;
      const sizes: number[] = [];
      let pageToken = '';
      for (let i = 0; i < 10; i++) {
        const page = await bound.listTokens({ pageSize: 100, pageToken });
        sizes.push(page.tokens.length);
        pageToken = page.nextPageToken;
        if (pageToken === '') break;
      }
      expect(sizes).toEqual([1, 1, 1]);
    } finally {
      await tiny.close();
    }
  });

  it("revokes a token at once and answers a second revocation with the first one's record", async () => {
    const { token, secret } = await admin.createToken({ name: 'to revoke', scopes: ['readings:read'] });
    const revoked = await admin.revokeToken({ id: token!.id });
    expect(revoked.token).toMatchObject({ id: token!.id, name: 'to revoke' });
    expect(revoked.token?.revokeTime).toBeDefined();
    expect(await store.verify(secret)).toBeUndefined();
    expect((await admin.revokeToken({ id: token!.id })).token).toEqual(revoked.token);
    expect((await admin.listTokens({ pageSize: 1000 })).tokens.map((t) => t.id)).not.toContain(token!.id);
    expect((await admin.listTokens({ includeRevoked: true, pageSize: 1000 })).tokens.find((t) => t.id === token!.id)).toEqual(
      revoked.token,
    );
  });

  it("answers a malformed id INVALID_ARGUMENT and an unknown id, or one beyond a bound caller's sites, NOT_FOUND", async () => {
    expect(await errorOf(admin.revokeToken({ id: 'nope' }))).toEqual({
      code: 'InvalidArgument',
      message: 'id must be a UUID (got "nope")',
    });
    const unknown = '00000000-0000-4000-8000-00000000beef';
    expect(await errorOf(admin.revokeToken({ id: unknown }))).toEqual({
      code: 'NotFound',
      message: `id names no token (got "${unknown}")`,
    });
    const unbound = (await admin.createToken({ name: 'unbound', scopes: ['readings:read'] })).token!.id;
    const west = (await admin.createToken({ name: 'west', scopes: ['readings:read'], sites: ['west'] })).token!.id;
    const east = api.as(boundAdmin('token:east-admin-2', ['east'])).tokens;
    for (const id of [unbound, west])
      expect(await errorOf(east.revokeToken({ id }))).toEqual({ code: 'NotFound', message: `id names no token (got "${id}")` });
    expect((await admin.listTokens({ pageSize: 1000 })).tokens.map((t) => t.id)).toEqual(expect.arrayContaining([unbound, west]));
  });

  it('tells any caller who it is', async () => {
    expect(await admin.getCaller({})).toMatchObject({ principal: 'unrestricted', scopes: [...SCOPES], sites: [] });
    const reader = api.as({ id: 'token:reader', kind: 'token', scopes: new Set(['readings:read']), sites: new Set(['b', 'a']) }).tokens;
    expect(await reader.getCaller({})).toMatchObject({ principal: 'token:reader', scopes: ['readings:read'], sites: ['a', 'b'] });
  });
});
