import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeviceRegistryService, DeviceType, RegisterProfile } from '../../gen/powerplane/v1/devices_pb.ts';
import { TelemetryService } from '../../gen/powerplane/v1/telemetry_pb.ts';
import { bearer } from '../../src/auth/bearer.ts';
import { createTokenStore } from '../../src/auth/tokens.ts';
import { createAgent, type Agent } from '../../src/agent/agent.ts';
import { parseSiteConfig } from '../../src/agent/agent-config.ts';
import { toConfig } from '../../src/config.ts';
import { startSimulator } from '../../src/simulator/simulator.ts';
import { silentLog } from '../support/databases.ts';
import { createTestCa, type Issued, type TestCa } from '../support/certificates.ts';
import { registerBattery } from '../support/fleet.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

describe('an agent authenticated by its client certificate (mutual TLS)', () => {
  let ca: TestCa;
  let agent: Issued;
  let t: TestServer;
  let baseUrl: string;
  const ids: Record<string, string> = {};
  const tls = (client?: Issued) =>
    createGrpcTransport({ baseUrl, nodeOptions: { ca: ca.cert, ...(client ? { cert: client.cert, key: client.key } : {}) } });

  beforeAll(async () => {
    ca = createTestCa('Powerplane agents CA');
    const server = ca.issue('server', 'powerplane', { altNames: ['IP:127.0.0.1'], usage: 'serverAuth' });
    agent = ca.issue('agent-a', 'agent-7', { altNames: ['URI:urn:powerplane:site:site-a'], usage: 'clientAuth' });
    const auth = toConfig({ dataDir: 'memory://' }).auth;
    t = await startTestServer('pglite', {
      auth,
      tls: { certFile: server.certFile, keyFile: server.keyFile, clientCaFile: ca.certFile, clientAuth: 'optional' },
    });
    baseUrl = `https://127.0.0.1:${t.server.address.port}`;
    const { secret } = await createTokenStore({ db: t.server.database.db, cacheMs: 0 }).create(
      { name: 'admin', scopes: ['registry:admin'] },
      'test',
    );
    const registry = createClient(
      DeviceRegistryService,
      createGrpcTransport({ baseUrl, nodeOptions: { ca: ca.cert }, interceptors: [bearer(secret)] }),
    );
    ids.a = await registerBattery(registry, 'site-a', 'bess-a', { host: '127.0.0.1', port: 1, unitId: 1 });
    ids.b = await registerBattery(registry, 'site-b', 'bess-b', { host: '127.0.0.1', port: 1, unitId: 2 });
  });
  afterAll(async () => {
    await t?.stop();
    ca?.remove();
  });

  it("writes its own site's readings, and nothing else, with no token", async () => {
    const telemetry = createClient(TelemetryService, tls(agent));
    const reading = (deviceId: string) => ({ deviceId, time: timestampFromMs(Date.now() - 1_000), soePercent: 50 });
    const res = await telemetry.writeReadings({ batch: { sequence: 1n, bessReadings: [reading(ids.a!), reading(ids.b!)] } });
    expect(res.ack).toMatchObject({ storedCount: 1, rejectedCount: 1 });
    expect(res.ack?.rejections[0]).toMatchObject({
      deviceId: ids.b,
      field: 'device_id',
      reason: 'names no registered device at the sites this caller may write',
    });

    const registry = createClient(DeviceRegistryService, tls(agent));
    const denied = await registry.listDevices({}).catch((e: unknown) => e);
    expect(ConnectError.from(denied)).toMatchObject({ code: Code.PermissionDenied, rawMessage: expect.stringContaining('readings:read') });
  });

  it('is unauthenticated over TLS without a certificate or a token', async () => {
    const err = await createClient(TelemetryService, tls())
      .writeReadings({ batch: { sequence: 1n } })
      .catch((e: unknown) => e);
    expect(ConnectError.from(err).code).toBe(Code.Unauthenticated);
  });
});

describe('an edge agent streaming over mutual TLS with no token', () => {
  it('stores its readings: the certificate alone names its site', async () => {
    const ca = createTestCa('Powerplane agent stream CA');
    const server = ca.issue('server', 'powerplane', { altNames: ['IP:127.0.0.1'], usage: 'serverAuth' });
    const agentCert = ca.issue('agent', 'site-m', { altNames: ['DNS:agent.site-m.example'], usage: 'clientAuth' });
    const sim = await startSimulator({ meters: 1 });
    const dir = await mkdtemp(path.join(os.tmpdir(), 'powerplane-mtls-agent-'));
    const auth = toConfig({ dataDir: 'memory://' }).auth;
    const t = await startTestServer('pglite', {
      auth,
      tls: { certFile: server.certFile, keyFile: server.keyFile, clientCaFile: ca.certFile, clientAuth: 'require' },
    });
    let agent: Agent | undefined;
    try {
      const baseUrl = `https://127.0.0.1:${t.server.address.port}`;
      const { secret } = await createTokenStore({ db: t.server.database.db, cacheMs: 0 }).create(
        { name: 'admin', scopes: ['registry:admin'] },
        'test',
      );
      // `require`: even the admin needs a client certificate to connect.
      const registry = createClient(
        DeviceRegistryService,
        createGrpcTransport({
          baseUrl,
          nodeOptions: { ca: ca.cert, cert: agentCert.cert, key: agentCert.key },
          interceptors: [bearer(secret)],
        }),
      );
      const meter = sim.meters[0]!;
      const { device } = await registry.createDevice({
        device: {
          name: 'grid',
          site: 'site-m',
          type: DeviceType.METER,
          spec: { case: 'meter', value: { modbus: { endpoint: meter.endpoint, registerProfile: RegisterProfile.SUNSPEC } } },
        },
      });
      agent = createAgent(
        parseSiteConfig({
          site: 'site-m',
          server: { url: baseUrl, tls: { caFile: ca.certFile, certFile: agentCert.certFile, keyFile: agentCert.keyFile } },
          devices: [{ deviceId: device!.id, kind: 'meter', endpoint: meter.endpoint, pollingIntervalMs: 200 }],
          spool: { dir },
          batch: { maxReadings: 5, maxDelayMs: 200 },
        }),
        { log: silentLog },
      );
      await agent.start();
      await expect
        .poll(
          async () =>
            (await sql<{ n: number }>`select count(*)::int as n from flux.mg_meter_readings`.execute(t.server.database.db)).rows[0]!.n,
          { timeout: 15_000, interval: 200 },
        )
        .toBeGreaterThanOrEqual(3);
      expect(agent.stats().stream.acks).toBeGreaterThan(0);
    } finally {
      await agent?.stop({ drainMs: 0 });
      await t.stop();
      await sim.stop();
      await rm(dir, { recursive: true, force: true });
      ca.remove();
    }
  });
});
