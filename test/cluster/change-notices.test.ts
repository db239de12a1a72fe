import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ControlMode } from '../../gen/powerplane/v1/dispatch_pb.ts';
import { createChangeNotices } from '../../src/cluster/change-notices.ts';
import type { ClusterMessage, Notifications } from '../../src/cluster/cluster.types.ts';
import { createNotifications } from '../../src/cluster/notifications.ts';
import { UNRESTRICTED } from '../../src/rpc/principal.ts';
import { errorOf } from '../support/api.ts';
import { createTestDatabase, ENGINES, silentLog, type TestDatabase } from '../support/databases.ts';
import { registerBattery } from '../support/fleet.ts';
import { serveInMemory, type Clients, type InMemoryApi } from '../support/services.ts';
import { waitFor } from '../support/wait.ts';

/**
 * Every call that changes what a site's batteries should do tells the other replicas, in
 * the statement or transaction that makes the change: the services in memory run as
 * replica `here`, and a listener on the same database as replica `there` records what
 * arrives. A refused call, or one that changes nothing, sends nothing; an absence is proved
 * by a marker sent afterwards arriving first.
 */

const MINUTE = 60_000;
const FROM = 'replica-here';
const endpoint = (unitId: number) => ({ host: '127.0.0.1', port: 1, unitId });
const told = (site: string, reason: string): ClusterMessage => ({ k: 'change', from: FROM, site, reason }) as ClusterMessage;

describe.each(ENGINES)('changes told to other replicas on %s', (engine) => {
  let testDb: TestDatabase;
  let api: InMemoryApi;
  let listener: Notifications;
  let ops: Clients;
  let marker = 0;
  const received: ClusterMessage[] = [];
  const markers = new Set<string>();

  /** What arrived from the moment `call` starts until a marker sent after it settles. */
  async function messagesOf(call: () => Promise<unknown>): Promise<ClusterMessage[]> {
    received.length = 0;
    await call();
    const from = `marker-${++marker}`;
    await listener.notify({ k: 'leases', from });
    await waitFor(`marker ${from}`, () => markers.has(from));
    return [...received];
  }

  /** Asserts that `call` is refused with `code` and tells no one. */
  async function refusedSilently(call: () => Promise<unknown>, code: string): Promise<void> {
    let failure: { code: string } | undefined;
    expect(await messagesOf(async () => void (failure = await errorOf(call())))).toEqual([]);
    expect(failure?.code).toBe(code);
  }

  beforeAll(async () => {
    testDb = await createTestDatabase(engine);
    const database = await testDb.open();
    api = serveInMemory(database, testDb.config, { notices: createChangeNotices(FROM) });
    listener = await createNotifications({ database, replicaId: 'replica-there', log: silentLog });
    listener.subscribe((message) => {
      if (message.from.startsWith('marker-')) markers.add(message.from);
      else received.push(message);
    });
    ops = api.as(UNRESTRICTED);
  });
  afterAll(async () => {
    await listener?.close();
    await api?.close();
    await testDb?.drop();
  });

  it('CreateDevice, UpdateDevice and DeactivateDevice tell the device’s sites (both, when it moves), reason registry', async () => {
    let id = '';
    expect(await messagesOf(async () => (id = await registerBattery(ops.registry, 'north', 'n-0', endpoint(1))))).toEqual([
      told('north', 'registry'),
    ]);
    const { device } = await ops.registry.getDevice({ id });
    const moved = await messagesOf(() =>
      ops.registry.updateDevice({ device: { ...device!, site: 'south' }, updateMask: { paths: ['site'] } }),
    );
    expect(moved).toHaveLength(2);
    expect(moved).toEqual(expect.arrayContaining([told('north', 'registry'), told('south', 'registry')]));
    expect(
      await messagesOf(() =>
        ops.registry.updateDevice({ device: { ...device!, site: 'south', name: 'renamed' }, updateMask: { paths: ['name'] } }),
      ),
    ).toEqual([told('south', 'registry')]);
    expect(await messagesOf(() => ops.registry.deactivateDevice({ id }))).toEqual([told('south', 'registry')]);
  });

  it('a retried CreateDevice with the same request id tells no one again', async () => {
    // registerBattery sends no request id; a retry is a CreateDevice with one.
    let id = '';
    await messagesOf(async () => (id = await registerBattery(ops.registry, 'east', 'e-0', endpoint(2))));
    const { device } = await ops.registry.getDevice({ id });
    const request = { device: { ...device!, id: '', name: 'e-1' }, requestId: 'create-e-1' };
    expect(await messagesOf(() => ops.registry.createDevice(request))).toEqual([told('east', 'registry')]);
    expect(await messagesOf(() => ops.registry.createDevice(request))).toEqual([]);
  });

  it('refused registry calls tell no one', async () => {
    let id = '';
    await messagesOf(async () => (id = await registerBattery(ops.registry, 'west', 'w-0', endpoint(3))));
    const { device } = await ops.registry.getDevice({ id });
    await refusedSilently(() => ops.registry.createDevice({ device: { ...device!, id: '', site: '' } }), 'InvalidArgument');
    await refusedSilently(
      () => ops.registry.updateDevice({ device: { ...device!, site: 'x' }, updateMask: { paths: ['type'] } }),
      'InvalidArgument',
    );
    await refusedSilently(
      () => ops.registry.updateDevice({ device: { ...device!, site: 'elsewhere', name: '' }, updateMask: { paths: ['site', 'name'] } }),
      'InvalidArgument',
    );
    await refusedSilently(() => ops.registry.deactivateDevice({ id: '00000000-0000-4000-8000-000000000000' }), 'NotFound');
  });

  describe('dispatch', () => {
    let battery = '';
    beforeAll(async () => {
      // Settled, so its message is not taken for a later call's.
      await messagesOf(async () => (battery = await registerBattery(ops.registry, 'alpha', 'a-0', endpoint(4))));
    });

    it('SubmitDispatch and CancelDispatch tell the site, reason instruction; a second cancel tells no one', async () => {
      const now = Date.now();
      let instructionId = '';
      const submit = () =>
        ops.dispatch.submitDispatch({
          requestId: 'submit-alpha',
          target: { case: 'site', value: 'alpha' },
          intervals: [
            {
              startTime: timestampFromMs(now + MINUTE),
              endTime: timestampFromMs(now + 2 * MINUTE),
              command: { case: 'powerKw', value: 10 },
            },
          ],
        });
      expect(await messagesOf(async () => (instructionId = (await submit()).instructions[0]!.id))).toEqual([told('alpha', 'instruction')]);
      // A retry is answered from its stored response and changes nothing.
      expect(await messagesOf(submit)).toEqual([]);
      expect(await messagesOf(() => ops.dispatch.cancelDispatch({ id: instructionId }))).toEqual([told('alpha', 'instruction')]);
      expect(await messagesOf(() => ops.dispatch.cancelDispatch({ id: instructionId }))).toEqual([]);
    });

    it('a battery instruction tells its battery’s site', async () => {
      const now = Date.now();
      const submit = () =>
        ops.dispatch.submitDispatch({
          requestId: 'submit-battery',
          target: { case: 'deviceId', value: battery },
          intervals: [
            {
              startTime: timestampFromMs(now + MINUTE),
              endTime: timestampFromMs(now + 2 * MINUTE),
              command: { case: 'powerKw', value: 5 },
            },
          ],
        });
      expect(await messagesOf(submit)).toEqual([told('alpha', 'instruction')]);
    });

    it('refused SubmitDispatch and CancelDispatch calls tell no one', async () => {
      const now = Date.now();
      await refusedSilently(
        () =>
          ops.dispatch.submitDispatch({
            requestId: 'backwards',
            target: { case: 'site', value: 'alpha' },
            intervals: [
              {
                startTime: timestampFromMs(now + 2 * MINUTE),
                endTime: timestampFromMs(now + MINUTE),
                command: { case: 'powerKw', value: 10 },
              },
            ],
          }),
        'InvalidArgument',
      );
      await refusedSilently(() => ops.dispatch.cancelDispatch({ id: '00000000-0000-4000-8000-000000000000' }), 'NotFound');
    });

    it('SetControlMode tells the battery’s site, reason override, when an override is set and when it is released', async () => {
      const manual = {
        deviceId: battery,
        mode: ControlMode.MANUAL,
        manualPowerKw: 20,
        expireTime: timestampFromMs(Date.now() + 30 * MINUTE),
        reason: 'test',
      };
      expect(await messagesOf(() => ops.dispatch.setControlMode(manual))).toEqual([told('alpha', 'override')]);
      const automatic = { deviceId: battery, mode: ControlMode.AUTOMATIC, reason: 'done' };
      expect(await messagesOf(() => ops.dispatch.setControlMode(automatic))).toEqual([told('alpha', 'override')]);
      // Nothing left to release: nothing changed.
      expect(await messagesOf(() => ops.dispatch.setControlMode(automatic))).toEqual([]);
      await refusedSilently(() => ops.dispatch.setControlMode({ ...manual, manualPowerKw: 1_000 }), 'InvalidArgument');
    });

    it('SetSiteConfig tells the site, reason config; a refused one tells no one', async () => {
      expect(await messagesOf(() => ops.dispatch.setSiteConfig({ config: { site: 'alpha', importLimitKw: 50 } }))).toEqual([
        told('alpha', 'config'),
      ]);
      await refusedSilently(() => ops.dispatch.setSiteConfig({ config: { site: 'alpha', importLimitKw: -1 } }), 'InvalidArgument');
      await refusedSilently(() => ops.dispatch.setSiteConfig({ config: { site: 'nowhere' } }), 'NotFound');
    });

    it('PublishMarketData tells every replica when it stored a point, and no one when it stored none or was refused', async () => {
      const time = timestampFromMs(Math.floor(Date.now() / MINUTE) * MINUTE);
      const publish = () => ops.dispatch.publishMarketData({ points: [{ time, type: 'niv_estimate', value: 12 }] });
      expect(await messagesOf(publish)).toEqual([{ k: 'market', from: FROM }]);
      expect(await messagesOf(publish)).toEqual([]);
      await refusedSilently(() => ops.dispatch.publishMarketData({ points: [{ time, type: 'tea_leaves', value: 1 }] }), 'InvalidArgument');
    });
  });
});
