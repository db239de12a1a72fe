import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from '@connectrpc/connect-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Health, HealthCheckResponse_ServingStatus as Status } from '../../gen/grpc/health/v1/health_pb.ts';
import { DeviceRegistryService } from '../../gen/powerplane/v1/devices_pb.ts';
import { toConfig } from '../../src/config.ts';
import { startServer } from '../../src/server/server.ts';
import { openDatabase } from '../../src/storage/database.ts';
import { createTestDatabase, silentLog } from '../support/databases.ts';
import { startTestServer, type TestServer } from '../support/server.ts';
import { startTcpProxy } from '../support/tcp-proxy.ts';
import { waitFor } from '../support/wait.ts';

describe('one port for every protocol', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer('pglite');
  });
  afterAll(() => t?.stop());

  it('answers Connect JSON over plain HTTP/1.1, as curl sends it', async () => {
    const res = await fetch(`${t.baseUrl}/powerplane.v1.DeviceRegistryService/ListDevices`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({});
  });

  it('answers a Connect JSON error with the code and the field', async () => {
    const res = await fetch(`${t.baseUrl}/powerplane.v1.DeviceRegistryService/GetDevice`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ id: 'abc' }),
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ code: 'invalid_argument', message: 'id must be a UUID (got "abc")' });
  });

  it.each([
    // protobuf-es names the enum rather than the field of an unknown enum name.
    ['an unknown device type in a filter', 'ListDevices', { type: 'bess' }, 'DeviceType', '"bess"'],
    [
      'an unknown device type on create',
      'CreateDevice',
      { device: { name: 'm1', site: 's', type: 'DEVICE_TYPE_FOO' } },
      'DeviceType',
      'DEVICE_TYPE_FOO',
    ],
    ['a misspelt field', 'ListDevices', { sitee: 'x' }, 'sitee', 'sitee'],
  ])('refuses Connect JSON with %s, naming it, and stores nothing', async (_case, method, body, field, value) => {
    const res = await fetch(`${t.baseUrl}/powerplane.v1.DeviceRegistryService/${method}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    expect(res.status).toBe(400);
    const error = (await res.json()) as { code: string; message: string };
    expect(error.code).toBe('invalid_argument');
    expect(error.message).toContain(field);
    expect(error.message).toContain(value);
    const list = await fetch(`${t.baseUrl}/powerplane.v1.DeviceRegistryService/ListDevices`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    expect(await list.json()).toEqual({});
  });

  it('answers gRPC-Web over HTTP/1.1 and Connect over HTTP/2', async () => {
    for (const transport of [
      createGrpcWebTransport({ baseUrl: t.baseUrl, httpVersion: '1.1' }),
      createConnectTransport({ baseUrl: t.baseUrl, httpVersion: '2' }),
    ]) {
      const client = createClient(DeviceRegistryService, transport);
      const res = await client.listDevices({});
      expect(res.devices).toEqual([]);
    }
  });

  it('serves /healthz and Prometheus /metrics beside the RPCs', async () => {
    const health = await fetch(`${t.baseUrl}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.text()).toBe('SERVING\n');
    const metrics = await (await fetch(`${t.baseUrl}/metrics`)).text();
    expect(metrics).toMatch(
      /powerplane_rpc_calls_total\{service="powerplane.v1.DeviceRegistryService",method="ListDevices",code="ok"\} \d+/,
    );
    expect(metrics).toContain('powerplane_process_resident_memory_bytes');
    expect((await fetch(`${t.baseUrl}/nope`)).status).toBe(404);
  });
});

describe('limits', () => {
  let t: TestServer;
  beforeAll(async () => {
    const defaults = toConfig({});
    t = await startTestServer('pglite', { limits: { ...defaults.limits, maxMessageBytes: 2048 } });
  });
  afterAll(() => t?.stop());

  it('refuses a request larger than the maximum message size', async () => {
    const client = createClient(DeviceRegistryService, createGrpcTransport({ baseUrl: t.baseUrl }));
    const err = await client.listDevices({ site: 'x'.repeat(10_000) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.ResourceExhausted);
  });
});

describe('health follows the database', () => {
  it('goes NOT_SERVING while PostgreSQL is unreachable and SERVING when it is back', async () => {
    const testDatabase = await createTestDatabase('postgres');
    const url = new URL(testDatabase.config.kind === 'postgres' ? testDatabase.config.url : '');
    const proxy = await startTcpProxy({ host: url.hostname, port: Number(url.port) });
    url.port = String(proxy.port);
    const database = await openDatabase({ kind: 'postgres', url: url.toString() }, { log: silentLog, poolSize: 2 });
    const config = { ...toConfig({ listen: '127.0.0.1:0', auth: 'off' }), healthProbeIntervalMs: 100 };
    const server = await startServer(config, { log: silentLog, database });
    const baseUrl = `http://127.0.0.1:${server.address.port}`;
    const health = createClient(Health, createGrpcTransport({ baseUrl }));
    const registry = createClient(DeviceRegistryService, createGrpcTransport({ baseUrl }));
    try {
      expect((await health.check({})).status).toBe(Status.SERVING);
      proxy.cut();
      await waitFor('NOT_SERVING', async () => (await health.check({})).status === Status.NOT_SERVING, 5_000);
      expect((await fetch(`${baseUrl}/healthz`)).status).toBe(503);
      const err = await registry.listDevices({}).catch((e: unknown) => e);
      expect((err as ConnectError).code).toBe(Code.Unavailable);
      expect((err as ConnectError).rawMessage).not.toMatch(/ECONN|127\.0\.0\.1|select/);

      proxy.restore();
      await waitFor('SERVING again', async () => (await health.check({})).status === Status.SERVING, 5_000);
      expect((await registry.listDevices({})).devices).toEqual([]);
    } finally {
      await server.stop();
      await database.close();
      await proxy.close();
      await testDatabase.drop();
    }
  });
});

describe('graceful stop', () => {
  it('reports NOT_SERVING to health watchers before it closes, and stops only once', async () => {
    const t = await startTestServer('pglite');
    const health = createClient(Health, createGrpcTransport({ baseUrl: t.baseUrl }));
    const seen: Status[] = [];
    const watching = (async () => {
      try {
        for await (const res of health.watch({ service: '' })) {
          seen.push(res.status);
          if (seen.length === 1) void t.stop();
        }
      } catch {
        // The stream may end with an error when the server closes it; what was seen counts.
      }
    })();
    await watching;
    expect(seen).toEqual([Status.SERVING, Status.NOT_SERVING]);
    await t.stop();
    await expect(fetch(`${t.baseUrl}/healthz`)).rejects.toThrow();
  });
});
