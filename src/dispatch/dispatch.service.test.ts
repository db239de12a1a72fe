import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { timestampFromMs, timestampMs } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError, type Client } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeviceSchema, DeviceType, RegisterProfile } from '../../gen/powerplane/v1/devices_pb.ts';
import {
  ControlMode,
  DispatchAction,
  DispatchState,
  SetpointPhase,
  type DispatchService,
  type ListMarketDataRequestSchema,
  type SubmitDispatchRequestSchema,
  type WatchSetpointsRequestSchema,
} from '../../gen/powerplane/v1/dispatch_pb.ts';
import { CommandSource } from '../../gen/powerplane/v1/telemetry_pb.ts';
import { errorOf } from '../../test/support/api.ts';
import { createTestDatabase, ENGINES, type TestDatabase } from '../../test/support/databases.ts';
import { registerBattery } from '../../test/support/fleet.ts';
import { serveInMemory, type InMemoryApi } from '../../test/support/services.ts';
import { waitFor } from '../../test/support/wait.ts';
import { SCOPES, UNRESTRICTED, type Principal } from '../rpc/principal.ts';
import type { SetpointRecord } from './setpoint-events.ts';

/**
 * DispatchService through `createRouterTransport`: the real service, request-text, audit
 * and error interceptors over a real database, no HTTP and no control loop. What the
 * control loop does with an instruction (Modbus writes, verification) is the subject of
 * `test/dispatch/dispatch.test.ts`; here the service's answers, what it stores and which sites it
 * asks the loop to replan (`takeReplans`) are.
 */

type DispatchClient = Client<typeof DispatchService>;
type SubmitRequest = MessageInitShape<typeof SubmitDispatchRequestSchema>;
/** A SubmitDispatch request a case may have spoilt beyond what the generated types allow. */
type LooseSubmit = {
  requestId: string;
  target: { case: 'site' | 'deviceId'; value: string } | { case: undefined };
  priority: number;
  intervals: Record<string, unknown>[];
};

const MINUTE = 60_000;
const DAY = 86_400_000;
const UNKNOWN_ID = '00000000-0000-4000-8000-000000000000';

/** A one-interval schedule from `startMs` to `endMs` at `powerKw`. */
const interval = (startMs: number, endMs: number, powerKw = 10) => ({
  startTime: timestampFromMs(startMs),
  endTime: timestampFromMs(endMs),
  command: { case: 'powerKw' as const, value: powerKw },
});

/** A bound caller with every scope. */
const boundTo = (id: string, sites: string[]): Principal => ({ id, kind: 'token', scopes: new Set(SCOPES), sites: new Set(sites) });

describe.each(ENGINES)('DispatchService in memory on %s', (engine) => {
  let testDb: TestDatabase;
  let api: InMemoryApi;
  let dispatch: DispatchClient;
  /** Site alpha: two 100 kW batteries; site beta: one; site gamma: one, for overrides. */
  const ids: Record<string, string> = {};

  beforeAll(async () => {
    testDb = await createTestDatabase(engine);
    api = serveInMemory(await testDb.open(), testDb.config);
    const ops = api.as(UNRESTRICTED);
    dispatch = ops.dispatch;
    const endpoint = (unitId: number) => ({ host: '127.0.0.1', port: 1, unitId });
    ids.alpha0 = await registerBattery(ops.registry, 'alpha', 'alpha-0', endpoint(1));
    ids.alpha1 = await registerBattery(ops.registry, 'alpha', 'alpha-1', endpoint(2));
    ids.beta0 = await registerBattery(ops.registry, 'beta', 'beta-0', endpoint(3));
    ids.gamma0 = await registerBattery(ops.registry, 'gamma', 'gamma-0', endpoint(4), {
      ratedChargePowerKw: 50,
      ratedDischargePowerKw: 80,
    });
    ids.retired = await registerBattery(ops.registry, 'beta', 'retired', endpoint(5));
    await ops.registry.deactivateDevice({ id: ids.retired });
    const meter = create(DeviceSchema, {
      name: 'meter',
      site: 'beta',
      type: DeviceType.METER,
      spec: { case: 'meter', value: { modbus: { endpoint: endpoint(6), registerProfile: RegisterProfile.SUNSPEC } } },
    });
    ids.meter = (await ops.registry.createDevice({ device: meter })).device!.id;
    api.takeReplans();
  });
  afterAll(async () => {
    await api?.close();
    await testDb?.drop();
  });

  /** How many instructions are stored, of every state. */
  async function countInstructions(): Promise<number> {
    return (await dispatch.listDispatches({ pageSize: 1000 })).instructions.length;
  }

  describe('SubmitDispatch', () => {
    it('stores a site schedule as one instruction per interval, pending or active by its window, and replans the site', async () => {
      const now = Date.now();
      const { instructions } = await dispatch.submitDispatch({
        requestId: 'alpha-two',
        target: { case: 'site', value: 'alpha' },
        priority: 5,
        intervals: [
          interval(now - 1_000, now + 10 * MINUTE, 120),
          { ...interval(now + 10 * MINUTE, now + 20 * MINUTE), command: { case: 'action', value: DispatchAction.CHARGE_MAX } },
        ],
      });
      expect(instructions.map((i) => [i.requestId, i.target, i.priority, i.state, i.principal, i.interval?.command])).toEqual([
        ['alpha-two', { case: 'site', value: 'alpha' }, 5, DispatchState.ACTIVE, 'unrestricted', { case: 'powerKw', value: 120 }],
        [
          'alpha-two',
          { case: 'site', value: 'alpha' },
          5,
          DispatchState.PENDING,
          'unrestricted',
          { case: 'action', value: DispatchAction.CHARGE_MAX },
        ],
      ]);
      expect(api.takeReplans()).toEqual(['alpha']);
      for (const i of instructions) expect((await dispatch.getDispatch({ id: i.id })).instruction).toEqual(i);
      for (const i of instructions) await dispatch.cancelDispatch({ id: i.id });
      api.takeReplans();
    });

    it("stores a battery schedule and replans the battery's site", async () => {
      const now = Date.now();
      const { instructions } = await dispatch.submitDispatch({
        requestId: 'beta-battery',
        target: { case: 'deviceId', value: ids.beta0! },
        intervals: [interval(now + MINUTE, now + 2 * MINUTE, -50)],
      });
      expect(instructions).toHaveLength(1);
      expect(instructions[0]).toMatchObject({
        target: { case: 'deviceId', value: ids.beta0 },
        state: DispatchState.PENDING,
        interval: { command: { case: 'powerKw', value: -50 } },
      });
      expect(api.takeReplans()).toEqual(['beta']);
      await dispatch.cancelDispatch({ id: instructions[0]!.id });
      api.takeReplans();
    });

    it('answers a retried request id with the first answer, storing and replanning nothing more; another payload is refused', async () => {
      const now = Date.now();
      const request = {
        requestId: 'retry-me',
        target: { case: 'site' as const, value: 'beta' },
        intervals: [interval(now + 10 * MINUTE, now + 15 * MINUTE)],
      };
      const first = await dispatch.submitDispatch(request);
      expect(api.takeReplans()).toEqual(['beta']);
      const before = await countInstructions();
      // The retry in Connect JSON: the stored answer does not depend on the encoding.
      expect((await api.as(UNRESTRICTED, { json: true }).dispatch.submitDispatch(request)).instructions).toEqual(first.instructions);
      expect(await countInstructions()).toBe(before);
      expect(api.takeReplans()).toEqual([]);
      const changed = await errorOf(
        dispatch.submitDispatch({ ...request, intervals: [interval(now + 10 * MINUTE, now + 15 * MINUTE, 11)] }),
      );
      expect(changed).toMatchObject({ code: 'AlreadyExists', message: expect.stringMatching(/^request_id /) });
      expect(await countInstructions()).toBe(before);
      await dispatch.cancelDispatch({ id: first.instructions[0]!.id });
      api.takeReplans();
    });

    it('stores one schedule for concurrent submits with one request id, and refuses a concurrent other payload', async () => {
      const at = Date.now() + 60 * MINUTE;
      const request = (kw: number, requestId: string) => ({
        requestId,
        target: { case: 'site' as const, value: 'beta' },
        intervals: [interval(at, at + MINUTE, kw)],
      });
      const same = await Promise.all(Array.from({ length: 5 }, () => dispatch.submitDispatch(request(5, 'concurrent-same'))));
      expect(new Set(same.map((r) => r.instructions[0]!.id)).size).toBe(1);
      const raced = await Promise.allSettled([
        dispatch.submitDispatch(request(6, 'concurrent-race')),
        dispatch.submitDispatch(request(7, 'concurrent-race')),
      ]);
      expect(raced.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      expect(ConnectError.from((raced.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason).code).toBe(Code.AlreadyExists);
      const stored = (await dispatch.listDispatches({ site: 'beta', pageSize: 1000 })).instructions.filter((i) =>
        i.requestId.startsWith('concurrent-'),
      );
      expect(stored).toHaveLength(2);
      for (const i of stored) await dispatch.cancelDispatch({ id: i.id });
      api.takeReplans();
    });

    /** A valid schedule for site alpha starting at `start`, to be spoiled by a case. */
    const valid = (start: number): LooseSubmit => ({
      requestId: 'bad',
      target: { case: 'site', value: 'alpha' },
      priority: 0,
      intervals: [interval(start, start + MINUTE)],
    });
    const spoilInterval = (start: number, change: Record<string, unknown>): LooseSubmit => ({
      ...valid(start),
      intervals: [{ ...interval(start, start + MINUTE), ...change }],
    });

    // [case, request from a start time a minute ahead, code, message start]
    const refused: Array<[string, (start: number) => LooseSubmit, string, string]> = [
      ['a missing target', (s) => ({ ...valid(s), target: { case: undefined } }), 'InvalidArgument', 'target is required'],
      [
        'an unknown site',
        (s) => ({ ...valid(s), target: { case: 'site', value: 'nowhere' } }),
        'NotFound',
        'site names no site with active batteries',
      ],
      [
        'an unknown battery',
        (s) => ({ ...valid(s), target: { case: 'deviceId', value: UNKNOWN_ID } }),
        'NotFound',
        'device_id names no battery',
      ],
      [
        'a malformed battery id',
        (s) => ({ ...valid(s), target: { case: 'deviceId', value: 'x1' } }),
        'InvalidArgument',
        'device_id must be a UUID',
      ],
      [
        'a meter for a battery',
        (s) => ({ ...valid(s), target: { case: 'deviceId', value: ids.meter! } }),
        'InvalidArgument',
        'device_id is not a battery',
      ],
      [
        'an inactive battery',
        (s) => ({ ...valid(s), target: { case: 'deviceId', value: ids.retired! } }),
        'InvalidArgument',
        'device_id is an inactive battery',
      ],
      ['a missing request id', (s) => ({ ...valid(s), requestId: '' }), 'InvalidArgument', 'request_id is required'],
      ['a request id over 100 characters', (s) => ({ ...valid(s), requestId: 'x'.repeat(101) }), 'InvalidArgument', 'request_id'],
      [
        'a request id with a NUL',
        (s) => ({ ...valid(s), requestId: 'bad\u0000' }),
        'InvalidArgument',
        'request_id must not contain a NUL character',
      ],
      [
        'a priority out of range',
        (s) => ({ ...valid(s), priority: 1001 }),
        'InvalidArgument',
        'priority must be a whole number from -1000 to 1000',
      ],
      ['no intervals', (s) => ({ ...valid(s), intervals: [] }), 'InvalidArgument', 'intervals must hold 1 to 1000 intervals'],
      [
        'more than 1000 intervals',
        (s) => ({ ...valid(s), intervals: Array.from({ length: 1001 }, (_, i) => interval(s + i * 100, s + (i + 1) * 100)) }),
        'InvalidArgument',
        'intervals must hold 1 to 1000',
      ],
      [
        'a NaN power',
        (s) => spoilInterval(s, { command: { case: 'powerKw', value: Number.NaN } }),
        'InvalidArgument',
        'intervals[0].power_kw must be a finite number',
      ],
      [
        "power beyond the site's rating",
        (s) => spoilInterval(s, { command: { case: 'powerKw', value: 201 } }),
        'InvalidArgument',
        "intervals[0].power_kw exceeds the target's rated discharge power (200 kW)",
      ],
      [
        "charge beyond the site's rating",
        (s) => spoilInterval(s, { command: { case: 'powerKw', value: -201 } }),
        'InvalidArgument',
        "intervals[0].power_kw exceeds the target's rated charge power (200 kW)",
      ],
      [
        'an unspecified action',
        (s) => spoilInterval(s, { command: { case: 'action', value: DispatchAction.UNSPECIFIED } }),
        'InvalidArgument',
        'intervals[0].action',
      ],
      [
        'a missing command',
        (s) => spoilInterval(s, { command: { case: undefined } }),
        'InvalidArgument',
        'intervals[0].command is required',
      ],
      ['a missing start time', (s) => spoilInterval(s, { startTime: undefined }), 'InvalidArgument', 'intervals[0].start_time is required'],
      ['a missing end time', (s) => spoilInterval(s, { endTime: undefined }), 'InvalidArgument', 'intervals[0].end_time is required'],
      [
        'an end before the start',
        (s) => spoilInterval(s, { endTime: timestampFromMs(s - 1) }),
        'InvalidArgument',
        'intervals[0].end_time must be after start_time',
      ],
      [
        'a window already over',
        (s) => spoilInterval(s, { startTime: timestampFromMs(s - 3 * MINUTE), endTime: timestampFromMs(s - 2 * MINUTE) }),
        'InvalidArgument',
        'intervals[0].end_time is already over',
      ],
      [
        'an end more than 7 days ahead',
        (s) => spoilInterval(s, { endTime: timestampFromMs(s + 7 * DAY) }),
        'InvalidArgument',
        'intervals[0].end_time must be at most 7 days ahead of now',
      ],
      [
        'an end beyond any date',
        (s) => spoilInterval(s, { endTime: { seconds: 2n ** 62n, nanos: 0 } }),
        'InvalidArgument',
        'intervals[0].end_time',
      ],
      [
        'overlapping intervals',
        (s) => ({ ...valid(s), intervals: [interval(s, s + MINUTE), interval(s + 30_000, s + 2 * MINUTE)] }),
        'InvalidArgument',
        'intervals[1].start_time',
      ],
    ];

    it.each(refused)('refuses %s naming the field, storing nothing and replanning nothing', async (_case, build, code, message) => {
      const before = await countInstructions();
      const err = await errorOf(dispatch.submitDispatch(build(Date.now() + MINUTE) as SubmitRequest));
      expect(err.code).toBe(code);
      expect(err.message.startsWith(message)).toBe(true);
      expect(await countInstructions()).toBe(before);
      expect(api.takeReplans()).toEqual([]);
    });

    it("refuses a site outside a bound caller's binding before any lookup, whether or not the site exists", async () => {
      const desk = api.as(boundTo('token:desk-beta', ['beta'])).dispatch;
      const start = Date.now() + MINUTE;
      for (const site of ['alpha', 'nowhere']) {
        expect(await errorOf(desk.submitDispatch({ ...valid(start), target: { case: 'site', value: site } } as SubmitRequest))).toEqual({
          code: 'PermissionDenied',
          message: `site names site "${site}", which token:desk-beta is not bound to`,
        });
      }
      expect(api.takeReplans()).toEqual([]);
    });
  });

  describe('GetDispatch, CancelDispatch and ListDispatches', () => {
    it('cancels an instruction with its reason, replans its site, and answers a second cancel with the same record', async () => {
      const now = Date.now();
      const [instruction] = (
        await dispatch.submitDispatch({
          requestId: 'to-cancel',
          target: { case: 'site', value: 'alpha' },
          intervals: [interval(now + MINUTE, now + 2 * MINUTE)],
        })
      ).instructions;
      api.takeReplans();
      const { instruction: cancelled } = await dispatch.cancelDispatch({ id: instruction!.id, reason: 'market moved' });
      expect(cancelled).toMatchObject({ id: instruction!.id, state: DispatchState.CANCELLED, cancelReason: 'market moved' });
      expect(cancelled?.cancelTime).toBeDefined();
      expect(api.takeReplans()).toEqual(['alpha']);
      expect((await dispatch.cancelDispatch({ id: instruction!.id })).instruction).toEqual(cancelled);
      expect((await dispatch.getDispatch({ id: instruction!.id })).instruction).toEqual(cancelled);
    });

    it('refuses to cancel an instruction that already completed', async () => {
      const now = Date.now();
      const [instruction] = (
        await dispatch.submitDispatch({
          requestId: 'short',
          target: { case: 'site', value: 'gamma' },
          intervals: [interval(now - 1_000, now + 300, 1)],
        })
      ).instructions;
      api.takeReplans();
      await waitFor(
        'the instruction to complete',
        async () => (await dispatch.getDispatch({ id: instruction!.id })).instruction?.state === DispatchState.COMPLETED,
        10_000,
      );
      expect(await errorOf(dispatch.cancelDispatch({ id: instruction!.id }))).toMatchObject({
        code: 'FailedPrecondition',
        message: expect.stringMatching(new RegExp(`^id ${instruction!.id} names an instruction that already completed`)),
      });
      expect((await dispatch.getDispatch({ id: instruction!.id })).instruction?.state).toBe(DispatchState.COMPLETED);
    });

    it('answers malformed and unknown ids naming the field', async () => {
      expect(await errorOf(dispatch.getDispatch({ id: 'x' }))).toEqual({ code: 'InvalidArgument', message: 'id must be a UUID (got "x")' });
      expect(await errorOf(dispatch.cancelDispatch({ id: 'x' }))).toEqual({
        code: 'InvalidArgument',
        message: 'id must be a UUID (got "x")',
      });
      expect(await errorOf(dispatch.getDispatch({ id: UNKNOWN_ID }))).toEqual({
        code: 'NotFound',
        message: `id names no dispatch instruction (got "${UNKNOWN_ID}")`,
      });
      expect(await errorOf(dispatch.cancelDispatch({ id: UNKNOWN_ID, reason: 'r' }))).toEqual({
        code: 'NotFound',
        message: `id names no dispatch instruction (got "${UNKNOWN_ID}")`,
      });
      expect(api.takeReplans()).toEqual([]);
    });

    it('lists newest first, filtered by site, battery, state and time, page by page', async () => {
      const base = Date.now() + 2 * 60 * MINUTE;
      const submitted: string[] = [];
      for (let i = 0; i < 5; i++) {
        submitted.push(
          (
            await dispatch.submitDispatch({
              requestId: `list-${i}`,
              target: { case: 'site', value: 'alpha' },
              intervals: [interval(base + i * MINUTE, base + (i + 1) * MINUTE)],
            })
          ).instructions[0]!.id,
        );
      }
      const forBattery = (
        await dispatch.submitDispatch({
          requestId: 'list-battery',
          target: { case: 'deviceId', value: ids.alpha1! },
          intervals: [interval(base, base + MINUTE)],
        })
      ).instructions[0]!.id;
      // Outside the time filter below.
      const later = (
        await dispatch.submitDispatch({
          requestId: 'list-later',
          target: { case: 'site', value: 'alpha' },
          intervals: [interval(base + 20 * MINUTE, base + 21 * MINUTE)],
        })
      ).instructions[0]!.id;
      await dispatch.cancelDispatch({ id: submitted[1]! });
      const window = { startTime: timestampFromMs(base), endTime: timestampFromMs(base + 10 * MINUTE) };
      const pages: string[][] = [];
      let pageToken = '';
      for (let i = 0; i < 10; i++) {
        const page = await dispatch.listDispatches({ site: 'alpha', ...window, pageSize: 2, pageToken });
        pages.push(page.instructions.map((x) => x.id));
        pageToken = page.nextPageToken;
        if (pageToken === '') break;
      }
      const newestFirst = [...submitted].reverse();
      expect(pages).toEqual([newestFirst.slice(0, 2), newestFirst.slice(2, 4), newestFirst.slice(4)]);
      const pending = await dispatch.listDispatches({ site: 'alpha', state: DispatchState.PENDING, ...window });
      expect(pending.instructions.map((x) => x.id)).toEqual(newestFirst.filter((id) => id !== submitted[1]));
      const cancelled = await dispatch.listDispatches({ site: 'alpha', state: DispatchState.CANCELLED, ...window });
      expect(cancelled.instructions.map((x) => x.id)).toEqual([submitted[1]]);
      // The site filter keeps instructions for the site, the battery filter those for the battery.
      expect((await dispatch.listDispatches({ deviceId: ids.alpha1!, ...window })).instructions.map((x) => x.id)).toEqual([forBattery]);
      expect((await dispatch.listDispatches({ site: 'alpha', pageSize: 1000 })).instructions.map((x) => x.id)).toContain(later);

      const first = await dispatch.listDispatches({ site: 'alpha', ...window, pageSize: 2 });
      expect(
        await errorOf(dispatch.listDispatches({ site: 'beta', ...window, pageSize: 2, pageToken: first.nextPageToken })),
      ).toMatchObject({
        code: 'InvalidArgument',
        message: expect.stringMatching(/^page_token was made for a listing with other filters/),
      });
      for (const id of [...submitted, forBattery, later]) await dispatch.cancelDispatch({ id });
      api.takeReplans();
    });

    it('ends a page of instructions by bytes as well as by count', async () => {
      const base = Date.now() + 3 * 60 * MINUTE;
      for (let i = 0; i < 3; i++)
        await dispatch.submitDispatch({
          requestId: `bytes-${i}`,
          target: { case: 'site', value: 'gamma' },
          intervals: [interval(base + i * MINUTE, base + (i + 1) * MINUTE)],
        });
      api.takeReplans();
      const tiny = serveInMemory(await testDb.open(), testDb.config, { pageBytes: 1 });
      try {
        const sizes: number[] = [];
        let pageToken = '';
        for (let i = 0; i < 10; i++) {
          const page = await tiny.as(UNRESTRICTED).dispatch.listDispatches({
            site: 'gamma',
            startTime: timestampFromMs(base),
            endTime: timestampFromMs(base + 10 * MINUTE),
            pageSize: 100,
            pageToken,
          });
          sizes.push(page.instructions.length);
          pageToken = page.nextPageToken;
          if (pageToken === '') break;
        }
        expect(sizes).toEqual([1, 1, 1]);
      } finally {
        await tiny.close();
      }
    });

    it.each([
      ['an unknown state', { state: 99 as DispatchState }, 'state is not a known dispatch state'],
      ['a malformed battery id', { deviceId: 'x' }, 'device_id must be a UUID'],
      ['a page token not made by the API', { pageToken: 'junk' }, 'page_token is not a page token from this API'],
      ['a page size over 1000', { pageSize: 1001 }, 'page_size must be from 1 to 1000'],
      ['a start beyond any date', { startTime: { seconds: 2n ** 62n, nanos: 0 } }, 'start_time'],
    ] as const)('refuses a listing with %s naming the field', async (_case, request, message) => {
      const err = await errorOf(dispatch.listDispatches(request));
      expect(err.code).toBe('InvalidArgument');
      expect(err.message.startsWith(message)).toBe(true);
    });
  });

  describe('SetControlMode and GetControlState', () => {
    it('sets a manual override with its expiry, shows it in the control state, releases it, and replans the site each time', async () => {
      const expireTime = timestampFromMs(Date.now() + 30 * MINUTE);
      const manual = await dispatch.setControlMode({
        deviceId: ids.gamma0!,
        mode: ControlMode.MANUAL,
        manualPowerKw: -25,
        expireTime,
        reason: 'site test',
      });
      expect(manual.state).toMatchObject({ deviceId: ids.gamma0, site: 'gamma' });
      expect(timestampMs(manual.state!.manualExpireTime!)).toBe(timestampMs(expireTime));
      expect(api.takeReplans()).toEqual(['gamma']);
      expect((await dispatch.getControlState({ deviceIds: [ids.gamma0!] })).states[0]?.manualExpireTime).toEqual(
        manual.state!.manualExpireTime,
      );
      const automatic = await dispatch.setControlMode({ deviceId: ids.gamma0!, mode: ControlMode.AUTOMATIC, reason: 'done' });
      expect(automatic.state?.manualExpireTime).toBeUndefined();
      expect(api.takeReplans()).toEqual(['gamma']);
    });

    it.each([
      [
        'an unspecified mode',
        { mode: ControlMode.UNSPECIFIED },
        'InvalidArgument',
        'mode must be CONTROL_MODE_AUTOMATIC or CONTROL_MODE_MANUAL',
      ],
      ['an unknown mode', { mode: 9 as ControlMode }, 'InvalidArgument', 'mode is not a known control mode'],
      [
        "a power beyond the battery's discharge rating",
        { manualPowerKw: 81 },
        'InvalidArgument',
        "manual_power_kw must be within the battery's rating (-50 to 80 kW)",
      ],
      [
        "a charge beyond the battery's charge rating",
        { manualPowerKw: -51 },
        'InvalidArgument',
        "manual_power_kw must be within the battery's rating",
      ],
      ['a NaN power', { manualPowerKw: Number.NaN }, 'InvalidArgument', 'manual_power_kw must be a finite number'],
      ['no expiry', { expireTime: undefined }, 'InvalidArgument', 'expire_time is required for MANUAL'],
      [
        'an expiry in the past',
        { expireTime: timestampFromMs(Date.now() - 1_000) },
        'InvalidArgument',
        'expire_time must be in the future',
      ],
      [
        'an expiry more than 7 days ahead',
        { expireTime: timestampFromMs(Date.now() + 7 * DAY + MINUTE) },
        'InvalidArgument',
        'expire_time must be at most 7 days ahead',
      ],
      ['an expiry beyond any date', { expireTime: { seconds: 2n ** 62n, nanos: 0 } }, 'InvalidArgument', 'expire_time'],
      ['an empty reason', { reason: ' ' }, 'InvalidArgument', 'reason is required for MANUAL'],
      ['a malformed battery id', { deviceId: 'nope' }, 'InvalidArgument', 'device_id must be a UUID'],
      ['an unknown battery', { deviceId: UNKNOWN_ID }, 'NotFound', `device_id names no battery (got "${UNKNOWN_ID}")`],
    ] as const)('refuses an override with %s naming the field, and keeps the battery as it was', async (_case, change, code, message) => {
      const base = {
        deviceId: ids.gamma0!,
        mode: ControlMode.MANUAL,
        manualPowerKw: 10,
        expireTime: timestampFromMs(Date.now() + MINUTE),
        reason: 'r',
      };
      const request = { ...base, ...change } as typeof base;
      if ('expireTime' in change && change.expireTime === undefined) delete (request as Partial<typeof base>).expireTime;
      const err = await errorOf(dispatch.setControlMode(request));
      expect(err.code).toBe(code);
      expect(err.message.startsWith(message)).toBe(true);
      expect((await dispatch.getControlState({ deviceIds: [ids.gamma0!] })).states[0]?.manualExpireTime).toBeUndefined();
      expect(api.takeReplans()).toEqual([]);
    });

    it('refuses an override of a meter as not a battery', async () => {
      expect(await errorOf(dispatch.setControlMode({ deviceId: ids.meter!, mode: ControlMode.AUTOMATIC }))).toEqual({
        code: 'InvalidArgument',
        message: `device_id is not a battery (got "${ids.meter}")`,
      });
    });

    it("answers a site's batteries in id order with what their telemetry reports", async () => {
      const at = Date.now() - MINUTE;
      const { ack } = await api.as(UNRESTRICTED).telemetry.writeReadings({
        batch: {
          sequence: 1n,
          bessReadings: [{ deviceId: ids.alpha0!, time: timestampFromMs(at), soePercent: 50, commandSource: CommandSource.MANUAL }],
        },
      });
      expect(ack?.storedCount).toBe(1);
      const { states } = await dispatch.getControlState({ site: 'alpha' });
      expect(states.map((s) => s.deviceId)).toEqual([ids.alpha0!, ids.alpha1!].sort());
      const reported = states.find((s) => s.deviceId === ids.alpha0)!;
      expect(reported).toMatchObject({ site: 'alpha', reportedSource: CommandSource.MANUAL, reason: 'not planned yet', targetPowerKw: 0 });
      expect(timestampMs(reported.lastTelemetryTime!)).toBe(at);
      expect(states.find((s) => s.deviceId === ids.alpha1)?.lastTelemetryTime).toBeUndefined();
      expect((await dispatch.getControlState({ deviceIds: [ids.alpha1!, ids.beta0!] })).states.map((s) => s.site)).toEqual([
        'alpha',
        'beta',
      ]);
    });

    it.each([
      ['neither a site nor batteries', {}, 'InvalidArgument', 'site is required (or device_ids)'],
      ['an unknown site', { site: 'nowhere' }, 'NotFound', 'site names no site with active batteries'],
      ['an unknown battery', { deviceIds: [UNKNOWN_ID] }, 'NotFound', 'device_ids[0] names no battery'],
      ['a malformed battery id', { deviceIds: [UNKNOWN_ID, 'x'] }, 'InvalidArgument', 'device_ids[1] must be a UUID'],
      [
        'more than 1000 batteries',
        { deviceIds: Array.from({ length: 1001 }, (_, i) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`) },
        'InvalidArgument',
        'device_ids must hold at most 1000 ids',
      ],
    ] as const)('refuses a control-state read with %s naming the field', async (_case, request, code, message) => {
      const err = await errorOf(dispatch.getControlState(request as { site?: string; deviceIds?: string[] }));
      expect(err.code).toBe(code);
      expect(err.message.startsWith(message)).toBe(true);
    });
  });

  describe('WatchSetpoints', () => {
    /**
     * Opens a watch with `request`, publishes `records` once it is subscribed, and returns
     * the setpoint ids it streamed until `last` arrived, or the error it failed with.
     */
    async function watch(
      request: MessageInitShape<typeof WatchSetpointsRequestSchema>,
      records: SetpointRecord[],
      last: string,
      client = dispatch,
    ): Promise<string[] | { code: string; message: string }> {
      const stop = new AbortController();
      const before = api.subscriptions();
      const seen: string[] = [];
      let failed: ConnectError | undefined;
      const done = (async () => {
        for await (const res of client.watchSetpoints(request, { signal: stop.signal })) {
          seen.push(...res.events.map((e) => e.setpointId));
          if (seen.includes(last)) break;
        }
      })().catch((err: unknown) => {
        failed = ConnectError.from(err);
      });
      try {
        await waitFor('the watch to open or fail', () => api.subscriptions() > before || failed !== undefined, 10_000, 5);
        if (!failed) for (const r of records) api.bus.publish(r);
        await done;
      } finally {
        stop.abort();
      }
      return failed ? { code: Code[failed.code], message: failed.rawMessage } : seen;
    }

    const record = (setpointId: string, site: string, deviceId: string, phase: SetpointRecord['phase'] = 'VERIFIED'): SetpointRecord => ({
      setpointId,
      deviceId,
      site,
      phase,
      targetPowerKw: 12.5,
      source: 'DISPATCH',
      at: new Date(),
      elapsedMs: 40,
    });

    it('streams the events of the site, battery and phases asked for, and no others', async () => {
      const events = [
        record('beta-planned', 'beta', ids.beta0!, 'PLANNED'),
        record('alpha-verified', 'alpha', ids.alpha0!),
        record('beta-verified', 'beta', ids.beta0!),
        record('alpha-1-failed', 'alpha', ids.alpha1!, 'FAILED'),
        record('alpha-1-verified', 'alpha', ids.alpha1!),
      ];
      expect(await watch({ site: 'alpha' }, events, 'alpha-1-verified')).toEqual(['alpha-verified', 'alpha-1-failed', 'alpha-1-verified']);
      expect(await watch({ deviceId: ids.alpha1! }, events, 'alpha-1-verified')).toEqual(['alpha-1-failed', 'alpha-1-verified']);
      expect(await watch({ phases: [SetpointPhase.VERIFIED] }, events, 'alpha-1-verified')).toEqual([
        'alpha-verified',
        'beta-verified',
        'alpha-1-verified',
      ]);
    });

    it("streams a bound caller only its own sites' events", async () => {
      const desk = api.as(boundTo('token:watch-beta', ['beta'])).dispatch;
      const events = [record('alpha-verified', 'alpha', ids.alpha0!), record('beta-verified', 'beta', ids.beta0!)];
      expect(await watch({}, events, 'beta-verified', desk)).toEqual(['beta-verified']);
      expect(await watch({ site: 'alpha' }, events, 'beta-verified', desk)).toEqual({
        code: 'PermissionDenied',
        message: 'site names site "alpha", which token:watch-beta is not bound to',
      });
    });

    it.each<[string, MessageInitShape<typeof WatchSetpointsRequestSchema>, string]>([
      ['a malformed battery id', { deviceId: 'x' }, 'device_id must be a UUID (got "x")'],
      [
        'an unspecified phase',
        { phases: [SetpointPhase.VERIFIED, SetpointPhase.UNSPECIFIED] },
        'phases[1] must be a known setpoint phase (got 0)',
      ],
      ['a site with a NUL', { site: 'alpha\u0000' }, 'site must not contain a NUL character'],
    ])('ends a watch with %s with INVALID_ARGUMENT naming the field', async (_case, request, message) => {
      const answer = await watch(request, [], 'never');
      expect(answer).toMatchObject({
        code: 'InvalidArgument',
        message: expect.stringMatching(new RegExp(`^${message.replace(/[()[\]]/g, '\\$&')}`)),
      });
    });
  });

  describe('market data', () => {
    const hour = Date.UTC(2026, 0, 1, 12, 0);

    it('stores points, counts unchanged and revised ones, and answers the latest revision', async () => {
      const time = timestampFromMs(hour);
      expect(
        await dispatch.publishMarketData({
          points: [
            { time, type: 'niv_estimate', value: 120.5 },
            { time, type: 'imbalance_price', value: 85 },
          ],
        }),
      ).toMatchObject({ storedCount: 2, unchangedCount: 0, revisedCount: 0 });
      expect(await dispatch.publishMarketData({ points: [{ time, type: 'niv_estimate', value: 120.5 }] })).toMatchObject({
        storedCount: 0,
        unchangedCount: 1,
        revisedCount: 0,
      });
      expect(
        await dispatch.publishMarketData({ points: [{ time, type: 'niv_estimate', value: -40, metadata: { source: 'desk' } }] }),
      ).toMatchObject({ storedCount: 0, unchangedCount: 0, revisedCount: 1 });
      const listed = await dispatch.listMarketData({ startTime: time, endTime: timestampFromMs(hour + 60 * MINUTE) });
      expect(listed.points.map((p) => [p.type, p.value, p.metadata])).toEqual(
        expect.arrayContaining([
          ['niv_estimate', -40, { source: 'desk' }],
          ['imbalance_price', 85, undefined],
        ]),
      );
      expect(listed.points).toHaveLength(2);
      expect(
        (
          await dispatch.listMarketData({ types: ['imbalance_price'], startTime: time, endTime: timestampFromMs(hour + 60 * MINUTE) })
        ).points.map((p) => p.value),
      ).toEqual([85]);
    });

    it('pages market data by count and by bytes, in time order', async () => {
      const start = hour + 2 * 60 * MINUTE;
      await dispatch.publishMarketData({
        points: Array.from({ length: 5 }, (_, i) => ({
          time: timestampFromMs(start + i * 30 * MINUTE),
          type: 'wholesale_price',
          value: i,
        })),
      });
      const range = { types: ['wholesale_price'], startTime: timestampFromMs(start), endTime: timestampFromMs(start + 5 * 30 * MINUTE) };
      const pages = async (client: DispatchClient, pageSize: number) => {
        const values: number[][] = [];
        let pageToken = '';
        for (let i = 0; i < 10; i++) {
          const page = await client.listMarketData({ ...range, pageSize, pageToken });
          values.push(page.points.map((p) => p.value));
          pageToken = page.nextPageToken;
          if (pageToken === '') break;
        }
        return values;
      };
      expect(await pages(dispatch, 2)).toEqual([[0, 1], [2, 3], [4]]);
      const tiny = serveInMemory(await testDb.open(), testDb.config, { pageBytes: 1 });
      try {
        expect(await pages(tiny.as(UNRESTRICTED).dispatch, 100)).toEqual([[0], [1], [2], [3], [4]]);
      } finally {
        await tiny.close();
      }
      const first = await dispatch.listMarketData({ ...range, pageSize: 2 });
      expect(await errorOf(dispatch.listMarketData({ ...range, types: [], pageSize: 2, pageToken: first.nextPageToken }))).toMatchObject({
        code: 'InvalidArgument',
        message: expect.stringMatching(/^page_token was made for a listing with other filters/),
      });
    });

    it.each([
      ['an unknown type', (t: number) => [{ time: timestampFromMs(t), type: 'spot_guess', value: 1 }], 'points[0].type must be one of'],
      [
        'an infinite value after a good point',
        (t: number) => [
          { time: timestampFromMs(t), type: 'imbalance_price', value: 1 },
          { time: timestampFromMs(t), type: 'niv_estimate', value: Number.POSITIVE_INFINITY },
        ],
        'points[1].value must be a finite number',
      ],
      ['a missing time', (_t: number) => [{ type: 'imbalance_price', value: 1 }], 'points[0].time is required'],
      [
        'a time more than 31 days ahead',
        (_t: number) => [{ time: timestampFromMs(Date.now() + 32 * DAY), type: 'imbalance_price', value: 1 }],
        'points[0].time must be at most 31 days ahead of now',
      ],
      [
        'a time beyond any date',
        (_t: number) => [{ time: { seconds: 2n ** 62n, nanos: 0 }, type: 'imbalance_price', value: 1 }],
        'points[0].time',
      ],
      ['no points', (_t: number) => [], 'points must hold 1 to 10000 points'],
    ] as const)('refuses a batch with %s whole, naming the point, and stores none of it', async (_case, points, message) => {
      const at = hour + 12 * 60 * MINUTE;
      const err = await errorOf(dispatch.publishMarketData({ points: points(at) as never }));
      expect(err.code).toBe('InvalidArgument');
      expect(err.message.startsWith(message)).toBe(true);
      expect((await dispatch.listMarketData({ startTime: timestampFromMs(at), endTime: timestampFromMs(at + MINUTE) })).points).toEqual([]);
    });

    it.each<[string, MessageInitShape<typeof ListMarketDataRequestSchema>, string]>([
      [
        'an end not after the start',
        { startTime: timestampFromMs(hour), endTime: timestampFromMs(hour) },
        'end_time must be after start_time',
      ],
      ['a missing start', { endTime: timestampFromMs(hour) }, 'start_time is required'],
      [
        'an unknown type',
        { startTime: timestampFromMs(hour), endTime: timestampFromMs(hour + MINUTE), types: ['niv_estimate', 'spot_guess'] },
        'types[1] must be one of',
      ],
      [
        'a page size over 10000',
        { startTime: timestampFromMs(hour), endTime: timestampFromMs(hour + MINUTE), pageSize: 10_001 },
        'page_size must be from 1 to 10000',
      ],
    ])('refuses a market data query with %s naming the field', async (_case, request, message) => {
      const err = await errorOf(dispatch.listMarketData(request));
      expect(err.code).toBe('InvalidArgument');
      expect(err.message.startsWith(message)).toBe(true);
    });
  });

  describe('site settings', () => {
    it('answers defaults for a site never set, stores settings whole, and replans the site', async () => {
      expect((await dispatch.getSiteConfig({ site: 'beta' })).config).toMatchObject({
        site: 'beta',
        avoidImport: false,
        avoidExport: false,
      });
      expect((await dispatch.getSiteConfig({ site: 'beta' })).config?.nivChase).toBeUndefined();
      const config = {
        site: 'beta',
        importLimitKw: 400,
        nivChase: {
          enabled: true,
          nivThresholdMw: 100,
          shortPriceThreshold: 50,
          longPriceThreshold: 0,
          shortTargetSoePercent: 48,
          longTargetSoePercent: 52,
        },
        soeTarget: { enabled: false, soePercent: 60, maxPowerKw: 20 },
        avoidExport: true,
      };
      const { config: stored } = await dispatch.setSiteConfig({ config });
      expect(stored).toMatchObject(config);
      expect(api.takeReplans()).toEqual(['beta']);
      expect((await dispatch.getSiteConfig({ site: 'beta' })).config).toEqual(stored);
      // A later set replaces the settings whole: what it leaves out is off.
      await dispatch.setSiteConfig({ config: { site: 'beta' } });
      expect((await dispatch.getSiteConfig({ site: 'beta' })).config?.nivChase).toBeUndefined();
      api.takeReplans();
    });

    it.each([
      ['no settings', {}, 'InvalidArgument', 'config is required'],
      ['a negative import limit', { config: { site: 'beta', importLimitKw: -1 } }, 'InvalidArgument', 'config.import_limit_kw'],
      [
        'a NaN NIV price threshold',
        {
          config: { site: 'beta', nivChase: { enabled: true, nivThresholdMw: 1, shortPriceThreshold: Number.NaN, longPriceThreshold: 0 } },
        },
        'InvalidArgument',
        'config.niv_chase.short_price_threshold',
      ],
      [
        'a state-of-energy target over 100',
        { config: { site: 'beta', soeTarget: { enabled: true, soePercent: 101, maxPowerKw: 10 } } },
        'InvalidArgument',
        'config.soe_target.soe_percent',
      ],
      [
        'a negative state-of-energy power',
        { config: { site: 'beta', soeTarget: { enabled: true, soePercent: 50, maxPowerKw: -1 } } },
        'InvalidArgument',
        'config.soe_target.max_power_kw',
      ],
      ['a site without batteries', { config: { site: 'nowhere' } }, 'NotFound', 'config.site names no site with active batteries'],
    ] as const)('refuses settings with %s naming the field, and keeps the old ones', async (_case, request, code, message) => {
      const before = (await dispatch.getSiteConfig({ site: 'beta' })).config;
      const err = await errorOf(dispatch.setSiteConfig(request));
      expect(err.code).toBe(code);
      expect(err.message.startsWith(message)).toBe(true);
      expect((await dispatch.getSiteConfig({ site: 'beta' })).config).toEqual(before);
      expect(api.takeReplans()).toEqual([]);
    });

    it("refuses to read settings without a site, and a bound caller another site's", async () => {
      expect(await errorOf(dispatch.getSiteConfig({ site: '' }))).toEqual({
        code: 'InvalidArgument',
        message: 'site is required (got "")',
      });
      const desk = api.as(boundTo('token:config-beta', ['beta'])).dispatch;
      expect(await errorOf(desk.getSiteConfig({ site: 'alpha' }))).toEqual({
        code: 'PermissionDenied',
        message: 'site names site "alpha", which token:config-beta is not bound to',
      });
      expect(await errorOf(desk.setSiteConfig({ config: { site: 'alpha' } }))).toEqual({
        code: 'PermissionDenied',
        message: 'config.site names site "alpha", which token:config-beta is not bound to',
      });
    });
  });
});
