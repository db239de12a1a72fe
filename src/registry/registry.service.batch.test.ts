import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeviceType, UpsertOutcome, type BatchUpsertDevicesResponse, type Device } from '../../gen/powerplane/v1/devices_pb.ts';
import { errorOf } from '../../test/support/api.ts';
import { ENGINES } from '../../test/support/databases.ts';
import type { InMemoryApi } from '../../test/support/services.ts';
import { UNRESTRICTED } from '../rpc/principal.ts';
import { battery, meter, serveRegistry, SITE_A, type RegistryClient, type RegistryUnderTest } from './registry.service.fixtures.ts';

/**
 * BatchUpsertDevices in memory, over the services of `registry.service.fixtures.ts`:
 * matching by (site, name), the outcome of every device, reactivation, all-or-nothing
 * refusals naming `devices[i].…`, dry runs, retries by request id and site-bound callers.
 * Each test works in a site of its own.
 */

const { CREATED, UPDATED, UNCHANGED } = UpsertOutcome;

describe.each(ENGINES)('BatchUpsertDevices in memory on %s', (engine) => {
  let registry: RegistryUnderTest;
  let api: InMemoryApi;
  let client: RegistryClient;

  beforeAll(async () => {
    registry = await serveRegistry(engine);
    ({ api, client } = registry);
  });
  afterAll(() => registry?.close());

  /** Every device of `site`, active or not, in (name, id) order. */
  async function devicesOf(site: string): Promise<Device[]> {
    return (await client.listDevices({ site, pageSize: 1000 })).devices;
  }

  const outcomes = (res: BatchUpsertDevicesResponse) => res.results.map((r) => r.outcome);
  const counts = (res: BatchUpsertDevicesResponse) => [res.createdCount, res.updatedCount, res.unchangedCount];

  /** Three batteries and a meter at `site`. */
  const fleet = (site: string): Device[] => [
    battery({ site, name: 'b-1' }),
    battery({ site, name: 'b-2' }, {}, { unitId: 4 }),
    battery({ site, name: 'b-3' }, {}, { unitId: 5 }),
    meter({ site, name: 'm-1' }),
  ];

  it('creates new devices, leaves identical ones alone and updates changed ones, in the order of the batch', async () => {
    const first = await client.batchUpsertDevices({ devices: fleet('batch') });
    expect(outcomes(first)).toEqual([CREATED, CREATED, CREATED, CREATED]);
    expect(counts(first)).toEqual([4, 0, 0]);
    expect(first.validateOnly).toBe(false);
    expect(first.results.map((r) => r.device?.name)).toEqual(['b-1', 'b-2', 'b-3', 'm-1']);
    expect(await devicesOf('batch')).toEqual(first.results.map((r) => r.device));

    const again = await client.batchUpsertDevices({ devices: fleet('batch') });
    expect(outcomes(again)).toEqual([UNCHANGED, UNCHANGED, UNCHANGED, UNCHANGED]);
    expect(counts(again)).toEqual([0, 0, 4]);
    expect(again.results.map((r) => r.device)).toEqual(first.results.map((r) => r.device));

    const changed = fleet('batch');
    changed[1] = battery({ site: 'batch', name: 'b-2' }, { ratedChargePowerKw: 250 }, { unitId: 4 });
    changed[3] = meter({ site: 'batch', name: 'm-1', metadata: { firmware_version: '3.0' } });
    changed.push(battery({ site: 'batch', name: 'b-4' }, {}, { unitId: 6 }));
    const third = await client.batchUpsertDevices({ devices: changed });
    expect(outcomes(third)).toEqual([UNCHANGED, UPDATED, UNCHANGED, UPDATED, CREATED]);
    expect(counts(third)).toEqual([1, 2, 2]);
    // Updated devices keep their ids and creation times.
    expect(third.results.slice(0, 4).map((r) => [r.device?.id, r.device?.createTime])).toEqual(
      first.results.map((r) => [r.device?.id, r.device?.createTime]),
    );
    const stored = await devicesOf('batch');
    const b2 = stored.find((d) => d.name === 'b-2');
    expect(b2?.spec.case === 'bess' && b2.spec.value.ratedChargePowerKw).toBe(250);
    expect(stored.find((d) => d.name === 'm-1')?.metadata).toEqual({ firmware_version: '3.0' });
    expect(stored).toHaveLength(5);
  });

  it('applies the API defaults, so a device sent with zero values matches the one stored with the defaults filled in', async () => {
    const zeros = battery({ site: 'batch-defaults' }, { inverterBlockCount: 0, reversionTimeoutS: 0 }, { port: 0, unitId: 0 });
    const filled = battery({ site: 'batch-defaults' }, { inverterBlockCount: 1, reversionTimeoutS: 30 }, { port: 502, unitId: 1 });
    expect(outcomes(await client.batchUpsertDevices({ devices: [zeros] }))).toEqual([CREATED]);
    expect(outcomes(await client.batchUpsertDevices({ devices: [filled] }))).toEqual([UNCHANGED]);
  });

  it('reactivates the most recently created inactive device of a name, as updated, keeping its id', async () => {
    const site = 'batch-reactivate';
    const { device: older } = await client.createDevice({ device: battery({ site }) });
    const { device: newer } = await client.createDevice({ device: battery({ site }) });
    await client.deactivateDevice({ id: older!.id });
    await client.deactivateDevice({ id: newer!.id });

    const res = await client.batchUpsertDevices({ devices: [battery({ site })] });
    expect(outcomes(res)).toEqual([UPDATED]);
    expect(res.results[0]?.device).toEqual({ ...newer, active: true });
    const stored = await devicesOf(site);
    expect(stored.find((d) => d.id === newer!.id)?.active).toBe(true);
    expect(stored.find((d) => d.id === older!.id)?.active).toBe(false);
    // Active again: the next batch matches it and leaves it alone.
    expect(outcomes(await client.batchUpsertDevices({ devices: [battery({ site })] }))).toEqual([UNCHANGED]);
  });

  it('matches the active device of a name before an inactive one', async () => {
    const site = 'batch-active-first';
    const { device: inactive } = await client.createDevice({ device: meter({ site }) });
    await client.deactivateDevice({ id: inactive!.id });
    const { device: active } = await client.createDevice({ device: meter({ site }) });
    const res = await client.batchUpsertDevices({ devices: [meter({ site })] });
    expect(res.results.map((r) => [r.device?.id, r.outcome])).toEqual([[active!.id, UNCHANGED]]);
  });

  // [case, the batch at site `batch-bad`, field named, value shown]
  const badBatches: Array<[string, () => Device[], string, string]> = [
    [
      'a bad rating in the third device',
      () => [...fleet('batch-bad').slice(0, 2), battery({ site: 'batch-bad', name: 'x' }, { ratedChargePowerKw: -5 })],
      'devices[2].bess.rated_charge_power_kw',
      '(got -5)',
    ],
    [
      'an unspecified type',
      () => [meter({ site: 'batch-bad' }), battery({ site: 'batch-bad', type: DeviceType.UNSPECIFIED })],
      'devices[1].type',
      'DEVICE_TYPE_UNSPECIFIED',
    ],
    ['a missing Modbus endpoint', () => [battery({ site: 'batch-bad' }, { modbus: {} })], 'devices[0].bess.modbus.endpoint', 'is required'],
    ['a missing name', () => [meter({ site: 'batch-bad', name: '' })], 'devices[0].name', '(got "")'],
    [
      'a reserved metadata key',
      () => [meter({ site: 'batch-bad' }), meter({ site: 'batch-bad', name: 'm-2', metadata: { meter: 1 } })],
      'devices[1].metadata.meter',
      '(got 1)',
    ],
    [
      'a (site, name) repeated in the batch',
      () => [meter({ site: 'batch-bad' }), battery({ site: 'batch-bad' }), meter({ site: 'batch-bad' })],
      'devices[2].name',
      'repeats devices[0]',
    ],
  ];

  it.each(badBatches)(
    'refuses a batch with %s, naming devices[i] and the value, and writes nothing',
    async (_case, build, field, value) => {
      const err = await errorOf(client.batchUpsertDevices({ devices: build() }));
      expect(err.code).toBe('InvalidArgument');
      expect(err.message.startsWith(field)).toBe(true);
      expect(err.message).toContain(value);
      expect(await devicesOf('batch-bad')).toEqual([]);
    },
  );

  it('refuses to change the type of a matched device, writing none of the batch', async () => {
    const site = 'batch-type';
    const { device } = await client.createDevice({ device: meter({ site, name: 'dev' }) });
    const err = await errorOf(client.batchUpsertDevices({ devices: [battery({ site, name: 'new' }), battery({ site, name: 'dev' })] }));
    expect(err.code).toBe('InvalidArgument');
    expect(err.message).toMatch(/^devices\[1\]\.type cannot change from meter/);
    expect(err.message).toContain(device!.id);
    expect(await devicesOf(site)).toEqual([device]);
  });

  it('refuses a name that matches several active devices, naming them', async () => {
    const site = 'batch-ambiguous';
    const a = (await client.createDevice({ device: meter({ site }) })).device!;
    const b = (await client.createDevice({ device: meter({ site }) })).device!;
    const err = await errorOf(client.batchUpsertDevices({ devices: [meter({ site, metadata: { x: 1 } })] }));
    expect(err.code).toBe('InvalidArgument');
    expect(err.message).toMatch(/^devices\[0\]\.name matches 2 active devices/);
    expect(err.message).toContain(a.id);
    expect(err.message).toContain(b.id);
    expect((await devicesOf(site)).map((d) => d.metadata)).toEqual([{}, {}]);
  });

  it('refuses an empty batch and one of 10,001 devices, naming devices', async () => {
    expect(await errorOf(client.batchUpsertDevices({ devices: [] }))).toEqual({
      code: 'InvalidArgument',
      message: 'devices must hold 1 to 10000 devices (got 0)',
    });
    const devices = Array.from({ length: 10_001 }, (_, i) => meter({ site: 'batch-too-many', name: `m-${i}` }));
    expect(await errorOf(client.batchUpsertDevices({ devices }))).toEqual({
      code: 'InvalidArgument',
      message: 'devices must hold 1 to 10000 devices (got 10001)',
    });
    expect(await devicesOf('batch-too-many')).toEqual([]);
  });

  it('with validate_only reports what would happen and writes nothing', async () => {
    const site = 'batch-dry';
    const { device: existing } = await client.createDevice({ device: battery({ site, name: 'b-1' }) });
    const { device: same } = await client.createDevice({ device: meter({ site, name: 'm-1' }) });
    const { device: retired } = await client.createDevice({ device: meter({ site, name: 'm-2' }) });
    await client.deactivateDevice({ id: retired!.id });
    const before = await devicesOf(site);

    const devices = [
      battery({ site, name: 'b-1' }, { capacityKwh: 2000 }),
      meter({ site, name: 'm-1' }),
      meter({ site, name: 'm-2' }),
      battery({ site, name: 'b-new' }),
    ];
    const dry = await client.batchUpsertDevices({ devices, validateOnly: true, requestId: 'dry-1' });
    expect(dry.validateOnly).toBe(true);
    expect(outcomes(dry)).toEqual([UPDATED, UNCHANGED, UPDATED, CREATED]);
    expect(counts(dry)).toEqual([1, 2, 1]);
    const [changed, unchanged, reactivated, created] = dry.results.map((r) => r.device!);
    expect(changed?.id).toBe(existing!.id);
    expect(changed?.spec.case === 'bess' && changed.spec.value.capacityKwh).toBe(2000);
    expect(unchanged).toEqual(same);
    expect(reactivated).toEqual({ ...retired, active: true });
    expect(created).toMatchObject({ id: '', name: 'b-new', active: true });
    expect(created?.createTime).toBeUndefined();
    expect(await devicesOf(site)).toEqual(before);

    // The request id of a dry run is not kept: the same id then writes the batch.
    const real = await client.batchUpsertDevices({ devices, requestId: 'dry-1' });
    expect(real.validateOnly).toBe(false);
    expect(outcomes(real)).toEqual(outcomes(dry));
    expect(real.results.slice(0, 3).map((r) => r.device)).toEqual(dry.results.slice(0, 3).map((r) => r.device));
    expect(await devicesOf(site)).toHaveLength(4);
  });

  it('answers a retried request id with the first response even after the devices changed, and refuses another batch', async () => {
    const site = 'batch-retry';
    const request = { devices: fleet(site), requestId: 'import-1' };
    const first = await client.batchUpsertDevices(request);
    expect(counts(first)).toEqual([4, 0, 0]);
    // A retry in Connect JSON: the stored answer does not depend on the encoding.
    expect(await api.as(UNRESTRICTED, { json: true }).registry.batchUpsertDevices(request)).toEqual(first);

    const moved = first.results[0]!.device!;
    await client.updateDevice({ device: { ...moved, name: 'renamed' }, updateMask: { paths: ['name'] } });
    expect(await client.batchUpsertDevices(request)).toEqual(first);
    expect((await devicesOf(site)).map((d) => d.name)).toEqual(['b-2', 'b-3', 'm-1', 'renamed']);

    const other = { devices: [...fleet(site), meter({ site, name: 'm-9' })], requestId: 'import-1' };
    expect(await errorOf(client.batchUpsertDevices(other))).toMatchObject({
      code: 'AlreadyExists',
      message: expect.stringMatching(/^request_id /),
    });
    expect(await devicesOf(site)).toHaveLength(4);
    // Without the request id the same batch is matched afresh: `b-1` is gone, so it is created.
    const fresh = await client.batchUpsertDevices({ devices: fleet(site) });
    expect(outcomes(fresh)).toEqual([CREATED, UNCHANGED, UNCHANGED, UNCHANGED]);
  });

  it('runs concurrent batches naming the same devices one after the other, creating each device once', async () => {
    const site = 'batch-concurrent';
    const results = await Promise.all(Array.from({ length: 4 }, () => client.batchUpsertDevices({ devices: fleet(site) })));
    expect(results.map((r) => r.createdCount).sort()).toEqual([0, 0, 0, 4]);
    expect(await devicesOf(site)).toHaveLength(4);
  });

  it('refuses a caller bound to sites, writing nothing', async () => {
    const bound = api.as(SITE_A).registry;
    expect(await errorOf(bound.batchUpsertDevices({ devices: [meter({ site: 'site-a', name: 'bound' })] }))).toMatchObject({
      code: 'PermissionDenied',
      message: expect.stringMatching(/^BatchUpsertDevices needs a caller not bound to sites/),
    });
    expect((await devicesOf('site-a')).filter((d) => d.name === 'bound')).toEqual([]);
  });

  it('audits a large batch as its size and digest, not its devices', async () => {
    const devices = Array.from({ length: 200 }, (_, i) => meter({ site: 'batch-audit', name: `m-${i}` }));
    await client.batchUpsertDevices({ devices, requestId: 'audited' });
    const database = await registry.testDb.open();
    const { rows } = await sql<{ request: Record<string, unknown> }>`
      select request from powerplane.audit_log
      where method = 'powerplane.v1.DeviceRegistryService/BatchUpsertDevices' and phase = 'requested'
      order by id desc limit 1`.execute(database.db);
    const request = rows[0]!.request;
    expect(request).toMatchObject({ truncated: true, sha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(request.bytes).toBeGreaterThan(16 * 1024);
    expect(JSON.stringify(request).length).toBeLessThan(2_000);
  });

  it('refuses a request id over 100 characters', async () => {
    const err = await errorOf(client.batchUpsertDevices({ devices: [meter({ site: 'batch-long-id' })], requestId: 'r'.repeat(101) }));
    expect(err.code).toBe('InvalidArgument');
    expect(err.message).toMatch(/^request_id /);
    expect(await devicesOf('batch-long-id')).toEqual([]);
  });
});
