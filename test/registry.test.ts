import { create } from '@bufbuild/protobuf';
import { Code, ConnectError, createClient, type Client } from '@connectrpc/connect';
import { createConnectTransport, createGrpcTransport } from '@connectrpc/connect-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeviceRegistryService, DeviceSchema, DeviceType, RegisterProfile, type Device } from '../gen/powerplane/v1/devices_pb.ts';
import { encodePageToken } from '../src/page-token.ts';
import { ENGINES } from './support/databases.ts';
import { startTestServer, type TestServer } from './support/server.ts';

type RegistryClient = Client<typeof DeviceRegistryService>;
type DeviceOverrides = Partial<Omit<Device, '$typeName' | '$unknown'>>;

function battery(overrides: DeviceOverrides = {}, bess: Record<string, unknown> = {}, endpoint: Record<string, unknown> = {}): Device {
  return create(DeviceSchema, {
    name: 'bess-1',
    site: 'site-a',
    type: DeviceType.BESS,
    spec: {
      case: 'bess',
      value: {
        ratedChargePowerKw: 500,
        ratedDischargePowerKw: 500,
        capacityKwh: 1000,
        minSoePercent: 10,
        maxSoePercent: 90,
        inverterBlockCount: 4,
        rampRateKwPerS: 50,
        modbus: {
          endpoint: { host: '127.0.0.1', port: 1502, unitId: 3, ...endpoint },
          registerProfile: RegisterProfile.SUNSPEC,
        },
        ...bess,
      },
    },
    metadata: { location: 'WLCE', firmware_version: '2.1.3' },
    ...overrides,
  });
}

function meter(overrides: DeviceOverrides = {}): Device {
  return create(DeviceSchema, {
    name: 'meter-1',
    site: 'site-a',
    type: DeviceType.METER,
    spec: { case: 'meter', value: { modbus: { endpoint: { host: 'meter.local' }, registerProfile: RegisterProfile.SUNSPEC } } },
    ...overrides,
  });
}

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

describe.each(ENGINES)('device registry on %s', (engine) => {
  let t: TestServer;
  const clients: Record<string, RegistryClient> = {};

  beforeAll(async () => {
    t = await startTestServer(engine);
    clients.grpc = createClient(DeviceRegistryService, createGrpcTransport({ baseUrl: t.baseUrl }));
    clients.connect = createClient(DeviceRegistryService, createConnectTransport({ baseUrl: t.baseUrl, httpVersion: '1.1' }));
  });
  afterAll(() => t?.stop());

  async function countDevices(): Promise<number> {
    const { devices } = await clients.grpc!.listDevices({ pageSize: 1000 });
    return devices.length;
  }

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

  it('applies the documented defaults for zero values', async () => {
    const { device } = await clients.grpc!.createDevice({
      device: battery(
        { site: 'defaults' },
        { minSoePercent: 0, maxSoePercent: 0, inverterBlockCount: 0, reversionTimeoutS: 0 },
        { port: 0, unitId: 0 },
      ),
    });
    const spec = device!.spec.case === 'bess' ? device!.spec.value : undefined;
    expect(spec?.maxSoePercent).toBe(100);
    expect(spec?.inverterBlockCount).toBe(1);
    expect(spec?.reversionTimeoutS).toBe(30);
    expect(spec?.modbus?.endpoint).toMatchObject({ port: 502, unitId: 1 });
    expect(spec?.modbus?.pollingIntervalMs).toBe(1000);
  });

  it('filters by site, type and active flag and pages through the list', async () => {
    const site = 'paging';
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await clients.grpc!.createDevice({ device: battery({ site, name: `b${i}` }) })).device!.id);
    const meterId = (await clients.grpc!.createDevice({ device: meter({ site }) })).device!.id;
    await clients.grpc!.deactivateDevice({ id: ids[4]! });

    const seen: string[] = [];
    let pageToken = '';
    for (let pages = 0; pages < 10; pages++) {
      const page = await clients.grpc!.listDevices({ site, type: DeviceType.BESS, active: true, pageSize: 2, pageToken });
      expect(page.devices.length).toBeLessThanOrEqual(2);
      seen.push(...page.devices.map((d) => d.id));
      pageToken = page.nextPageToken;
      if (pageToken === '') break;
    }
    expect(seen).toEqual(ids.slice(0, 4));
    const inactive = await clients.grpc!.listDevices({ site, active: false });
    expect(inactive.devices.map((d) => d.id)).toEqual([ids[4]]);
    const meters = await clients.grpc!.listDevices({ site, type: DeviceType.METER });
    expect(meters.devices.map((d) => d.id)).toEqual([meterId]);
  });

  it('refuses a page token made for other filters', async () => {
    const site = 'token-filters';
    for (let i = 0; i < 3; i++) await clients.grpc!.createDevice({ device: battery({ site, name: `b${i}` }) });
    const page = await clients.grpc!.listDevices({ site, pageSize: 1 });
    expect(page.nextPageToken).not.toBe('');
    await expectCode(
      clients.grpc!.listDevices({ site: 'other', pageSize: 1, pageToken: page.nextPageToken }),
      Code.InvalidArgument,
      'page_token',
    );
    await expectCode(clients.grpc!.listDevices({ pageToken: 'not-a-token!' }), Code.InvalidArgument, 'page_token');
    const edited = encodePageToken(['site', 'name', 'not-a-uuid'], {});
    await expectCode(clients.grpc!.listDevices({ pageToken: edited }), Code.InvalidArgument, 'page_token');
  });

  it('updates the fields named in the mask and validates the result', async () => {
    const { device } = await clients.grpc!.createDevice({ device: battery({ site: 'update' }) });
    const changed = battery({ id: device!.id, name: 'renamed', site: 'ignored' }, { ratedChargePowerKw: 250 });
    const { device: updated } = await clients.grpc!.updateDevice({ device: changed, updateMask: { paths: ['name', 'bess'] } });
    expect(updated?.name).toBe('renamed');
    expect(updated?.site).toBe('update');
    expect(updated?.spec.case === 'bess' && updated.spec.value.ratedChargePowerKw).toBe(250);

    await expectCode(
      clients.grpc!.updateDevice({ device: battery({ id: device!.id }, { minSoePercent: 95 }), updateMask: { paths: ['bess'] } }),
      Code.InvalidArgument,
      'device.bess.min_soe_percent',
    );
    await expectCode(
      clients.grpc!.updateDevice({ device: battery({ id: device!.id }), updateMask: { paths: ['type'] } }),
      Code.InvalidArgument,
      'update_mask',
      'type',
    );
    await expectCode(
      clients.grpc!.updateDevice({ device: battery({ id: device!.id }), updateMask: { paths: [] } }),
      Code.InvalidArgument,
      'update_mask',
    );
    expect((await clients.grpc!.getDevice({ id: device!.id })).device?.name).toBe('renamed');
  });

  it('deactivates a device and keeps it readable', async () => {
    const { device } = await clients.grpc!.createDevice({ device: meter({ site: 'deactivate' }) });
    const { device: inactive } = await clients.grpc!.deactivateDevice({ id: device!.id });
    expect(inactive?.active).toBe(false);
    expect((await clients.grpc!.getDevice({ id: device!.id })).device?.active).toBe(false);
    const again = await clients.grpc!.deactivateDevice({ id: device!.id });
    expect(again.device?.active).toBe(false);
  });

  it('returns the first device for a retried request id and refuses the id with another payload', async () => {
    const request = { device: battery({ site: 'idempotent' }), requestId: 'create-42' };
    const first = await clients.grpc!.createDevice(request);
    const retry = await clients.connect!.createDevice(request);
    expect(retry.device).toEqual(first.device);
    await expectCode(
      clients.grpc!.createDevice({ device: battery({ site: 'idempotent', name: 'other' }), requestId: 'create-42' }),
      Code.AlreadyExists,
      'request_id',
    );
    expect((await clients.grpc!.listDevices({ site: 'idempotent' })).devices).toHaveLength(1);
  });

  it('creates one device for concurrent calls with one request id, and refuses a concurrent other payload', async () => {
    const request = { device: battery({ site: 'concurrent' }), requestId: 'create-concurrent' };
    const results = await Promise.all(Array.from({ length: 5 }, () => clients.grpc!.createDevice(request)));
    expect(new Set(results.map((r) => r.device!.id)).size).toBe(1);
    const other = await Promise.allSettled([
      clients.grpc!.createDevice({ device: battery({ site: 'concurrent', name: 'first' }), requestId: 'create-race' }),
      clients.grpc!.createDevice({ device: battery({ site: 'concurrent', name: 'second' }), requestId: 'create-race' }),
    ]);
    expect(other.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const refused = other.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect(ConnectError.from(refused.reason).code).toBe(Code.AlreadyExists);
    expect((await clients.grpc!.listDevices({ site: 'concurrent' })).devices).toHaveLength(2);
  });

  // [case, request, field named, value shown as `(got …)`]
  const badCreates: Array<[string, () => Device, string, string]> = [
    ['a missing name', () => battery({ name: '' }), 'device.name', '(got "")'],
    ['a missing site', () => battery({ site: '  ' }), 'device.site', '(got "  ")'],
    ['an unspecified type', () => battery({ type: DeviceType.UNSPECIFIED }), 'device.type', 'DEVICE_TYPE_UNSPECIFIED'],
    ['an unknown type number', () => battery({ type: 9 as DeviceType }), 'device.type', '9'],
    ['a spec that does not match the type', () => meter({ type: DeviceType.BESS }), 'device.bess', '(got'],
    ['a negative charge rating', () => battery({}, { ratedChargePowerKw: -5 }), 'device.bess.rated_charge_power_kw', '(got -5)'],
    [
      'a NaN discharge rating',
      () => battery({}, { ratedDischargePowerKw: Number.NaN }),
      'device.bess.rated_discharge_power_kw',
      '(got NaN)',
    ],
    ['a zero capacity', () => battery({}, { capacityKwh: 0 }), 'device.bess.capacity_kwh', '(got 0)'],
    ['min SoE above max SoE', () => battery({}, { minSoePercent: 80, maxSoePercent: 20 }), 'device.bess.min_soe_percent', '(got 80)'],
    ['SoE above 100', () => battery({}, { maxSoePercent: 120 }), 'device.bess.max_soe_percent', '(got 120)'],
    ['a negative ramp rate', () => battery({}, { rampRateKwPerS: -1 }), 'device.bess.ramp_rate_kw_per_s', '(got -1)'],
    ['a port above 65535', () => battery({}, {}, { port: 70000 }), 'device.bess.modbus.endpoint.port', '(got 70000)'],
    ['a unit id above 247', () => battery({}, {}, { unitId: 300 }), 'device.bess.modbus.endpoint.unit_id', '(got 300)'],
    ['a missing Modbus host', () => battery({}, {}, { host: '' }), 'device.bess.modbus.endpoint.host', '(got "")'],
    [
      'a missing register profile',
      () => battery({}, { modbus: { endpoint: { host: 'x' } } }),
      'device.bess.modbus.register_profile',
      '(got',
    ],
    [
      'a custom profile without a register map',
      () => battery({}, { modbus: { endpoint: { host: 'x' }, registerProfile: RegisterProfile.CUSTOM } }),
      'device.bess.modbus.register_map',
      '(got',
    ],
    ['metadata using a reserved key', () => battery({ metadata: { bess: 1 } }), 'device.metadata.bess', '(got'],
  ];

  it.each(badCreates)(
    'rejects %s with INVALID_ARGUMENT naming the field and value, writing nothing',
    async (_case, build, field, value) => {
      const before = await countDevices();
      await expectCode(clients.grpc!.createDevice({ device: build() }), Code.InvalidArgument, field, value);
      expect(await countDevices()).toBe(before);
    },
  );

  it.each([
    ['a missing name', () => battery({ name: '' }), ['name'], 'device.name', '(got "")'],
    ['a negative rating', () => battery({}, { ratedDischargePowerKw: -1 }), ['bess'], 'device.bess.rated_discharge_power_kw', '(got -1)'],
    ['a port out of range', () => battery({}, {}, { port: 65536 }), ['bess'], 'device.bess.modbus.endpoint.port', '(got 65536)'],
  ] as const)('refuses an update with %s naming the field and value, changing nothing', async (_case, build, paths, field, value) => {
    const { device } = await clients.grpc!.createDevice({ device: battery({ site: 'bad-update' }) });
    await expectCode(
      clients.grpc!.updateDevice({ device: { ...build(), id: device!.id }, updateMask: { paths: [...paths] } }),
      Code.InvalidArgument,
      field,
      value,
    );
    expect((await clients.grpc!.getDevice({ id: device!.id })).device).toEqual(device);
  });

  it('stores a custom register map and refuses one with a bad point, naming its path', async () => {
    const registerMap = {
      name: 'vendor-x',
      points: [
        { name: 'soePercent', address: 10, type: 'uint16', scale: 0.1 },
        { name: 'targetPower', address: 20, type: 'int32', unit: 'W', access: 'RW' },
        { name: 'timeout', address: 30, type: 'uint16', unit: 's', access: 'RW' },
      ],
      control: { powerPoint: 'targetPower', timeoutPoint: 'timeout' },
    };
    const modbus = { endpoint: { host: '10.0.0.9' }, registerProfile: RegisterProfile.CUSTOM };
    const { device } = await clients.grpc!.createDevice({
      device: battery({ site: 'custom-map' }, { modbus: { ...modbus, registerMap } }),
    });
    expect(device?.spec.case === 'bess' && device.spec.value.modbus?.registerMap).toEqual(registerMap);

    const bad = { ...registerMap, points: [{ name: 'soePercent', address: 10, type: 'int8' }] };
    const before = await countDevices();
    await expectCode(
      clients.grpc!.createDevice({ device: battery({ site: 'custom-map' }, { modbus: { ...modbus, registerMap: bad } }) }),
      Code.InvalidArgument,
      'device.bess.modbus.register_map.points[0].type',
      'int8',
    );
    expect(await countDevices()).toBe(before);
  });

  it('rejects a request without a device', async () => {
    await expectCode(clients.grpc!.createDevice({}), Code.InvalidArgument, 'device');
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

  it('rejects an out-of-range page size', async () => {
    await expectCode(clients.grpc!.listDevices({ pageSize: 5000 }), Code.InvalidArgument, 'page_size', '5000');
    await expectCode(clients.grpc!.listDevices({ pageSize: -1 }), Code.InvalidArgument, 'page_size');
  });
});
