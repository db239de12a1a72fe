import type { MessageInitShape } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ListMarketDataRequestSchema } from '../../gen/powerplane/v1/dispatch_pb.ts';
import { errorOf } from '../../test/support/api.ts';
import { ENGINES, type TestDatabase } from '../../test/support/databases.ts';
import { serveInMemory } from '../../test/support/services.ts';
import { UNRESTRICTED } from '../rpc/principal.ts';
import { DAY, MINUTE, serveDispatchFleet, type DispatchClient, type DispatchFleet } from './dispatch.service.fixtures.ts';

/**
 * PublishMarketData and ListMarketData in memory, over the fleet and services of
 * `dispatch.service.fixtures.ts`: revisions counted and the latest answered, pages by
 * count and by bytes, and a bad batch refused whole.
 */

describe.each(ENGINES)('DispatchService in memory on %s', (engine) => {
  let fleet: DispatchFleet;
  let testDb: TestDatabase;
  let dispatch: DispatchClient;

  beforeAll(async () => {
    fleet = await serveDispatchFleet(engine);
    ({ testDb, dispatch } = fleet);
  });
  afterAll(() => fleet?.close());

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
});
