import http2 from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAuditLog } from '../../src/audit/audit.ts';
import { createTokenStore } from '../../src/auth/tokens.ts';
import { toConfig } from '../../src/config.ts';
import { rawExchange } from '../support/raw-http.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

/** The headers every answer must carry, whatever its path or protocol. */
const EXPECTED = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
};

const securityHeaders = (get: (name: string) => string | null | undefined) =>
  Object.fromEntries(Object.keys(EXPECTED).map((name) => [name, get(name)]));

/** The head of an answer to a gRPC call over HTTP/2 (status, headers and trailers merged). */
function grpcHead(baseUrl: string, path: string, headers: Record<string, string> = {}): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(baseUrl);
    session.on('error', reject);
    const stream = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...headers });
    let head: Record<string, unknown> = {};
    stream.on('response', (h) => (head = { ...h }));
    stream.on('trailers', (t) => (head = { ...head, ...t }));
    stream.resume();
    stream.on('error', reject);
    stream.on('close', () => {
      session.close();
      resolve(head);
    });
    // An empty message: GetCaller has no fields.
    stream.end(Buffer.from([0, 0, 0, 0, 0]));
  });
}

describe('security headers and a guarded /metrics, authentication on', () => {
  let t: TestServer;
  let reader: string;
  let scraper: string;

  beforeAll(async () => {
    const base = toConfig({ dataDir: 'memory://' });
    t = await startTestServer('pglite', { auth: { ...base.auth, adminTokenFile: undefined } });
    const tokens = createTokenStore({ db: t.server.database.db, cacheMs: 0 });
    reader = (await tokens.create({ name: 'reader', scopes: ['readings:read'] }, 'test')).secret;
    scraper = (await tokens.create({ name: 'prometheus', scopes: ['metrics:read'] }, 'test')).secret;
  });
  afterAll(async () => {
    await t?.stop();
  });

  it.each([
    ['the operator console', '/', 200, 'text/html; charset=utf-8'],
    ['its script', '/console/main.js', 200, 'text/javascript; charset=utf-8'],
    ['its style', '/console/console.css', 200, 'text/css; charset=utf-8'],
    ['/healthz', '/healthz', 200, 'text/plain; charset=utf-8'],
    ['/metrics without a token', '/metrics', 401, 'text/plain; charset=utf-8'],
    ['an unknown path', '/nope', 404, 'text/plain; charset=utf-8'],
  ])('sends the security headers with %s', async (_, path, status, type) => {
    const res = await fetch(`${t.baseUrl}${path}`);
    expect(res.status).toBe(status);
    expect(res.headers.get('content-type')).toBe(type);
    expect(securityHeaders((name) => res.headers.get(name))).toEqual(EXPECTED);
  });

  it('sends the security headers with RPCs: Connect over HTTP/1.1, answered or refused, and gRPC over HTTP/2', async () => {
    const call = (token?: string) =>
      fetch(`${t.baseUrl}/powerplane.v1.TokenService/GetCaller`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: '{}',
      });
    const answered = await call(reader);
    expect(answered.status).toBe(200);
    expect(securityHeaders((name) => answered.headers.get(name))).toEqual(EXPECTED);
    const refused = await call();
    expect(refused.status).toBe(401);
    expect(securityHeaders((name) => refused.headers.get(name))).toEqual(EXPECTED);

    const grpc = await grpcHead(t.baseUrl, '/powerplane.v1.TokenService/GetCaller', { authorization: `Bearer ${reader}` });
    expect(grpc).toMatchObject({ ':status': 200, 'grpc-status': '0' });
    expect(securityHeaders((name) => grpc[name] as string | undefined)).toEqual(EXPECTED);
  });

  it('sends the security headers with the 400 of a request no handler could serve (two Host headers)', async () => {
    const answer = await rawExchange(t.server.address.port, 'GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n');
    expect(answer).toMatch(/^HTTP\/1\.1 400 /);
    const head = answer.slice(0, answer.indexOf('\r\n\r\n')).toLowerCase();
    for (const [name, value] of Object.entries(EXPECTED)) expect(head).toContain(`${name}: ${value.toLowerCase()}`);
  });

  it('serves /metrics only with a bearer token holding metrics:read', async () => {
    const metrics = (token?: string) => fetch(`${t.baseUrl}/metrics`, token ? { headers: { authorization: `Bearer ${token}` } } : {});
    const anonymous = await metrics();
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toBe('Bearer');
    expect(await anonymous.text()).toContain('credentials required');
    expect((await metrics(`pp_${'B'.repeat(43)}`)).status).toBe(401);

    const withoutScope = await metrics(reader);
    expect(withoutScope.status).toBe(403);
    expect(await withoutScope.text()).toBe('/metrics needs the scope metrics:read\n');

    const allowed = await metrics(scraper);
    expect(allowed.status).toBe(200);
    expect(await allowed.text()).toMatch(/^powerplane_rpc_calls_total\{/m);

    const rows = await createAuditLog({ db: t.server.database.db }).list({ limit: 100 });
    expect(rows.filter((r) => r.method === '/metrics').map((r) => [r.phase, r.code])).toEqual(
      expect.arrayContaining([
        ['refused', 'Unauthenticated'],
        ['refused', 'PermissionDenied'],
      ]),
    );
  });
});

describe('/metrics with POWERPLANE_METRICS_AUTH=off', () => {
  let t: TestServer;

  beforeAll(async () => {
    const base = toConfig({ dataDir: 'memory://', metricsAuth: 'off' });
    t = await startTestServer('pglite', { auth: { ...base.auth, adminTokenFile: undefined } });
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('is public while every RPC still needs a token', async () => {
    const res = await fetch(`${t.baseUrl}/metrics`);
    expect(res.status).toBe(200);
    expect(await res.text()).toMatch(/^powerplane_rpc_calls_total|^# HELP/m);
    expect(securityHeaders((name) => res.headers.get(name))).toEqual(EXPECTED);
    const rpc = await fetch(`${t.baseUrl}/powerplane.v1.TokenService/GetCaller`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    expect(rpc.status).toBe(401);
  });
});
