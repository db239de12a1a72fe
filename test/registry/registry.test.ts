import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { createConnectTransport, createGrpcTransport } from '@connectrpc/connect-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { battery, type RegistryClient } from '../../src/registry/registry.service.fixtures.ts';
import { DeviceRegistryService } from '../../gen/powerplane/v1/devices_pb.ts';
import { ENGINES } from '../support/databases.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

async function expectCode(call: Promise<unknown>, code: Code, ...fragments: string[]): Promise<ConnectError> {
  const err = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ConnectError);
  const connectError = err as ConnectError;
  expect(Code[connectError.code]).toBe(Code[code]);
  for (const fragment of fragments) expect(connectError.rawMessage).toContain(fragment);
  return connectError;
}

/**
 * The registry over real HTTP: gRPC and Connect over HTTP/1.1, and errors whose messages
 * (quotes, values) survive gRPC's header encoding. What the service answers is tested in
 * memory, in `src/registry/registry.service.*.test.ts`.
 */
describe.each(ENGINES)('device registry on %s', (engine) => {
  let t: TestServer;
  const clients: Record<string, RegistryClient> = {};

  beforeAll(async () => {
    t = await startTestServer(engine);
    clients.grpc = createClient(DeviceRegistryService, createGrpcTransport({ baseUrl: t.baseUrl }));
    clients.connect = createClient(DeviceRegistryService, createConnectTransport({ baseUrl: t.baseUrl, httpVersion: '1.1' }));
  });
  afterAll(() => t?.stop());

  it.each(['grpc', 'connect'])('creates, fetches and lists a battery over %s', async (protocol) => {
    const client = clients[protocol]!;
    const site = `site-${protocol}`;
    const { device } = await client.createDevice({ device: battery({ site }) });
    expect(device?.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(device?.active).toBe(true);
    expect(device?.spec.case).toBe('bess');
    expect(device?.metadata).toEqual({ location: 'WLCE', firmware_version: '2.1.3' });

    const fetched = await client.getDevice({ id: device!.id });
    expect(fetched.device).toEqual(device);

    const listed = await client.listDevices({ site });
    expect(listed.devices.map((d) => d.id)).toEqual([device!.id]);
  });

  it('rejects malformed UUIDs and answers NOT_FOUND for unknown ids', async () => {
    await expectCode(clients.grpc!.getDevice({ id: 'not-a-uuid' }), Code.InvalidArgument, 'id', 'UUID', 'not-a-uuid');
    await expectCode(clients.grpc!.deactivateDevice({ id: '123' }), Code.InvalidArgument, 'id', '123');
    await expectCode(
      clients.grpc!.updateDevice({ device: battery({ id: 'x-1' }), updateMask: { paths: ['name'] } }),
      Code.InvalidArgument,
      'device.id',
      'x-1',
    );
    const unknown = '00000000-0000-4000-8000-000000000000';
    await expectCode(clients.grpc!.getDevice({ id: unknown }), Code.NotFound, unknown);
    await expectCode(clients.grpc!.deactivateDevice({ id: unknown }), Code.NotFound, unknown);
    await expectCode(
      clients.grpc!.updateDevice({ device: battery({ id: unknown }), updateMask: { paths: ['name'] } }),
      Code.NotFound,
      unknown,
    );
  });
});
