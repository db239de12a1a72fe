import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import type { Client } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ReadingsService, TimeOrder } from '../../gen/powerplane/v1/readings_pb.ts';
import { errorOf } from '../../test/support/api.ts';
import { createTestDatabase, ENGINES, type TestDatabase } from '../../test/support/databases.ts';
import { serveInMemory, type InMemoryApi } from '../../test/support/services.ts';
import { batch, datumReading, recentMinute, registerDevice } from '../../test/telemetry/helpers.ts';
import { SCOPES, UNRESTRICTED, type Principal } from '../rpc/principal.ts';
import type { Database } from '../storage/database.ts';

/**
 * ReadingsService through `createRouterTransport`: the real service, request-text, audit
 * and error interceptors over a real database, no HTTP. The queries' answers must be the
 * same on PostgreSQL and PGlite, so every case runs on both.
 */

type ReadingsClient = Client<typeof ReadingsService>;

/** Inserts meter rows straight into the table (fixtures older than the ingest backfill window). */
async function insertMeter(
  database: Database,
  deviceId: string,
  rows: [iso: string, imported: number | null, exported: number | null, power: number | null][],
): Promise<void> {
  await database.withSession(async (s) => {
    for (const [iso, imported, exported, power] of rows) {
      await s.query(
        `insert into flux.mg_meter_readings ("time", device_id, energy_imported_active, energy_exported_active, power_total_active)
         values ($1, $2, $3, $4, $5)`,
        [iso, deviceId, imported, exported, power],
      );
    }
  });
}

/** Inserts battery rows: [time, soe, target power, command source]. */
async function insertBess(
  database: Database,
  deviceId: string,
  rows: [iso: string, soe: number, targetPower: number, commandSource: number][],
): Promise<void> {
  await database.withSession(async (s) => {
    for (const [iso, soe, targetPower, source] of rows) {
      await s.query(
        `insert into flux.mg_bess_readings ("time", device_id, soe, target_power, command_source) values ($1, $2, $3, $4, $5)`,
        [iso, deviceId, soe, targetPower, source],
      );
    }
  });
}

function range(startIso: string, endIso: string) {
  return { startTime: timestampFromMs(Date.parse(startIso)), endTime: timestampFromMs(Date.parse(endIso)) };
}

/** Every page of a listing, following its page tokens (at most 50 pages). */
async function allPages<T>(list: (pageToken: string) => Promise<{ items: T[]; nextPageToken: string }>): Promise<T[][]> {
  const pages: T[][] = [];
  let pageToken = '';
  for (let i = 0; i < 50; i++) {
    const page = await list(pageToken);
    pages.push(page.items);
    pageToken = page.nextPageToken;
    if (pageToken === '') return pages;
  }
  throw new Error('a listing did not end within 50 pages');
}

describe.each(ENGINES)('ReadingsService in memory on %s', (engine) => {
  let testDb: TestDatabase;
  let database: Database;
  let api: InMemoryApi;
  let readings: ReadingsClient;

  beforeAll(async () => {
    testDb = await createTestDatabase(engine);
    database = await testDb.open();
    api = serveInMemory(database, testDb.config);
    readings = api.as(UNRESTRICTED).readings;
  });
  afterAll(async () => {
    await api?.close();
    await testDb?.drop();
  });

  it('computes settlement deltas interpolated at boundaries across a gap and a counter reset, the last period running', async () => {
    const meter = await registerDevice(database, 'meter');
    // Imported counter: 100 → 130 → 140, resets to 0 and reads 5, then 15, then a gap to 30.
    // Exported counter grows 2 kWh per reading until the gap.
    await insertMeter(database, meter, [
      ['2024-01-01T00:10:00Z', 100, 0, 2],
      ['2024-01-01T00:40:00Z', 130, 2, 4],
      ['2024-01-01T00:50:00Z', 140, 4, 6],
      ['2024-01-01T01:10:00Z', 5, 6, 8],
      ['2024-01-01T01:20:00Z', 15, 8, 10],
      ['2024-01-01T02:45:00Z', 30, 8, 12],
    ]);
    const { periods } = await readings.listSettlementPeriods({
      deviceIds: [meter],
      range: range('2024-01-01T00:00:00Z', '2024-01-01T03:00:00Z'),
    });
    // Reset-corrected imported counter C: 0, 30, 40, 45, 55, 70 at the six readings.
    // C(00:30) = 20, C(01:00) = 42.5, C(01:30) = 55 + 15·10/85, C(02:00) = 55 + 15·40/85, C(02:30) = 55 + 15·70/85.
    // Exported: E(00:30) = 4/3, E(01:00) = 5, E(01:30) = E(02:00) = E(02:30) = 8.
    // Nothing follows 02:45, so the last period runs from C(02:30) to C(02:45) = 70 and is
    // not complete; the first has no reading before it to interpolate its start from.
    const expected = [
      { start: '2024-01-01T00:00:00Z', period: 1, power: 2, imported: undefined, exported: undefined, complete: true },
      { start: '2024-01-01T00:30:00Z', period: 2, power: 5, imported: 22.5, exported: 5 - 4 / 3, complete: true },
      { start: '2024-01-01T01:00:00Z', period: 3, power: 9, imported: 55 + (15 * 10) / 85 - 42.5, exported: 3, complete: true },
      { start: '2024-01-01T01:30:00Z', period: 4, power: undefined, imported: (15 * 30) / 85, exported: 0, complete: true },
      { start: '2024-01-01T02:00:00Z', period: 5, power: undefined, imported: (15 * 30) / 85, exported: 0, complete: true },
      { start: '2024-01-01T02:30:00Z', period: 6, power: 12, imported: (15 * 15) / 85, exported: 0, complete: false },
    ];
    expect(periods).toHaveLength(expected.length);
    periods.forEach((p, i) => {
      const e = expected[i]!;
      expect(Number(p.startTime!.seconds) * 1000).toBe(Date.parse(e.start));
      expect(p).toMatchObject({ deviceId: meter, settlementDate: '2024-01-01', settlementPeriod: e.period, complete: e.complete });
      expect(p.powerTotalActiveAvgKw).toBe(e.power);
      if (e.imported === undefined) expect(p.energyImportedActiveDeltaKwh).toBeUndefined();
      else expect(p.energyImportedActiveDeltaKwh).toBeCloseTo(e.imported, 9);
      if (e.exported === undefined) expect(p.energyExportedActiveDeltaKwh).toBeUndefined();
      else expect(p.energyExportedActiveDeltaKwh).toBeCloseTo(e.exported, 9);
    });
  });

  it.each([
    ['spring', '2024-03-31', 46, '2024-03-31T00:00:00Z', '2024-03-31T23:00:00Z'],
    ['autumn', '2024-10-27', 50, '2024-10-26T23:00:00Z', '2024-10-28T00:00:00Z'],
  ] as const)('numbers the %s clock-change day %s with %i periods', async (_season, date, count, startIso, endIso) => {
    const meter = await registerDevice(database, 'meter');
    const rows: [string, number, number, number][] = [];
    for (let ms = Date.parse(startIso) - 30 * 60_000, i = 0; ms <= Date.parse(endIso); ms += 15 * 60_000, i++)
      rows.push([new Date(ms).toISOString(), i, 0, 1]);
    await insertMeter(database, meter, rows);
    const { periods } = await readings.listSettlementPeriods({ deviceIds: [meter], range: range(startIso, endIso) });
    expect(periods.map((p) => p.settlementPeriod)).toEqual(Array.from({ length: count }, (_, i) => i + 1));
    expect(new Set(periods.map((p) => p.settlementDate))).toEqual(new Set([date]));
    for (const p of periods) expect(p.energyImportedActiveDeltaKwh).toBeCloseTo(2, 9);
  });

  it('pages raw meter readings in either order without gaps or repeats, and refuses an edited page token', async () => {
    const a = await registerDevice(database, 'meter');
    const b = await registerDevice(database, 'meter');
    const rows: [string, number, number, number][] = [];
    for (let i = 0; i < 7; i++) rows.push([new Date(Date.parse('2024-02-01T00:00:00Z') + i * 60_000).toISOString(), i, 0, i]);
    await insertMeter(database, a, rows);
    await insertMeter(database, b, rows);
    const hour = range('2024-02-01T00:00:00Z', '2024-02-01T01:00:00Z');
    for (const order of [TimeOrder.ASCENDING, TimeOrder.DESCENDING]) {
      const pages = await allPages(async (pageToken) => {
        const res = await readings.listMeterReadings({ deviceIds: [a, b], range: hour, order, pageSize: 3, pageToken });
        return { items: res.meterReadings.map((r) => `${r.time!.seconds}/${r.deviceId}`), nextPageToken: res.nextPageToken };
      });
      expect(pages.map((p) => p.length)).toEqual([3, 3, 3, 3, 2]);
      const seen = pages.flat();
      const sorted = [...seen].sort();
      expect(seen).toEqual(order === TimeOrder.ASCENDING ? sorted : sorted.reverse());
      expect(new Set(seen).size).toBe(14);
    }
    // A token whose key was edited by hand is refused naming page_token, never sent to SQL.
    const request = { deviceIds: [a, b], range: hour, pageSize: 3 };
    const token = JSON.parse(Buffer.from((await readings.listMeterReadings(request)).nextPageToken, 'base64url').toString('utf8')) as {
      k: unknown[];
    };
    token.k[1] = 'not-a-uuid';
    expect(
      await errorOf(readings.listMeterReadings({ ...request, pageToken: Buffer.from(JSON.stringify(token)).toString('base64url') })),
    ).toMatchObject({
      code: 'InvalidArgument',
      message: expect.stringMatching(/^page_token /),
    });
    // A token is for the listing it came from: another device set is refused.
    const next = (await readings.listMeterReadings(request)).nextPageToken;
    expect(await errorOf(readings.listMeterReadings({ ...request, deviceIds: [a], pageToken: next }))).toMatchObject({
      code: 'InvalidArgument',
      message: expect.stringMatching(/^page_token was made for a listing with other filters/),
    });
    const first = await readings.listMeterReadings({ deviceIds: [a], range: range('2024-02-01T00:00:00Z', '2024-02-01T00:01:00Z') });
    expect(first.meterReadings).toHaveLength(1);
    expect(first.meterReadings[0]).toMatchObject({ deviceId: a, energyImportedActiveKwh: 0, powerTotalActiveKw: 0 });
  });

  it('ends a page of readings by bytes as well as by count, always holding at least one row', async () => {
    const meter = await registerDevice(database, 'meter');
    const rows: [string, number, number, number][] = [];
    for (let i = 0; i < 4; i++) rows.push([new Date(Date.parse('2024-02-05T00:00:00Z') + i * 60_000).toISOString(), i, 0, i]);
    await insertMeter(database, meter, rows);
    // A budget smaller than any row: every page holds one reading, and none is lost.
    const tiny = serveInMemory(database, testDb.config, { pageBytes: 1 });
    try {
      const pages = await allPages(async (pageToken) => {
        const res = await tiny.as(UNRESTRICTED).readings.listMeterReadings({
          deviceIds: [meter],
          range: range('2024-02-05T00:00:00Z', '2024-02-05T01:00:00Z'),
          pageSize: 100,
          pageToken,
        });
        return { items: res.meterReadings.map((r) => Number(r.time!.seconds)), nextPageToken: res.nextPageToken };
      });
      expect(pages).toEqual(rows.map(([iso]) => [Date.parse(iso) / 1000]));
    } finally {
      await tiny.close();
    }
  });

  it('lists battery readings of several batteries in time order, page by page', async () => {
    const one = await registerDevice(database, 'bess');
    const two = await registerDevice(database, 'bess');
    await insertBess(database, one, [
      ['2024-02-06T00:00:00Z', 40, 10, 1],
      ['2024-02-06T00:02:00Z', 42, 20, 2],
    ]);
    await insertBess(database, two, [['2024-02-06T00:01:00Z', 60, -30, 3]]);
    const pages = await allPages(async (pageToken) => {
      const res = await readings.listBessReadings({
        deviceIds: [one, two],
        range: range('2024-02-06T00:00:00Z', '2024-02-06T01:00:00Z'),
        pageSize: 2,
        pageToken,
      });
      return {
        items: res.bessReadings.map((r) => [r.deviceId, r.soePercent, r.targetPowerKw, r.commandSource]),
        nextPageToken: res.nextPageToken,
      };
    });
    expect(pages).toEqual([
      [
        [one, 40, 10, 1],
        [two, 60, -30, 3],
      ],
      [[one, 42, 20, 2]],
    ]);
    const descending = await readings.listBessReadings({
      deviceIds: [one],
      range: range('2024-02-06T00:00:00Z', '2024-02-06T01:00:00Z'),
      order: TimeOrder.DESCENDING,
    });
    expect(descending.bessReadings.map((r) => r.soePercent)).toEqual([42, 40]);
  });

  it('answers 5-minute aggregates named as the Flux view', async () => {
    const meter = await registerDevice(database, 'meter');
    await insertMeter(database, meter, [
      ['2024-02-02T00:00:00Z', 10, 1, 4],
      ['2024-02-02T00:02:00Z', 12, 1, 6],
      ['2024-02-02T00:05:00Z', 15, 2, 8],
    ]);
    const { aggregates } = await readings.listMeterAggregates({
      deviceIds: [meter],
      range: range('2024-02-02T00:00:00Z', '2024-02-02T00:10:00Z'),
    });
    expect(
      aggregates.map((a) => [
        Number(a.bucketStartTime!.seconds) * 1000,
        a.readingCount,
        a.powerTotalActiveAvgKw,
        a.energyImportedActiveMinKwh,
        a.energyImportedActiveMaxKwh,
      ]),
    ).toEqual([
      [Date.parse('2024-02-02T00:00:00Z'), 2, 5, 10, 12],
      [Date.parse('2024-02-02T00:05:00Z'), 1, 8, 15, 15],
    ]);
  });

  it('returns the latest battery state by id and by site, and for a caller bound to one site without naming it', async () => {
    const bess = await registerDevice(database, 'bess', { site: 'latest-site' });
    await insertBess(database, bess, [
      ['2024-02-03T00:00:00Z', 40, 10, 1],
      ['2024-02-03T00:01:00Z', 41, -25, 3],
    ]);
    const byId = await readings.getLatestBessState({ deviceIds: [bess] });
    expect(byId.states).toHaveLength(1);
    expect(byId.states[0]).toMatchObject({ deviceId: bess, soePercent: 41, targetPowerKw: -25, commandSource: 3 });
    expect((await readings.getLatestBessState({ site: 'latest-site' })).states.map((s) => s.deviceId)).toEqual([bess]);
    const bound: Principal = { id: 'token:latest', kind: 'token', scopes: new Set(SCOPES), sites: new Set(['latest-site']) };
    expect((await api.as(bound).readings.getLatestBessState({})).states.map((s) => s.deviceId)).toEqual([bess]);
  });

  it('lists datum readings written through ingest, page by page, and answers an unknown source NOT_FOUND naming source_id', async () => {
    const bess = await registerDevice(database, 'bess');
    const at = recentMinute(30);
    const { ack } = await api.as(UNRESTRICTED).telemetry.writeReadings({
      batch: batch(1, {
        datum: [
          datumReading(bess, 'cells', at, { instantaneous: { temp_c: 21.5 }, status: { alarm: 'none' } }),
          datumReading(bess, 'cells', at + 60_000, { instantaneous: { temp_c: 22 }, accumulating: { cycles: 7 } }),
          datumReading(bess, 'cells', at + 120_000, { instantaneous: { temp_c: 22.5 } }),
        ],
      }),
    });
    expect(ack).toMatchObject({ storedCount: 3, rejectedCount: 0 });
    const window = { startTime: timestampFromMs(at - 1_000), endTime: timestampFromMs(at + 3_600_000) };
    const pages = await allPages(async (pageToken) => {
      const res = await readings.listDatumReadings({ deviceId: bess, sourceId: 'cells', range: window, pageSize: 2, pageToken });
      return {
        items: res.datumReadings.map((d) => [d.deviceId, d.sourceId, d.instantaneous, d.accumulating, d.status]),
        nextPageToken: res.nextPageToken,
      };
    });
    expect(pages).toEqual([
      [
        [bess, 'cells', { temp_c: 21.5 }, {}, { alarm: 'none' }],
        [bess, 'cells', { temp_c: 22 }, { cycles: 7 }, {}],
      ],
      [[bess, 'cells', { temp_c: 22.5 }, {}, {}]],
    ]);
    const latestFirst = await readings.listDatumReadings({
      deviceId: bess,
      sourceId: 'cells',
      range: window,
      order: TimeOrder.DESCENDING,
      pageSize: 1,
    });
    expect(latestFirst.datumReadings.map((d) => d.instantaneous)).toEqual([{ temp_c: 22.5 }]);
    expect(await errorOf(readings.listDatumReadings({ deviceId: bess, sourceId: 'fans', range: window }))).toEqual({
      code: 'NotFound',
      message: 'source_id names no datum stream (got "fans")',
    });
  });

  const someId = '9b2a4a55-0000-4000-8000-000000000000';
  const ids = (n: number) => Array.from({ length: n }, (_, i) => `9b2a4a55-0000-4000-8000-${String(i).padStart(12, '0')}`);
  const day = range('2024-02-01T00:00:00Z', '2024-02-02T00:00:00Z');
  it.each([
    ['no device ids', (r: ReadingsClient) => r.listMeterReadings({ deviceIds: [], range: day }), 'device_ids'],
    ['more than 100 device ids', (r: ReadingsClient) => r.listBessReadings({ deviceIds: ids(101), range: day }), 'device_ids'],
    ['a malformed device id', (r: ReadingsClient) => r.listMeterReadings({ deviceIds: [someId, 'meter-1'], range: day }), 'device_ids'],
    ['a missing range', (r: ReadingsClient) => r.listMeterReadings({ deviceIds: [someId] }), 'range'],
    [
      'a missing start time',
      (r: ReadingsClient) => r.listMeterReadings({ deviceIds: [someId], range: { endTime: day.endTime } }),
      'range.start_time',
    ],
    [
      'a missing end time',
      (r: ReadingsClient) => r.listBessReadings({ deviceIds: [someId], range: { startTime: day.startTime } }),
      'range.end_time',
    ],
    [
      'an end before the start',
      (r: ReadingsClient) => r.listMeterReadings({ deviceIds: [someId], range: range('2024-02-02T00:00:00Z', '2024-02-01T00:00:00Z') }),
      'range.end_time must be after range.start_time',
    ],
    [
      'a start beyond any date',
      (r: ReadingsClient) =>
        r.listMeterReadings({ deviceIds: [someId], range: { startTime: { seconds: 2n ** 62n }, endTime: day.endTime } }),
      'range.start_time',
    ],
    ['an unknown order', (r: ReadingsClient) => r.listMeterReadings({ deviceIds: [someId], range: day, order: 7 as TimeOrder }), 'order'],
    [
      'a page size over 10000',
      (r: ReadingsClient) => r.listBessReadings({ deviceIds: [someId], range: day, pageSize: 10_001 }),
      'page_size',
    ],
    [
      'a page token not made by the API',
      (r: ReadingsClient) => r.listMeterReadings({ deviceIds: [someId], range: day, pageToken: 'junk' }),
      'page_token',
    ],
    [
      'an aggregate range over 31 days',
      (r: ReadingsClient) => r.listMeterAggregates({ deviceIds: [someId], range: range('2024-01-01T00:00:00Z', '2024-02-01T00:00:01Z') }),
      'range',
    ],
    [
      'a settlement range over 31 days',
      (r: ReadingsClient) => r.listSettlementPeriods({ deviceIds: [someId], range: range('2024-01-01T00:00:00Z', '2024-03-01T00:00:00Z') }),
      'range',
    ],
    ['more than 100 settlement meters', (r: ReadingsClient) => r.listSettlementPeriods({ deviceIds: ids(101), range: day }), 'device_ids'],
    ['neither batteries nor a site', (r: ReadingsClient) => r.getLatestBessState({}), 'device_ids'],
    ['more than 1000 latest-state ids', (r: ReadingsClient) => r.getLatestBessState({ deviceIds: ids(1001) }), 'device_ids'],
    ['a missing datum source', (r: ReadingsClient) => r.listDatumReadings({ deviceId: someId, sourceId: '', range: day }), 'source_id'],
    [
      'a malformed datum device id',
      (r: ReadingsClient) => r.listDatumReadings({ deviceId: 'x', sourceId: 'inv/1', range: day }),
      'device_id',
    ],
    ['a device id with a NUL', (r: ReadingsClient) => r.listBessReadings({ deviceIds: [`${someId}\u0000`], range: day }), 'device_ids[0]'],
  ] as const)('refuses %s with INVALID_ARGUMENT naming the field', async (_case, call, field) => {
    const err = await errorOf((call as (r: ReadingsClient) => Promise<unknown>)(readings));
    expect(err.code).toBe('InvalidArgument');
    expect(err.message.startsWith(field)).toBe(true);
  });
});
