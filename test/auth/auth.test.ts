import { writeFile, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { timestampFromMs, timestampMs } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { exportSPKI, generateKeyPair, SignJWT } from 'jose';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Health, HealthCheckResponse_ServingStatus as Status } from '../../gen/grpc/health/v1/health_pb.ts';
import { TokenService } from '../../gen/powerplane/v1/auth_pb.ts';
import { DeviceRegistryService } from '../../gen/powerplane/v1/devices_pb.ts';
import { DispatchService } from '../../gen/powerplane/v1/dispatch_pb.ts';
import { createAuditLog } from '../../src/audit/audit.ts';
import { bearer } from '../../src/auth/bearer.ts';
import { createTokenStore } from '../../src/auth/tokens.ts';
import { toConfig } from '../../src/config.ts';
import { errorOf } from '../support/api.ts';
import { ENGINES } from '../support/databases.ts';
import { registerBattery } from '../support/fleet.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

describe.each(ENGINES)('authentication and per-site authorization on %s', (engine) => {
  let t: TestServer;
  let keyFile: string;
  let dir: string;
  let privateKey: Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
  const secrets: Record<string, string> = {};
  const ids: Record<string, string> = {};
  const clients = (token?: string) => {
    const transport = createGrpcTransport({ baseUrl: t.baseUrl, interceptors: token ? [bearer(token)] : [] });
    return {
      registry: createClient(DeviceRegistryService, transport),
      dispatch: createClient(DispatchService, transport),
      tokens: createClient(TokenService, transport),
      health: createClient(Health, transport),
    };
  };

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'powerplane-auth-'));
    const pair = await generateKeyPair('ES256', { extractable: true });
    privateKey = pair.privateKey;
    keyFile = path.join(dir, 'jwt.pem');
    await writeFile(keyFile, await exportSPKI(pair.publicKey));
    const base = toConfig({
      listen: '127.0.0.1:0',
      dataDir: 'memory://',
      jwtKeyFile: keyFile,
      jwtIssuer: 'https://idp.test',
      jwtAudience: 'powerplane',
      jwtAlgorithms: 'ES256',
      tokenCacheMs: '0',
    });
    t = await startTestServer(engine, { auth: { ...base.auth, enabled: true } });
    const store = createTokenStore({ db: t.server.database.db, cacheMs: 0 });
    const make = async (name: string, scopes: string[], sites: string[] = []) => {
      const { secret, info } = await store.create({ name, scopes, sites }, 'test');
      secrets[name] = secret;
      ids[name] = info.id;
    };
    await make('admin', ['registry:admin', 'readings:read', 'dispatch:write', 'control:write', 'tokens:admin']);
    await make('reader', ['readings:read']);
    await make('trader-a', ['dispatch:write', 'readings:read'], ['site-a']);
    const admin = clients(secrets.admin).registry;
    ids.batteryA = await registerBattery(admin, 'site-a', 'bess-a', { host: '127.0.0.1', port: 1, unitId: 1 });
    ids.batteryB = await registerBattery(admin, 'site-b', 'bess-b', { host: '127.0.0.1', port: 1, unitId: 2 });
  });
  afterAll(async () => {
    await t?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses calls without credentials or with an unknown token, and records the refusal', async () => {
    expect(await errorOf(clients().registry.listDevices({}))).toMatchObject({
      code: 'Unauthenticated',
      message: expect.stringContaining('credentials required'),
    });
    expect(await errorOf(clients('pp_not-a-real-token').registry.listDevices({}))).toMatchObject({
      code: 'Unauthenticated',
      message: expect.stringContaining('unknown'),
    });
    const rows = await createAuditLog({ db: t.server.database.db }).list({ principal: 'unauthenticated' });
    // Two refusals within a second for the same principal, method and code are one row.
    const refused = rows.filter((r) => r.method === 'powerplane.v1.DeviceRegistryService/ListDevices' && r.phase === 'refused');
    expect(refused).toHaveLength(1);
    expect(refused[0]).toMatchObject({ code: 'Unauthenticated', message: expect.stringContaining('credentials required') });
  });

  it('answers health without credentials', async () => {
    expect((await clients().health.check({})).status).toBe(Status.SERVING);
  });

  it('refuses a call whose scope the token lacks, naming the scope', async () => {
    const reader = clients(secrets.reader!);
    expect((await reader.registry.listDevices({})).devices).toHaveLength(2);
    const denied = await errorOf(
      reader.dispatch.submitDispatch({ requestId: 'r1', target: { case: 'site', value: 'site-a' }, intervals: [] }),
    );
    expect(denied).toMatchObject({ code: 'PermissionDenied', message: expect.stringContaining('dispatch:write') });
    expect(await errorOf(reader.tokens.listTokens({}))).toMatchObject({
      code: 'PermissionDenied',
      message: expect.stringContaining('tokens:admin'),
    });
  });

  it('lets a site-bound caller see and dispatch only its site', async () => {
    const trader = clients(secrets['trader-a']!);
    expect((await trader.registry.listDevices({})).devices.map((d) => d.site)).toEqual(['site-a']);
    expect(await errorOf(trader.registry.listDevices({ site: 'site-b' }))).toMatchObject({
      code: 'PermissionDenied',
      message: expect.stringContaining('site'),
    });
    // Another site's device reads exactly like an unknown one: nothing about site B leaks.
    const unknown = await errorOf(trader.registry.getDevice({ id: '00000000-0000-4000-8000-000000000000' }));
    const foreign = await errorOf(trader.registry.getDevice({ id: ids.batteryB! }));
    expect(foreign).toMatchObject({ code: 'NotFound', message: expect.stringContaining('id names no device') });
    expect(foreign.message.replace(ids.batteryB!, 'X')).toBe(unknown.message.replace('00000000-0000-4000-8000-000000000000', 'X'));
    const window = {
      startTime: timestampFromMs(Date.now() + 60_000),
      endTime: timestampFromMs(Date.now() + 120_000),
      command: { case: 'powerKw' as const, value: 10 },
    };
    const refused = await errorOf(
      trader.dispatch.submitDispatch({ requestId: 'b-1', target: { case: 'deviceId', value: ids.batteryB! }, intervals: [window] }),
    );
    expect(refused).toMatchObject({ code: 'NotFound', message: expect.stringContaining('device_id') });
    expect(
      await errorOf(trader.dispatch.submitDispatch({ requestId: 'b-2', target: { case: 'site', value: 'site-b' }, intervals: [window] })),
    ).toMatchObject({ code: 'PermissionDenied' });
    const own = await trader.dispatch.submitDispatch({ requestId: 'a-1', target: { case: 'site', value: 'site-a' }, intervals: [window] });
    expect(own.instructions).toHaveLength(1);
    // Nothing was stored for site B; the admin sees only site A's instruction.
    const all = await clients(secrets.admin).dispatch.listDispatches({});
    expect(all.instructions.map((i) => (i.target.case === 'site' ? i.target.value : i.target.value))).toEqual(['site-a']);
    // An instruction of another site cannot be read or cancelled through its id either: it is answered as an unknown one.
    const other = await clients(secrets.admin).dispatch.submitDispatch({
      requestId: 'admin-b',
      target: { case: 'site', value: 'site-b' },
      intervals: [window],
    });
    expect(await errorOf(trader.dispatch.cancelDispatch({ id: other.instructions[0]!.id }))).toMatchObject({
      code: 'NotFound',
      message: expect.stringContaining('id names no dispatch instruction'),
    });
    expect(await errorOf(trader.dispatch.getSiteConfig({ site: 'site-b' }))).toMatchObject({ code: 'PermissionDenied' });
  });

  it('audits a dispatch with its principal before it is applied, and its outcome after', async () => {
    const trader = clients(secrets['trader-a']!);
    const window = {
      startTime: timestampFromMs(Date.now() + 60_000),
      endTime: timestampFromMs(Date.now() + 120_000),
      command: { case: 'powerKw' as const, value: 5 },
    };
    const res = await trader.dispatch.submitDispatch({
      requestId: 'audited',
      target: { case: 'site', value: 'site-a' },
      intervals: [window],
    });
    const rows = (await createAuditLog({ db: t.server.database.db }).list({ principal: `token:${ids['trader-a']}` })).filter(
      (r) => (r.request as { requestId?: string } | undefined)?.requestId === 'audited' || r.phase === 'completed',
    );
    const requested = rows.find((r) => r.phase === 'requested')!;
    expect(requested).toMatchObject({
      method: 'powerplane.v1.DispatchService/SubmitDispatch',
      request: { requestId: 'audited', site: 'site-a' },
    });
    const completed = rows.find((r) => r.phase === 'completed' && r.callId === requested.callId);
    expect(completed).toBeDefined();
    const created = await sql<{
      created_at: Date;
    }>`select created_at from powerplane.dispatch_instructions where id = ${res.instructions[0]!.id}`.execute(t.server.database.db);
    expect(requested.at.getTime()).toBeLessThanOrEqual(created.rows[0]!.created_at.getTime());
    const instruction = await clients(secrets.admin).dispatch.getDispatch({ id: res.instructions[0]!.id });
    expect(instruction.instruction?.principal).toBe(`token:${ids['trader-a']}`);
  });

  it('records a refusal that a stream meets while it runs', async () => {
    const trader = clients(secrets['trader-a']!);
    const err = await (async () => {
      for await (const _ of trader.dispatch.watchSetpoints({ site: 'site-b' })) break;
    })().catch((e: unknown) => e);
    expect(ConnectError.from(err).code).toBe(Code.PermissionDenied);
    const rows = await createAuditLog({ db: t.server.database.db }).list({ principal: `token:${ids['trader-a']}` });
    expect(rows.find((r) => r.method === 'powerplane.v1.DispatchService/WatchSetpoints')).toMatchObject({
      phase: 'refused',
      code: 'PermissionDenied',
    });
  });

  it('leaves device changes to callers not bound to sites, since a Modbus address is not confined to a site', async () => {
    const store = createTokenStore({ db: t.server.database.db, cacheMs: 0 });
    const { secret } = await store.create({ name: 'site-a registry', scopes: ['registry:admin'], sites: ['site-a'] }, 'test');
    const bound = clients(secret).registry;
    expect(await errorOf(registerBattery(bound, 'site-a', 'hijack', { host: '127.0.0.1', port: 1, unitId: 2 }))).toMatchObject({
      code: 'PermissionDenied',
      message: expect.stringContaining('CreateDevice needs a caller not bound to sites'),
    });
    expect((await bound.listDevices({})).devices.map((d) => d.name)).toEqual(['bess-a']);
  });

  it('keeps audit rows from being changed or deleted', async () => {
    const db = t.server.database.db;
    await expect(sql`update powerplane.audit_log set principal = 'someone else'`.execute(db)).rejects.toThrow(/append-only/);
    await expect(sql`delete from powerplane.audit_log`.execute(db)).rejects.toThrow(/append-only/);
    await expect(sql`truncate powerplane.audit_log`.execute(db)).rejects.toThrow(/append-only/);
    await expect(sql`truncate powerplane.setpoint_events`.execute(db)).rejects.toThrow(/append-only/);
    expect((await createAuditLog({ db }).list({ limit: 1 })).length).toBe(1);
  });

  it('creates, lists and revokes tokens through the API; a revoked token is refused at once', async () => {
    const admin = clients(secrets.admin);
    const created = await admin.tokens.createToken({ name: 'agent site-a', scopes: ['readings:read'], sites: ['site-a'] });
    expect(created.secret).toMatch(/^pp_/);
    const listed = await admin.tokens.listTokens({});
    expect(listed.tokens.find((x) => x.id === created.token!.id)).toMatchObject({
      name: 'agent site-a',
      sites: ['site-a'],
      createdBy: `token:${ids.admin}`,
    });
    expect(JSON.stringify(listed, (_, v: unknown) => (typeof v === 'bigint' ? String(v) : v))).not.toContain(created.secret);
    expect((await clients(created.secret).registry.listDevices({})).devices).toHaveLength(1);
    await admin.tokens.revokeToken({ id: created.token!.id });
    expect(await errorOf(clients(created.secret).registry.listDevices({}))).toMatchObject({ code: 'Unauthenticated' });
    expect(await errorOf(admin.tokens.createToken({ name: '', scopes: ['readings:read'] }))).toMatchObject({
      code: 'InvalidArgument',
      message: expect.stringContaining('name'),
    });
    expect(await errorOf(admin.tokens.createToken({ name: 'x', scopes: [] }))).toMatchObject({
      code: 'InvalidArgument',
      message: expect.stringContaining('scopes'),
    });
    expect(
      await errorOf(admin.tokens.createToken({ name: 'x', scopes: ['readings:read'], expireTime: timestampFromMs(Date.now() - 1000) })),
    ).toMatchObject({ message: expect.stringContaining('expire_time') });
    expect(await errorOf(admin.tokens.revokeToken({ id: 'nope' }))).toMatchObject({
      code: 'InvalidArgument',
      message: expect.stringContaining('id'),
    });
    expect(await errorOf(admin.tokens.createToken({ name: 'too much', scopes: ['marketdata:write'] }))).toMatchObject({
      code: 'PermissionDenied',
      message: expect.stringContaining('marketdata:write'),
    });

    // A token admin bound to site-a sees and revokes only tokens bound within site-a.
    const siteAdmin = (
      await admin.tokens.createToken({ name: 'site-a admin', scopes: ['tokens:admin', 'readings:read'], sites: ['site-a'] })
    ).secret;
    const siteB = await admin.tokens.createToken({ name: 'agent site-b', scopes: ['readings:read'], sites: ['site-b'] });
    const own = await clients(siteAdmin).tokens.createToken({ name: 'agent site-a 2', scopes: ['readings:read'], sites: ['site-a'] });
    const seen = (await clients(siteAdmin).tokens.listTokens({})).tokens.map((x) => x.name);
    expect(seen).toContain('agent site-a 2');
    expect(seen).not.toContain('agent site-b');
    expect(seen).not.toContain('admin');
    expect(await errorOf(clients(siteAdmin).tokens.revokeToken({ id: siteB.token!.id }))).toMatchObject({ code: 'NotFound' });
    expect(await errorOf(clients(siteAdmin).tokens.revokeToken({ id: ids.admin! }))).toMatchObject({ code: 'NotFound' });
    expect((await clients(siteAdmin).tokens.revokeToken({ id: own.token!.id })).token?.revokeTime).toBeDefined();
    // …and hands out nothing wider than itself: no unbound token, no other site.
    expect(await errorOf(clients(siteAdmin).tokens.createToken({ name: 'unbound', scopes: ['readings:read'] }))).toMatchObject({
      code: 'PermissionDenied',
      message: expect.stringContaining('sites must be named'),
    });
    expect(await errorOf(clients(siteAdmin).tokens.createToken({ name: 'b', scopes: ['readings:read'], sites: ['site-b'] }))).toMatchObject(
      { code: 'PermissionDenied', message: expect.stringContaining('sites names site "site-b"') },
    );
    expect(await errorOf(admin.tokens.createToken({ name: 'x', scopes: ['readings:read'], sites: [' '] }))).toMatchObject({
      code: 'InvalidArgument',
      message: expect.stringContaining('sites[0] must not be empty'),
    });
    expect((await clients(siteB.secret).registry.listDevices({})).devices).toHaveLength(1);
  });

  it('gives every token created through the API an expiry - 90 days unless asked, at most 365 days, never none', async () => {
    const admin = clients(secrets.admin);
    const DAY_MS = 86_400_000;
    const before = Date.now();
    const unset = await admin.tokens.createToken({ name: 'default expiry', scopes: ['readings:read'] });
    const after = Date.now();
    const expires = timestampMs(unset.token!.expireTime!);
    expect(expires).toBeGreaterThanOrEqual(before + 90 * DAY_MS);
    expect(expires).toBeLessThanOrEqual(after + 90 * DAY_MS);
    expect((await admin.tokens.listTokens({})).tokens.find((x) => x.id === unset.token!.id)?.expireTime).toEqual(unset.token!.expireTime);
    expect((await clients(unset.secret).registry.listDevices({})).devices).toHaveLength(2);

    const yearAhead = timestampFromMs(Date.now() + 365 * DAY_MS);
    expect(
      (await admin.tokens.createToken({ name: 'a year', scopes: ['readings:read'], expireTime: yearAhead })).token?.expireTime,
    ).toEqual(yearAhead);

    const tooLong = await errorOf(
      admin.tokens.createToken({ name: 'too long', scopes: ['readings:read'], expireTime: timestampFromMs(Date.now() + 366 * DAY_MS) }),
    );
    expect(tooLong).toMatchObject({
      code: 'InvalidArgument',
      message: expect.stringContaining('expire_time must be at most 365 days ahead'),
    });
    const past = await errorOf(
      admin.tokens.createToken({ name: 'past', scopes: ['readings:read'], expireTime: timestampFromMs(Date.now() - 1_000) }),
    );
    expect(past).toMatchObject({ code: 'InvalidArgument', message: expect.stringContaining('expire_time must be in the future') });
    // Beyond what a Timestamp may hold: refused as a bad time, not accepted because NaN compares false.
    const absurd = await errorOf(
      admin.tokens.createToken({ name: 'absurd', scopes: ['readings:read'], expireTime: { seconds: 10n ** 13n, nanos: 0 } }),
    );
    expect(absurd).toMatchObject({
      code: 'InvalidArgument',
      message: expect.stringContaining('expire_time must be from year 1 to year 9999'),
    });
    // JSON cannot hold that time, so the audit keeps the request's binary size and digest instead.
    const audited = (await createAuditLog({ db: t.server.database.db }).list({ principal: `token:${ids.admin}` })).filter(
      (r) => r.method === 'powerplane.v1.TokenService/CreateToken',
    );
    expect(audited[0]).toMatchObject({ phase: 'failed', code: 'InvalidArgument' });
    expect(audited[1]).toMatchObject({
      phase: 'requested',
      callId: audited[0]!.callId,
      request: { unencodable: expect.any(String), sha256: expect.stringMatching(/^[0-9a-f]{64}$/) },
    });
    const names = (await admin.tokens.listTokens({})).tokens.map((x) => x.name);
    expect(names).not.toContain('too long');
    expect(names).not.toContain('absurd');
  });

  const sign = (claims: Record<string, unknown>, options: { iss?: string; aud?: string; exp?: number } = {}) =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: 'ES256' })
      .setSubject('trader-7')
      .setIssuer(options.iss ?? 'https://idp.test')
      .setAudience(options.aud ?? 'powerplane')
      .setExpirationTime(options.exp ?? Math.floor(Date.now() / 1000) + 60)
      .sign(privateKey);

  it('accepts a JWT with the right issuer, audience and algorithm, bound to the sites it names', async () => {
    const good = await sign({ scope: 'readings:read', sites: ['site-b'] });
    expect((await clients(good).registry.listDevices({})).devices.map((d) => d.site)).toEqual(['site-b']);
    expect(
      await errorOf(clients(await sign({ scope: 'readings:read', sites: ['*'] }, { aud: 'someone-else' })).registry.listDevices({})),
    ).toMatchObject({ code: 'Unauthenticated', message: expect.stringContaining('aud') });
    expect(
      await errorOf(clients(await sign({ scope: 'readings:read', sites: ['*'] }, { iss: 'https://evil.test' })).registry.listDevices({})),
    ).toMatchObject({ code: 'Unauthenticated', message: expect.stringContaining('iss') });
    const expired = await sign({ scope: 'readings:read', sites: ['*'] }, { exp: Math.floor(Date.now() / 1000) - 120 });
    expect(await errorOf(clients(expired).registry.listDevices({}))).toMatchObject({
      code: 'Unauthenticated',
      message: expect.stringContaining('expired'),
    });
    const noneHeader = Buffer.from('{"alg":"none"}').toString('base64url');
    const claims = { sub: 'x', iss: 'https://idp.test', aud: 'powerplane', exp: 9e9, scope: 'readings:read', sites: ['*'] };
    const unsigned = `${noneHeader}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.`;
    expect(await errorOf(clients(unsigned).registry.listDevices({}))).toMatchObject({ code: 'Unauthenticated' });
    expect(await errorOf(clients(await sign({ scope: 'dispatch:write', sites: ['*'] })).registry.listDevices({}))).toMatchObject({
      code: 'PermissionDenied',
    });
    expect(await errorOf(clients(await sign({ scope: 'readings:read', sites: 'site-a' })).registry.listDevices({}))).toMatchObject({
      code: 'Unauthenticated',
      message: expect.stringContaining('the sites claim must be an array of site names'),
    });
  });

  it('refuses a JWT without a sites claim instead of reading it as every site, and takes ["*"] as every site', async () => {
    const missing = await errorOf(clients(await sign({ scope: 'readings:read' })).dispatch.listMarketData({}));
    expect(missing).toMatchObject({ code: 'Unauthenticated', message: expect.stringContaining('the sites claim is missing') });
    expect(await errorOf(clients(await sign({ scope: 'readings:read', sites: [] })).registry.listDevices({}))).toMatchObject({
      code: 'Unauthenticated',
      message: expect.stringContaining('the sites claim must be an array of site names or ["*"] for every site'),
    });
    expect(await errorOf(clients(await sign({ scope: 'readings:read', sites: ['*', 'site-a'] })).registry.listDevices({}))).toMatchObject({
      code: 'Unauthenticated',
      message: expect.stringContaining('the sites claim must be ["*"] alone'),
    });
    const everySite = await clients(await sign({ scope: 'readings:read', sites: ['*'] })).registry.listDevices({});
    expect(everySite.devices.map((d) => d.site).sort()).toEqual(['site-a', 'site-b']);
    // The refusal is audited under the unauthenticated principal, naming the claim.
    const rows = await createAuditLog({ db: t.server.database.db }).list({ principal: 'unauthenticated', limit: 1_000 });
    expect(rows.find((r) => r.method === 'powerplane.v1.DispatchService/ListMarketData')).toMatchObject({
      phase: 'refused',
      code: 'Unauthenticated',
      message: expect.stringContaining('the sites claim is missing'),
    });
  });
});
