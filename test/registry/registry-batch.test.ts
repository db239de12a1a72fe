import { createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeviceRegistryService } from '../../gen/powerplane/v1/devices_pb.ts';
import type { ClusterMessage, Notifications } from '../../src/cluster/cluster.types.ts';
import { createNotifications } from '../../src/cluster/notifications.ts';
import { toConfig } from '../../src/config.ts';
import { battery, meter, type RegistryClient } from '../../src/registry/registry.service.fixtures.ts';
import { errorOf } from '../support/api.ts';
import { ENGINES, silentLog } from '../support/databases.ts';
import { startTestServer, type TestServer } from '../support/server.ts';
import { waitFor } from '../support/wait.ts';

/**
 * BatchUpsertDevices through the real server over HTTP/2 gRPC: a batch of the largest
 * size fits the default message limit both ways, one batch takes one token from the
 * registry rate limit whatever its size, and every replica is told once per site a batch
 * changed. What the call answers is tested in memory (`registry.service.batch.test.ts`).
 */

/** `count` batteries spread over `sites` sites, as a fleet file would list them. */
function fleet(count: number, sites: number, prefix = 'bess') {
  return Array.from({ length: count }, (_, i) =>
    battery(
      { site: `site-${i % sites}`, name: `${prefix}-${i}`, metadata: {} },
      {},
      { host: `10.0.${(i >> 8) & 255}.${i & 255}`, port: 502, unitId: 1 + (i % 247) },
    ),
  );
}

describe.each(ENGINES)('BatchUpsertDevices over gRPC on %s', (engine) => {
  let t: TestServer;
  let client: RegistryClient;
  let listener: Notifications;
  const received: ClusterMessage[] = [];
  const markers = new Set<string>();
  let marker = 0;

  /** The change notices another replica receives from the moment `call` starts until a marker sent after it arrives. */
  async function noticesOf(call: () => Promise<unknown>): Promise<ClusterMessage[]> {
    received.length = 0;
    await call();
    const from = `marker-${++marker}`;
    await listener.notify({ k: 'leases', from });
    await waitFor(`marker ${from}`, () => markers.has(from));
    return received.filter((m) => m.k === 'change');
  }

  beforeAll(async () => {
    t = await startTestServer(engine);
    client = createClient(DeviceRegistryService, createGrpcTransport({ baseUrl: t.baseUrl }));
    listener = await createNotifications({ database: await t.testDatabase.open(), replicaId: 'replica-there', log: silentLog });
    listener.subscribe((message) => {
      if (message.from.startsWith('marker-')) markers.add(message.from);
      else received.push(message);
    });
  });
  afterAll(async () => {
    await listener?.close();
    await t?.stop();
  });

  it('takes 10,000 devices in one call at the default message limit, and leaves them alone when they come again', async () => {
    const devices = fleet(10_000, 40, 'big');
    const first = await client.batchUpsertDevices({ devices, requestId: 'big-import' });
    expect([first.createdCount, first.updatedCount, first.unchangedCount]).toEqual([10_000, 0, 0]);
    expect(new Set(first.results.map((r) => r.device!.id)).size).toBe(10_000);
    const again = await client.batchUpsertDevices({ devices });
    expect([again.createdCount, again.updatedCount, again.unchangedCount]).toEqual([0, 0, 10_000]);
    expect(again.results.map((r) => r.device!.id)).toEqual(first.results.map((r) => r.device!.id));
  }, 180_000);

  it('tells other replicas once per site it changed, and nothing when it changed nothing or was refused', async () => {
    const devices = [...fleet(30, 3, 'told'), meter({ site: 'site-meters', name: 'm-1' })];
    const told = await noticesOf(() => client.batchUpsertDevices({ devices }));
    expect(told.map((m) => (m.k === 'change' ? [m.site, m.reason] : [])).sort()).toEqual([
      ['site-0', 'registry'],
      ['site-1', 'registry'],
      ['site-2', 'registry'],
      ['site-meters', 'registry'],
    ]);
    expect(await noticesOf(() => client.batchUpsertDevices({ devices }))).toEqual([]);
    expect(await noticesOf(() => client.batchUpsertDevices({ devices, validateOnly: true }))).toEqual([]);
    const changed = [...devices.slice(0, 30), meter({ site: 'site-meters', name: 'm-1', metadata: { firmware_version: '2' } })];
    expect(await noticesOf(() => client.batchUpsertDevices({ devices: changed }))).toEqual([
      { k: 'change', from: expect.any(String), site: 'site-meters', reason: 'registry' },
    ]);
    const refused = [...devices, battery({ site: 'site-9', name: 'bad' }, { capacityKwh: -1 })];
    let error: { code: string; message: string } | undefined;
    expect(await noticesOf(async () => void (error = await errorOf(client.batchUpsertDevices({ devices: refused }))))).toEqual([]);
    expect(error).toMatchObject({ code: 'InvalidArgument', message: expect.stringMatching(/^devices\[31\]\.bess\.capacity_kwh/) });
  });
});

describe('BatchUpsertDevices and the registry rate limit', () => {
  let t: TestServer;
  let client: RegistryClient;

  beforeAll(async () => {
    // Two registry writes per caller, then none for about 1000 s.
    const limits = { ...toConfig({ listen: '127.0.0.1:0', auth: 'off' }).limits, registryRatePerS: 0.001, registryBurst: 2 };
    t = await startTestServer('pglite', { limits });
    client = createClient(DeviceRegistryService, createGrpcTransport({ baseUrl: t.baseUrl }));
  });
  afterAll(() => t?.stop());

  it('counts a batch of 500 devices as one write', async () => {
    expect((await client.batchUpsertDevices({ devices: fleet(500, 5) })).createdCount).toBe(500);
    expect((await client.batchUpsertDevices({ devices: fleet(500, 5) })).unchangedCount).toBe(500);
    const refused = await errorOf(client.batchUpsertDevices({ devices: fleet(1, 1, 'late') }));
    expect(refused.code).toBe('ResourceExhausted');
    expect(refused.message).toContain('registry writes');
  });
});

describe('BatchUpsertDevices and the message limit', () => {
  let t: TestServer;
  let client: RegistryClient;

  beforeAll(async () => {
    // 64 KiB: 480 of these batteries take about 54 kB as a request and 82 kB as a response.
    const limits = { ...toConfig({ listen: '127.0.0.1:0', auth: 'off' }).limits, maxMessageBytes: 64 * 1024 };
    t = await startTestServer('pglite', { limits });
    client = createClient(DeviceRegistryService, createGrpcTransport({ baseUrl: t.baseUrl }));
  });
  afterAll(() => t?.stop());

  it('refuses a batch whose response would be over the limit before writing it, and takes a smaller one', async () => {
    const refused = await errorOf(client.batchUpsertDevices({ devices: fleet(480, 4), requestId: 'too-big' }));
    expect(refused.code).toBe('ResourceExhausted');
    expect(refused.message).toMatch(/^devices would take \d+ bytes in the response, more than the server's message limit of 65536 bytes/);
    expect(refused.message).toContain('nothing was written');
    expect((await client.listDevices({ pageSize: 1000 })).devices).toEqual([]);
    // The request id was not spent: the same id with a batch that fits goes through.
    const half = await client.batchUpsertDevices({ devices: fleet(240, 4), requestId: 'too-big' });
    expect(half.createdCount).toBe(240);
  });
});
