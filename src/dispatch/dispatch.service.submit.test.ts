import type { MessageInitShape } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DispatchAction, DispatchState, type SubmitDispatchRequestSchema } from '../../gen/powerplane/v1/dispatch_pb.ts';
import { errorOf } from '../../test/support/api.ts';
import { ENGINES } from '../../test/support/databases.ts';
import type { InMemoryApi } from '../../test/support/services.ts';
import { UNRESTRICTED } from '../rpc/principal.ts';
import {
  boundTo,
  DAY,
  interval,
  MINUTE,
  serveDispatchFleet,
  UNKNOWN_ID,
  type DispatchClient,
  type DispatchFleet,
} from './dispatch.service.fixtures.ts';

/**
 * SubmitDispatch in memory, over the fleet and services of `dispatch.service.fixtures.ts`:
 * a schedule is stored as one instruction per interval and its site replanned, a retried
 * request id gets the first answer, and every refusal names its field, storing and
 * replanning nothing.
 */

type SubmitRequest = MessageInitShape<typeof SubmitDispatchRequestSchema>;
/** A SubmitDispatch request a case may have spoilt beyond what the generated types allow. */
type LooseSubmit = {
  requestId: string;
  target: { case: 'site' | 'deviceId'; value: string } | { case: undefined };
  priority: number;
  intervals: Record<string, unknown>[];
};

describe.each(ENGINES)('DispatchService in memory on %s', (engine) => {
  let fleet: DispatchFleet;
  let api: InMemoryApi;
  let dispatch: DispatchClient;
  let ids: DispatchFleet['ids'];

  beforeAll(async () => {
    fleet = await serveDispatchFleet(engine);
    ({ api, dispatch, ids } = fleet);
  });
  afterAll(() => fleet?.close());

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
});
