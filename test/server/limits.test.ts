import { randomUUID } from 'node:crypto';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RetryInfoSchema } from '../../gen/google/rpc/error_details_pb.ts';
import { Health, HealthCheckResponse_ServingStatus } from '../../gen/grpc/health/v1/health_pb.ts';
import { DeviceRegistryService } from '../../gen/powerplane/v1/devices_pb.ts';
import { DispatchService } from '../../gen/powerplane/v1/dispatch_pb.ts';
import { TokenService } from '../../gen/powerplane/v1/auth_pb.ts';
import { createTokenStore } from '../../src/auth/tokens.ts';
import { readEnv, toConfig } from '../../src/config.ts';
import { ServingStatus } from '../../src/server/health.ts';
import { startTestServer, type TestServer } from '../support/server.ts';
import { createAuditLog } from '../../src/audit/audit.ts';

const base = toConfig({ listen: '127.0.0.1:0' });

function sleep(ms: number) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function outcome<T>(call: Promise<T>): Promise<ConnectError | T> {
  try {
    return await call;
  } catch (err) {
    return ConnectError.from(err);
  }
}

describe('the registry and token administration limits in the configuration', () => {
  it('default to 50 per second with bursts of 1000, generous enough to register a fleet by script', () => {
    expect(base.limits).toMatchObject({ registryRatePerS: 50, registryBurst: 1_000, tokensRatePerS: 50, tokensBurst: 1_000 });
  });

  it('are read from POWERPLANE_REGISTRY_* and POWERPLANE_TOKENS_*, where a rate of 0 turns a limit off', () => {
    const env = readEnv({
      POWERPLANE_REGISTRY_RATE_PER_S: '0',
      POWERPLANE_REGISTRY_BURST: '5',
      POWERPLANE_TOKENS_RATE_PER_S: '2',
      POWERPLANE_TOKENS_BURST: '20',
    });
    expect(toConfig(env).limits).toMatchObject({ registryRatePerS: 0, registryBurst: 5, tokensRatePerS: 2, tokensBurst: 20 });
  });

  it.each([
    ['POWERPLANE_REGISTRY_RATE_PER_S', '-1'],
    ['POWERPLANE_REGISTRY_BURST', '0'],
    ['POWERPLANE_TOKENS_RATE_PER_S', 'fast'],
    ['POWERPLANE_TOKENS_BURST', '1.5'],
  ])('refuses %s=%s, naming the variable', (name, value) => {
    expect(() => toConfig(readEnv({ [name]: value }))).toThrow(new RegExp(`^${name} must be a whole number from`));
  });
});

describe('per-principal rate limits', () => {
  const BURST = 3;
  let t: TestServer;
  let dispatch: ReturnType<typeof createClient<typeof DispatchService>>;
  let traderA: string;
  let traderB: string;
  let admin: string;
  let registry: ReturnType<typeof createClient<typeof DeviceRegistryService>>;
  let tokenAdmin: ReturnType<typeof createClient<typeof TokenService>>;
  const headers = (secret: string) => ({ headers: { authorization: `Bearer ${secret}` } });
  let minute = 0;
  // Each call publishes a new point, so every one is real work for the handler.
  const publish = (secret: string) =>
    dispatch.publishMarketData(
      { points: [{ time: timestampFromMs(Date.UTC(2026, 0, 1) + minute++ * 60_000), type: 'niv_estimate', value: 10 }] },
      headers(secret),
    );

  /** Calls until the first refusal (bounded): how many passed and the refusal. */
  async function untilRefused(call: () => Promise<unknown>): Promise<{ passed: number; refusal: ConnectError | undefined }> {
    for (let passed = 0; passed < 50; passed++) {
      const result = await outcome(call());
      if (result instanceof ConnectError && result.code === Code.ResourceExhausted) return { passed, refusal: result };
    }
    return { passed: 50, refusal: undefined };
  }

  beforeAll(async () => {
    // One token per second: a burst drains far faster than it refills, whatever the machine.
    t = await startTestServer('pglite', {
      auth: { ...base.auth, enabled: true, adminTokenFile: undefined },
      limits: {
        ...base.limits,
        ...{ marketDataRatePerS: 1, marketDataBurst: BURST, dispatchRatePerS: 1, dispatchBurst: BURST },
        ...{ registryRatePerS: 1, registryBurst: BURST, tokensRatePerS: 1, tokensBurst: BURST },
      },
    });
    dispatch = createClient(DispatchService, createGrpcTransport({ baseUrl: t.baseUrl }));
    registry = createClient(DeviceRegistryService, createGrpcTransport({ baseUrl: t.baseUrl }));
    tokenAdmin = createClient(TokenService, createGrpcTransport({ baseUrl: t.baseUrl }));
    const tokens = createTokenStore({ db: (await t.testDatabase.open()).db, cacheMs: 60_000 });
    const scopes = ['marketdata:write', 'dispatch:write', 'control:write'];
    traderA = (await tokens.create({ name: 'trader a', scopes }, 'limits test')).secret;
    traderB = (await tokens.create({ name: 'trader b', scopes }, 'limits test')).secret;
    admin = (await tokens.create({ name: 'fleet script', scopes: ['registry:admin', 'tokens:admin'] }, 'limits test')).secret;
  });
  afterAll(async () => {
    await t?.stop();
  });

  it(
    'refuses a burst over the limit with RESOURCE_EXHAUSTED, RetryInfo and retry-after, spares another principal, ' +
      'and accepts again after the advised delay',
    async () => {
      const { passed, refusal } = await untilRefused(() => publish(traderA));
      expect(passed).toBeGreaterThanOrEqual(BURST);
      expect(refusal).toBeDefined();
      expect(refusal!.rawMessage).toMatch(
        /^rate limit for market data publishing exceeded \(1 per second with bursts of 3 per caller\) - retry after \d+ ms$/,
      );
      const [retryInfo] = refusal!.findDetails(RetryInfoSchema);
      const delayMs = Number(retryInfo!.retryDelay!.seconds) * 1000 + retryInfo!.retryDelay!.nanos / 1e6;
      expect(delayMs).toBeGreaterThan(0);
      expect(delayMs).toBeLessThanOrEqual(1000);
      expect(refusal!.metadata.get('retry-after')).toBe('1');

      // Another principal has its own bucket.
      expect(await publish(traderB)).toMatchObject({ storedCount: 1 });
      // The same principal, after waiting what RetryInfo said, is served again.
      await sleep(delayMs);
      expect(await publish(traderA)).toMatchObject({ storedCount: 1 });
    },
  );

  it('limits dispatch writes in their own bucket, before the handler runs', async () => {
    // The market data bucket of trader B is not empty, and its dispatch bucket is separate:
    // unknown-site calls reach the handler (NOT_FOUND) until the dispatch burst is spent.
    const codes: Code[] = [];
    const { refusal } = await untilRefused(async () => {
      const result = await outcome(dispatch.setSiteConfig({ config: { site: 'nowhere' } }, headers(traderB)));
      if (result instanceof ConnectError) codes.push(result.code);
      return result;
    });
    expect(refusal?.rawMessage).toMatch(/^rate limit for dispatch writes exceeded/);
    expect(codes.length).toBeGreaterThanOrEqual(BURST + 1);
    expect(new Set(codes.slice(0, BURST))).not.toContain(Code.ResourceExhausted);
    expect(codes.at(-1)).toBe(Code.ResourceExhausted);
    // The refusal is audited as refused, never as a requested change.
    const rows = (await createAuditLog({ db: t.server.database.db }).list({ limit: 500 })).filter(
      (r) => r.method === 'powerplane.v1.DispatchService/SetSiteConfig',
    );
    expect(rows.filter((r) => r.phase === 'refused' && r.code === 'ResourceExhausted')).toHaveLength(1);
    expect(rows.filter((r) => r.phase === 'requested')).toHaveLength(codes.length - 1);
  });

  it('limits registry writes and token administration per caller, each in its own bucket, before the handler runs', async () => {
    // Unknown ids reach the handlers (NOT_FOUND) until a bucket is spent.
    const codesOf = async (call: () => Promise<unknown>) => {
      const codes: Code[] = [];
      const { refusal } = await untilRefused(async () => {
        const result = await outcome(call());
        if (result instanceof ConnectError) codes.push(result.code);
        return result;
      });
      return { codes, refusal };
    };
    const registryWrites = await codesOf(() => registry.deactivateDevice({ id: randomUUID(), reason: 'limits test' }, headers(admin)));
    expect(registryWrites.refusal?.rawMessage).toMatch(
      /^rate limit for registry writes exceeded \(1 per second with bursts of 3 per caller\) - retry after \d+ ms$/,
    );
    expect(registryWrites.refusal?.metadata.get('retry-after')).toBe('1');
    expect(registryWrites.codes.slice(0, BURST)).toEqual(Array(BURST).fill(Code.NotFound));
    // UpdateDevice and CreateDevice draw on the same, now empty, bucket: at most a token
    // refilled meanwhile passes (a bucket of their own would let BURST through).
    expect(
      (await untilRefused(() => registry.updateDevice({ device: { id: randomUUID() }, updateMask: { paths: ['name'] } }, headers(admin))))
        .passed,
    ).toBeLessThan(BURST);
    expect((await untilRefused(() => registry.createDevice({ device: { name: 'x', site: 'x' } }, headers(admin)))).passed).toBeLessThan(
      BURST,
    );

    // Token administration has its own bucket, untouched by the registry writes above.
    const tokenWrites = await codesOf(() => tokenAdmin.revokeToken({ id: randomUUID() }, headers(admin)));
    expect(tokenWrites.refusal?.rawMessage).toMatch(
      /^rate limit for token administration exceeded \(1 per second with bursts of 3 per caller\)/,
    );
    expect(tokenWrites.codes.slice(0, BURST)).toEqual(Array(BURST).fill(Code.NotFound));
    expect(
      (await untilRefused(() => tokenAdmin.createToken({ name: 'one more', scopes: ['tokens:admin'] }, headers(admin)))).passed,
    ).toBeLessThan(BURST);
    // Reads are not limited.
    expect(await tokenAdmin.listTokens({}, headers(admin))).toMatchObject({ tokens: expect.any(Array) });

    // Refusals are audited as refused, never as requested changes.
    const rows = (await createAuditLog({ db: t.server.database.db }).list({ limit: 500 })).filter(
      (r) => r.method === 'powerplane.v1.DeviceRegistryService/DeactivateDevice',
    );
    expect(rows.filter((r) => r.phase === 'refused' && r.code === 'ResourceExhausted')).toHaveLength(1);
    expect(rows.filter((r) => r.phase === 'requested')).toHaveLength(registryWrites.codes.length - 1);
  });

  it('tells a Connect JSON client over HTTP/1.1 with status 429, a retry-after header and the RetryInfo detail', async () => {
    const send = () =>
      fetch(`${t.baseUrl}/powerplane.v1.DispatchService/PublishMarketData`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${traderA}` },
        body: JSON.stringify({
          points: [{ time: new Date(Date.UTC(2026, 1, 1) + minute++ * 60_000).toISOString(), type: 'niv_estimate', value: 1 }],
        }),
      });
    let res = await send();
    for (let i = 0; i < 50 && res.status === 200; i++) res = await send();
    expect(res.status).toBe(429);
    expect(res.headers.get('retry-after')).toBe('1');
    const body = (await res.json()) as { code: string; details: { type: string }[] };
    expect(body.code).toBe('resource_exhausted');
    expect(body.details.map((d) => d.type)).toEqual(['google.rpc.RetryInfo']);
  });

  it('counts refused calls by reason', async () => {
    // Authentication is on, so /metrics needs a token with metrics:read.
    const scraper = (
      await createTokenStore({ db: t.server.database.db, cacheMs: 0 }).create(
        { name: 'prometheus', scopes: ['metrics:read'] },
        'limits test',
      )
    ).secret;
    const text = await (await fetch(`${t.baseUrl}/metrics`, headers(scraper))).text();
    const count = (reason: string) =>
      Number(new RegExp(`^powerplane_rpc_refused_total\\{reason="${reason}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
    expect(count('marketdata_rate')).toBeGreaterThanOrEqual(2);
    expect(count('dispatch_rate')).toBeGreaterThanOrEqual(1);
    expect(count('registry_rate')).toBeGreaterThanOrEqual(3);
    expect(count('tokens_rate')).toBeGreaterThanOrEqual(2);
  });
});

describe('a deadline on every unary call (PostgreSQL)', () => {
  const DEFAULT_TIMEOUT_MS = 300;
  let t: TestServer;
  let locker: pg.Client;

  beforeAll(async () => {
    t = await startTestServer('postgres', { limits: { ...base.limits, defaultTimeoutMs: DEFAULT_TIMEOUT_MS } });
    if (t.testDatabase.config.kind !== 'postgres') throw new Error('expected PostgreSQL');
    locker = new pg.Client({ connectionString: t.testDatabase.config.url });
    await locker.connect();
  });
  afterAll(async () => {
    await locker?.end();
    await t?.stop();
  });

  /** Holds the device table locked, so device reads stall, until the returned function runs. */
  async function lockDevices(): Promise<() => Promise<void>> {
    await locker.query('begin');
    await locker.query('lock table flux.mg_device_registry in access exclusive mode');
    return async () => {
      await locker.query('rollback');
    };
  }

  it('ends a call without a client deadline on a stalled database with DEADLINE_EXCEEDED', async () => {
    const registry = createClient(DeviceRegistryService, createGrpcTransport({ baseUrl: t.baseUrl }));
    const unlock = await lockDevices();
    try {
      const result = await outcome(registry.listDevices({ site: 'any' }));
      expect(result).toBeInstanceOf(ConnectError);
      expect((result as ConnectError).code).toBe(Code.DeadlineExceeded);
      expect((result as ConnectError).rawMessage).toContain(`default deadline of ${DEFAULT_TIMEOUT_MS} ms`);
    } finally {
      await unlock();
    }
    // The same call without the lock is served: the deadline ended one call, nothing else.
    expect(await registry.listDevices({ site: 'any' })).toMatchObject({ devices: [] });
  });

  it('honours a client deadline longer than the default', async () => {
    const registry = createClient(DeviceRegistryService, createGrpcTransport({ baseUrl: t.baseUrl }));
    const unlock = await lockDevices();
    const call = outcome(registry.listDevices({ site: 'any' }, { timeoutMs: 20_000 }));
    // Hold the lock for several default deadlines; the call must outlive them all.
    await sleep(DEFAULT_TIMEOUT_MS * 4);
    await unlock();
    expect(await call).toMatchObject({ devices: [] });
  });

  it('refuses a client deadline beyond the maximum with INVALID_ARGUMENT', async () => {
    const registry = createClient(DeviceRegistryService, createGrpcTransport({ baseUrl: t.baseUrl }));
    const result = await outcome(registry.listDevices({ site: 'any' }, { timeoutMs: base.limits.maxTimeoutMs + 1_000 }));
    expect(result).toBeInstanceOf(ConnectError);
    expect((result as ConnectError).code).toBe(Code.InvalidArgument);
  });

  it('leaves long-lived streams without a deadline', async () => {
    const health = createClient(Health, createGrpcTransport({ baseUrl: t.baseUrl }));
    const controller = new AbortController();
    const statuses: HealthCheckResponse_ServingStatus[] = [];
    // Ended by aborting, not by `break`: connect-node's client leaves the HTTP/2 stream
    // open on a break, and the server's stop would then wait out its grace period.
    const watching = (async () => {
      for await (const res of health.watch({ service: '' }, { signal: controller.signal })) {
        statuses.push(res.status);
        if (statuses.length === 2) controller.abort();
      }
    })().catch((err: unknown) => {
      if (ConnectError.from(err).code !== Code.Canceled) throw err;
    });
    for (let i = 0; i < 100 && statuses.length === 0; i++) await sleep(20);
    await sleep(DEFAULT_TIMEOUT_MS * 4);
    t.server.health.setAll(ServingStatus.NOT_SERVING);
    await watching;
    t.server.health.setAll(ServingStatus.SERVING);
    expect(statuses).toEqual([HealthCheckResponse_ServingStatus.SERVING, HealthCheckResponse_ServingStatus.NOT_SERVING]);
  });
});
