import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DispatchState } from '../../gen/powerplane/v1/dispatch_pb.ts';
import { errorOf } from '../../test/support/api.ts';
import { ENGINES, type TestDatabase } from '../../test/support/databases.ts';
import { serveInMemory, type InMemoryApi } from '../../test/support/services.ts';
import { waitFor } from '../../test/support/wait.ts';
import { UNRESTRICTED } from '../rpc/principal.ts';
import { interval, MINUTE, serveDispatchFleet, UNKNOWN_ID, type DispatchClient, type DispatchFleet } from './dispatch.service.fixtures.ts';

/**
 * GetDispatch, CancelDispatch and ListDispatches in memory, over the fleet and services of
 * `dispatch.service.fixtures.ts`: cancelling with a reason, what cannot be cancelled, and
 * listings filtered and paged by count and by bytes.
 */

describe.each(ENGINES)('DispatchService in memory on %s', (engine) => {
  let fleet: DispatchFleet;
  let testDb: TestDatabase;
  let api: InMemoryApi;
  let dispatch: DispatchClient;
  let ids: DispatchFleet['ids'];

  beforeAll(async () => {
    fleet = await serveDispatchFleet(engine);
    ({ testDb, api, dispatch, ids } = fleet);
  });
  afterAll(() => fleet?.close());

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
});
