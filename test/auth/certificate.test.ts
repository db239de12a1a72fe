import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeviceRegistryService } from '../../gen/powerplane/v1/devices_pb.ts';
import { TelemetryService } from '../../gen/powerplane/v1/telemetry_pb.ts';
import { bearer } from '../../src/auth/bearer.ts';
import { createTokenStore } from '../../src/auth/tokens.ts';
import { toConfig } from '../../src/config.ts';
import { createTestCa, type Issued, type TestCa } from '../support/certificates.ts';
import { registerBattery } from '../support/fleet.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

describe('an agent authenticated by its client certificate (mutual TLS)', () => {
  let ca: TestCa;
  let agent: Issued;
  let t: TestServer;
  let baseUrl: string;
  const ids: Record<string, string> = {};
  const tls = (client?: Issued) => createGrpcTransport({ baseUrl, nodeOptions: { ca: ca.cert, ...(client ? { cert: client.cert, key: client.key } : {}) } });

  beforeAll(async () => {
    ca = createTestCa('Powerplane agents CA');
    const server = ca.issue('server', 'powerplane', { altNames: ['IP:127.0.0.1'], usage: 'serverAuth' });
    agent = ca.issue('agent-a', 'agent-7', { altNames: ['URI:urn:powerplane:site:site-a'], usage: 'clientAuth' });
    const auth = toConfig({ dataDir: 'memory://' }).auth;
    t = await startTestServer('pglite', { auth, tls: { certFile: server.certFile, keyFile: server.keyFile, clientCaFile: ca.certFile, clientAuth: 'optional' } });
    baseUrl = `https://127.0.0.1:${t.server.address.port}`;
    const { secret } = await createTokenStore({ db: t.server.database.db, cacheMs: 0 }).create({ name: 'admin', scopes: ['registry:admin'] }, 'test');
    const registry = createClient(DeviceRegistryService, createGrpcTransport({ baseUrl, nodeOptions: { ca: ca.cert }, interceptors: [bearer(secret)] }));
    ids.a = await registerBattery(registry, 'site-a', 'bess-a', { host: '127.0.0.1', port: 1, unitId: 1 });
    ids.b = await registerBattery(registry, 'site-b', 'bess-b', { host: '127.0.0.1', port: 1, unitId: 2 });
  });
  afterAll(async () => {
    await t?.stop();
    ca?.remove();
  });

  it('writes its own site\'s readings, and nothing else, with no token', async () => {
    const telemetry = createClient(TelemetryService, tls(agent));
    const reading = (deviceId: string) => ({ deviceId, time: timestampFromMs(Date.now() - 1_000), soePercent: 50 });
    const res = await telemetry.writeReadings({ batch: { sequence: 1n, bessReadings: [reading(ids.a!), reading(ids.b!)] } });
    expect(res.ack).toMatchObject({ storedCount: 1, rejectedCount: 1 });
    expect(res.ack?.rejections[0]).toMatchObject({ deviceId: ids.b, field: 'device_id', reason: expect.stringContaining('site-b') });

    const registry = createClient(DeviceRegistryService, tls(agent));
    const denied = await registry.listDevices({}).catch((e: unknown) => e);
    expect(ConnectError.from(denied)).toMatchObject({ code: Code.PermissionDenied, rawMessage: expect.stringContaining('readings:read') });
  });

  it('is unauthenticated over TLS without a certificate or a token', async () => {
    const err = await createClient(TelemetryService, tls()).writeReadings({ batch: { sequence: 1n } }).catch((e: unknown) => e);
    expect(ConnectError.from(err).code).toBe(Code.Unauthenticated);
  });
});
