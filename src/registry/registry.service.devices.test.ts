import { Code, ConnectError } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeviceType, RegisterProfile, type Device } from '../../gen/powerplane/v1/devices_pb.ts';
import { errorOf } from '../../test/support/api.ts';
import { ENGINES } from '../../test/support/databases.ts';
import type { InMemoryApi } from '../../test/support/services.ts';
import { UNRESTRICTED } from '../rpc/principal.ts';
import {
  battery,
  meter,
  relayingMeter,
  serveRegistry,
  SITE_A,
  type RegistryClient,
  type RegistryUnderTest,
} from './registry.service.fixtures.ts';

/**
 * DeviceRegistryService's writes and reads of one device in memory, over the services of
 * `registry.service.fixtures.ts`: creating with defaults, updating by mask, deactivating,
 * retries by request id, every refusal naming its field and value, and what a caller
 * bound to a site may do.
 */

describe.each(ENGINES)('DeviceRegistryService in memory on %s', (engine) => {
  let registry: RegistryUnderTest;
  let api: InMemoryApi;
  let client: RegistryClient;

  beforeAll(async () => {
    registry = await serveRegistry(engine);
    ({ api, client } = registry);
  });
  afterAll(() => registry?.close());

  async function countDevices(): Promise<number> {
    return (await client.listDevices({ pageSize: 1000 })).devices.length;
  }

  it('creates, fetches and lists a battery', async () => {
    const { device } = await client.createDevice({ device: battery({ site: 'happy' }) });
    expect(device?.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(device?.active).toBe(true);
    expect(device?.spec.case).toBe('bess');
    expect(device?.metadata).toEqual({ location: 'WLCE', firmware_version: '2.1.3' });
    expect((await client.getDevice({ id: device!.id })).device).toEqual(device);
    expect((await client.listDevices({ site: 'happy' })).devices).toEqual([device]);
  });

  it('applies the documented defaults for zero values', async () => {
    const { device } = await client.createDevice({
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

  it('updates the fields named in the mask and validates the result', async () => {
    const { device } = await client.createDevice({ device: battery({ site: 'update' }) });
    const changed = battery({ id: device!.id, name: 'renamed', site: 'ignored' }, { ratedChargePowerKw: 250 });
    const { device: updated } = await client.updateDevice({ device: changed, updateMask: { paths: ['name', 'bess'] } });
    expect(updated?.name).toBe('renamed');
    expect(updated?.site).toBe('update');
    expect(updated?.spec.case === 'bess' && updated.spec.value.ratedChargePowerKw).toBe(250);

    const bad = async (request: Parameters<RegistryClient['updateDevice']>[0], ...fragments: string[]) => {
      const err = await errorOf(client.updateDevice(request));
      expect(err.code).toBe('InvalidArgument');
      for (const fragment of fragments) expect(err.message).toContain(fragment);
    };
    await bad(
      { device: battery({ id: device!.id }, { minSoePercent: 95 }), updateMask: { paths: ['bess'] } },
      'device.bess.min_soe_percent',
    );
    await bad({ device: battery({ id: device!.id }), updateMask: { paths: ['type'] } }, 'update_mask', 'type');
    await bad({ device: battery({ id: device!.id }), updateMask: { paths: [] } }, 'update_mask');
    await bad({ device: battery({ id: device!.id }), updateMask: { paths: ['firmware'] } }, 'update_mask', 'firmware');
    await bad({ updateMask: { paths: ['name'] } }, 'device is required');
    expect((await client.getDevice({ id: device!.id })).device).toEqual(updated);
  });

  it('deactivates a device, keeps it readable, and answers a second deactivation the same', async () => {
    const { device } = await client.createDevice({ device: meter({ site: 'deactivate' }) });
    const { device: inactive } = await client.deactivateDevice({ id: device!.id });
    expect(inactive?.active).toBe(false);
    expect((await client.getDevice({ id: device!.id })).device?.active).toBe(false);
    expect((await client.deactivateDevice({ id: device!.id })).device).toEqual(inactive);
  });

  it('returns the first device for a retried request id and refuses the id with another payload', async () => {
    const request = { device: battery({ site: 'idempotent' }), requestId: 'create-42' };
    const first = await client.createDevice(request);
    // The retry in Connect JSON: the stored answer does not depend on the encoding.
    const retry = await api.as(UNRESTRICTED, { json: true }).registry.createDevice(request);
    expect(retry.device).toEqual(first.device);
    expect(
      await errorOf(client.createDevice({ device: battery({ site: 'idempotent', name: 'other' }), requestId: 'create-42' })),
    ).toMatchObject({
      code: 'AlreadyExists',
      message: expect.stringMatching(/^request_id /),
    });
    expect((await client.listDevices({ site: 'idempotent' })).devices).toEqual([first.device]);
  });

  it('creates one device for concurrent calls with one request id, and refuses a concurrent other payload', async () => {
    const request = { device: battery({ site: 'concurrent' }), requestId: 'create-concurrent' };
    const results = await Promise.all(Array.from({ length: 5 }, () => client.createDevice(request)));
    expect(new Set(results.map((r) => r.device!.id)).size).toBe(1);
    const other = await Promise.allSettled([
      client.createDevice({ device: battery({ site: 'concurrent', name: 'first' }), requestId: 'create-race' }),
      client.createDevice({ device: battery({ site: 'concurrent', name: 'second' }), requestId: 'create-race' }),
    ]);
    expect(other.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const refused = other.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect(ConnectError.from(refused.reason).code).toBe(Code.AlreadyExists);
    expect((await client.listDevices({ site: 'concurrent' })).devices).toHaveLength(2);
  });

  it('creates devices without a request id as new devices each time', async () => {
    const first = await client.createDevice({ device: meter({ site: 'no-request-id' }) });
    const second = await client.createDevice({ device: meter({ site: 'no-request-id' }) });
    expect(second.device!.id).not.toBe(first.device!.id);
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
    ['a Modbus host with a space', () => battery({}, {}, { host: 'bad host' }), 'device.bess.modbus.endpoint.host', '(got "bad host")'],
    [
      'a missing Modbus endpoint',
      () => battery({}, { modbus: { registerProfile: RegisterProfile.SUNSPEC } }),
      'device.bess.modbus.endpoint',
      'is required',
    ],
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
    ['a meter that relays', () => relayingMeter(), 'device.meter.modbus.relay', '(got true)'],
    ['metadata using a reserved key', () => battery({ metadata: { bess: 1 } }), 'device.metadata.bess', '(got'],
    ['a name with a NUL', () => battery({ name: 'bess\u0000' }), 'device.name', 'NUL'],
    ['a site over 200 characters', () => battery({ site: 's'.repeat(201) }), 'device.site', '200'],
  ];

  it.each(badCreates)(
    'refuses %s with INVALID_ARGUMENT naming the field and value, writing nothing',
    async (_case, build, field, value) => {
      const before = await countDevices();
      const err = await errorOf(client.createDevice({ device: build() }));
      expect(err.code).toBe('InvalidArgument');
      expect(err.message.startsWith(field)).toBe(true);
      expect(err.message).toContain(value);
      expect(await countDevices()).toBe(before);
    },
  );

  it.each([
    ['a missing name', () => battery({ name: '' }), ['name'], 'device.name', '(got "")'],
    ['a negative rating', () => battery({}, { ratedDischargePowerKw: -1 }), ['bess'], 'device.bess.rated_discharge_power_kw', '(got -1)'],
    ['a port out of range', () => battery({}, {}, { port: 65536 }), ['bess'], 'device.bess.modbus.endpoint.port', '(got 65536)'],
  ] as const)('refuses an update with %s naming the field and value, changing nothing', async (_case, build, paths, field, value) => {
    const { device } = await client.createDevice({ device: battery({ site: 'bad-update' }) });
    const err = await errorOf(client.updateDevice({ device: { ...build(), id: device!.id }, updateMask: { paths: [...paths] } }));
    expect(err).toMatchObject({ code: 'InvalidArgument', message: expect.stringContaining(field) });
    expect(err.message).toContain(value);
    expect((await client.getDevice({ id: device!.id })).device).toEqual(device);
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
    const { device } = await client.createDevice({ device: battery({ site: 'custom-map' }, { modbus: { ...modbus, registerMap } }) });
    expect(device?.spec.case === 'bess' && device.spec.value.modbus?.registerMap).toEqual(registerMap);

    const bad = { ...registerMap, points: [{ name: 'soePercent', address: 10, type: 'int8' }] };
    const before = await countDevices();
    const err = await errorOf(
      client.createDevice({ device: battery({ site: 'custom-map' }, { modbus: { ...modbus, registerMap: bad } }) }),
    );
    expect(err).toMatchObject({
      code: 'InvalidArgument',
      message: expect.stringContaining('device.bess.modbus.register_map.points[0].type'),
    });
    expect(err.message).toContain('int8');
    expect(await countDevices()).toBe(before);
  });

  it('refuses a request without a device', async () => {
    expect(await errorOf(client.createDevice({}))).toMatchObject({
      code: 'InvalidArgument',
      message: expect.stringMatching(/^device is required/),
    });
  });

  it('refuses malformed UUIDs naming the field, and answers NOT_FOUND for unknown ids', async () => {
    expect(await errorOf(client.getDevice({ id: 'not-a-uuid' }))).toEqual({
      code: 'InvalidArgument',
      message: 'id must be a UUID (got "not-a-uuid")',
    });
    expect(await errorOf(client.deactivateDevice({ id: '123' }))).toEqual({
      code: 'InvalidArgument',
      message: 'id must be a UUID (got "123")',
    });
    expect(await errorOf(client.updateDevice({ device: battery({ id: 'x-1' }), updateMask: { paths: ['name'] } }))).toEqual({
      code: 'InvalidArgument',
      message: 'device.id must be a UUID (got "x-1")',
    });
    const unknown = '00000000-0000-4000-8000-000000000000';
    expect(await errorOf(client.getDevice({ id: unknown }))).toEqual({
      code: 'NotFound',
      message: `id names no device (got "${unknown}")`,
    });
    expect(await errorOf(client.deactivateDevice({ id: unknown }))).toMatchObject({
      code: 'NotFound',
      message: expect.stringContaining(unknown),
    });
    expect(await errorOf(client.updateDevice({ device: battery({ id: unknown }), updateMask: { paths: ['name'] } }))).toMatchObject({
      code: 'NotFound',
      message: expect.stringContaining(unknown),
    });
  });

  it('leaves creating and changing devices to callers not bound to sites; a bound caller lists and deactivates its own', async () => {
    const bound = api.as(SITE_A).registry;
    expect(await errorOf(bound.createDevice({ device: battery() }))).toMatchObject({
      code: 'PermissionDenied',
      message: expect.stringMatching(/^CreateDevice needs a caller not bound to sites/),
    });
    const { device } = await client.createDevice({ device: meter({ name: 'own-meter' }) });
    await client.createDevice({ device: meter({ site: 'site-z', name: 'foreign-meter' }) });
    expect(
      await errorOf(bound.updateDevice({ device: { id: device!.id, name: 'renamed' }, updateMask: { paths: ['name'] } })),
    ).toMatchObject({ code: 'PermissionDenied' });
    // A caller bound to one site lists that site without naming it, and is refused another.
    const listed = await bound.listDevices({ pageSize: 1000 });
    expect(listed.devices.length).toBeGreaterThan(0);
    expect(new Set(listed.devices.map((d) => d.site))).toEqual(new Set(['site-a']));
    expect(await errorOf(bound.listDevices({ site: 'site-z' }))).toMatchObject({
      code: 'PermissionDenied',
      message: expect.stringMatching(/^site names site "site-z"/),
    });
    expect((await bound.deactivateDevice({ id: device!.id })).device?.active).toBe(false);
  });
});
