import path from 'node:path';
import { fromBinary } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema } from '@bufbuild/protobuf/wkt';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENGINES } from '../support/databases.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

/**
 * A plain @grpc/grpc-js client, built from the .proto files by @grpc/proto-loader with no
 * Connect or protobuf-es code, proves the server speaks standard gRPC on the wire.
 */
const PROTO_ROOT = path.resolve(import.meta.dirname, '../../proto');

type Callback<T> = (err: grpc.ServiceError | null, value?: T) => void;
type UnaryClient = Record<string, (req: unknown, metadata: grpc.Metadata, options: grpc.CallOptions, cb: Callback<any>) => void> &
  grpc.Client;

function loadPackage(file: string) {
  const definition = protoLoader.loadSync(file, {
    includeDirs: [PROTO_ROOT],
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  return grpc.loadPackageDefinition(definition) as any;
}

function unary<T>(client: UnaryClient, method: string, req: unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    const deadline = new Date(Date.now() + 5_000);
    client[method]!(req, new grpc.Metadata(), { deadline }, (err, value) => (err ? reject(err) : resolve(value as T)));
  });
}

describe.each(ENGINES)('standard gRPC clients (grpc-js) on %s', (engine) => {
  let t: TestServer;
  let address: string;
  const clients: grpc.Client[] = [];
  const make = <C extends grpc.Client>(Ctor: new (address: string, creds: grpc.ChannelCredentials) => C): C => {
    const client = new Ctor(address, grpc.credentials.createInsecure());
    clients.push(client);
    return client;
  };

  beforeAll(async () => {
    t = await startTestServer(engine);
    address = `127.0.0.1:${t.server.address.port}`;
  });
  afterAll(async () => {
    for (const client of clients) client.close();
    await t?.stop();
  });

  it('creates, lists and fetches a device', async () => {
    const pkg = loadPackage('powerplane/v1/devices.proto');
    const registry = make(pkg.powerplane.v1.DeviceRegistryService) as unknown as UnaryClient;
    const created = await unary<any>(registry, 'CreateDevice', {
      device: {
        name: 'grpc-js battery',
        site: 'interop',
        type: 'DEVICE_TYPE_BESS',
        bess: {
          rated_charge_power_kw: 100,
          rated_discharge_power_kw: 120,
          capacity_kwh: 200,
          max_soe_percent: 95,
          modbus: { endpoint: { host: '127.0.0.1', port: 1502, unit_id: 2 }, register_profile: 'REGISTER_PROFILE_SUNSPEC' },
        },
      },
    });
    expect(created.device.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(created.device.bess.rated_discharge_power_kw).toBe(120);

    const listed = await unary<any>(registry, 'ListDevices', { site: 'interop' });
    expect(listed.devices.map((d: any) => d.id)).toEqual([created.device.id]);

    const fetched = await unary<any>(registry, 'GetDevice', { id: created.device.id });
    expect(fetched.device.name).toBe('grpc-js battery');
    expect(fetched.device.type).toBe('DEVICE_TYPE_BESS');
  });

  it('receives INVALID_ARGUMENT with the field named for bad input', async () => {
    const pkg = loadPackage('powerplane/v1/devices.proto');
    const registry = make(pkg.powerplane.v1.DeviceRegistryService) as unknown as UnaryClient;
    const err = await unary(registry, 'GetDevice', { id: 'nope' }).catch((e: grpc.ServiceError) => e);
    expect((err as grpc.ServiceError).code).toBe(grpc.status.INVALID_ARGUMENT);
    expect((err as grpc.ServiceError).details).toContain('id must be a UUID (got "nope")');
  });

  it('publishes and lists market data through DispatchService', async () => {
    const pkg = loadPackage('powerplane/v1/dispatch.proto');
    const dispatch = make(pkg.powerplane.v1.DispatchService) as unknown as UnaryClient;
    const time = { seconds: String(Math.floor(Date.UTC(2026, 5, 1) / 1000)), nanos: 0 };
    const published = await unary<any>(dispatch, 'PublishMarketData', { points: [{ time, type: 'wholesale_price', value: 72.5 }] });
    expect(published.stored_count).toBe(1);
    const listed = await unary<any>(dispatch, 'ListMarketData', {
      start_time: time,
      end_time: { seconds: String(Number(time.seconds) + 60), nanos: 0 },
    });
    expect(listed.points.map((p: any) => [p.type, p.value])).toEqual([['wholesale_price', 72.5]]);
    const err = (await unary(dispatch, 'GetDispatch', { id: 'x' }).catch((e) => e)) as grpc.ServiceError;
    expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err.details).toContain('id must be a UUID');
  });

  it('checks health for the server and per service, and NOT_FOUND for an unknown one', async () => {
    const pkg = loadPackage('grpc/health/v1/health.proto');
    const health = make(pkg.grpc.health.v1.Health) as unknown as UnaryClient;
    expect(await unary<any>(health, 'Check', { service: '' })).toEqual({ status: 'SERVING' });
    expect(await unary<any>(health, 'Check', { service: 'powerplane.v1.DeviceRegistryService' })).toEqual({ status: 'SERVING' });
    const err = (await unary(health, 'Check', { service: 'no.such.Service' }).catch((e) => e)) as grpc.ServiceError;
    expect(err.code).toBe(grpc.status.NOT_FOUND);
  });

  it('watches health and sees the first status at once', async () => {
    const pkg = loadPackage('grpc/health/v1/health.proto');
    const health = make(pkg.grpc.health.v1.Health) as any;
    const call = health.Watch({ service: 'powerplane.v1.TelemetryService' }, { deadline: new Date(Date.now() + 5_000) });
    const first = await new Promise<any>((resolve, reject) => {
      call.once('data', resolve);
      call.once('error', reject);
    });
    expect(first.status).toBe('SERVING');
    call.cancel();
  });

  it.each(['v1', 'v1alpha'])('lists services and serves descriptors through reflection %s', async (version) => {
    const pkg = loadPackage(`grpc/reflection/${version}/reflection.proto`);
    const reflection = make(pkg.grpc.reflection[version].ServerReflection) as any;
    const call = reflection.ServerReflectionInfo({ deadline: new Date(Date.now() + 5_000) });
    const responses: any[] = [];
    const done = new Promise<void>((resolve, reject) => {
      call.on('data', (r: any) => responses.push(r));
      call.on('end', resolve);
      call.on('error', reject);
    });
    call.write({ list_services: '' });
    call.write({ file_containing_symbol: 'powerplane.v1.DeviceRegistryService' });
    call.write({ file_containing_symbol: 'powerplane.v1.NoSuchThing' });
    call.end();
    await done;

    const services = responses[0].list_services_response.service.map((s: any) => s.name);
    expect(services).toEqual(
      expect.arrayContaining([
        'powerplane.v1.DeviceRegistryService',
        'powerplane.v1.TelemetryService',
        'powerplane.v1.ReadingsService',
        'powerplane.v1.DispatchService',
        'grpc.health.v1.Health',
        `grpc.reflection.${version}.ServerReflection`,
      ]),
    );
    const files = responses[1].file_descriptor_response.file_descriptor_proto.map((bytes: Buffer) =>
      fromBinary(FileDescriptorProtoSchema, bytes),
    );
    expect(files[0].name).toBe('powerplane/v1/devices.proto');
    expect(files[0].service.map((s: any) => s.name)).toContain('DeviceRegistryService');
    expect(files.map((f: any) => f.name)).toContain('google/protobuf/timestamp.proto');
    expect(responses[2].error_response.error_code).toBe(grpc.status.NOT_FOUND);
  });
});
