import { Code, ConnectError, createClient, createRouterTransport } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TokenService } from '../../gen/powerplane/v1/auth_pb.ts';
import { createAuditLog } from '../../src/audit/audit.ts';
import { createAuthInterceptor } from '../../src/auth/auth-interceptor.ts';
import { createAuthenticator } from '../../src/auth/authenticate.ts';
import { bearer } from '../../src/auth/bearer.ts';
import { SCOPES } from '../../src/rpc/principal.ts';
import { createTokenService } from '../../src/auth/token.service.ts';
import { createTokenStore, type TokenStore } from '../../src/auth/tokens.ts';
import type { Database } from '../../src/storage/database.ts';
import { createTestDatabase, type TestDatabase } from '../support/databases.ts';

/**
 * The service in memory, behind the authentication interceptor alone: with no server in
 * front to authenticate before the body, the interceptor authenticates each call itself.
 */
describe('GetCaller', () => {
  let testDatabase: TestDatabase;
  let database: Database;
  let tokens: TokenStore;
  const client = (enabled: boolean, token?: string) => {
    const audit = createAuditLog({ db: database.db });
    const transport = createRouterTransport((router) => router.service(TokenService, createTokenService(tokens)), {
      router: { interceptors: [createAuthInterceptor({ enabled, authenticate: createAuthenticator({ tokens }), audit })] },
      transport: { interceptors: token ? [bearer(token)] : [] },
    });
    return createClient(TokenService, transport);
  };

  beforeAll(async () => {
    testDatabase = await createTestDatabase('pglite');
    database = await testDatabase.open();
    tokens = createTokenStore({ db: database.db, cacheMs: 0 });
  });
  afterAll(async () => {
    await testDatabase?.drop();
  });

  it('tells a caller bound to several sites its principal, scopes and sites, sorted', async () => {
    const { secret, info } = await tokens.create({ name: 'two sites', scopes: ['readings:read'], sites: ['site-b', 'site-a'] }, 'test');
    expect(await client(true, secret).getCaller({})).toMatchObject({
      principal: `token:${info.id}`,
      scopes: ['readings:read'],
      sites: ['site-a', 'site-b'],
    });
  });

  it('answers any scope, and an unbound caller with no sites (every site)', async () => {
    const { secret } = await tokens.create({ name: 'agent', scopes: ['telemetry:write'] }, 'test');
    expect(await client(true, secret).getCaller({})).toMatchObject({ scopes: ['telemetry:write'], sites: [] });
  });

  it('refuses a caller without credentials, and with authentication off answers as the unrestricted principal', async () => {
    const err = ConnectError.from(
      await client(true)
        .getCaller({})
        .catch((e: unknown) => e),
    );
    expect(err.code).toBe(Code.Unauthenticated);
    expect(await client(false).getCaller({})).toMatchObject({ principal: 'unrestricted', scopes: [...SCOPES], sites: [] });
  });
});
