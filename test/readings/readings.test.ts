import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TimeOrder } from '../../gen/powerplane/v1/readings_pb.ts';
import type { Database } from '../../src/storage/database.ts';
import { ENGINES } from '../support/databases.ts';
import { startTestServer, type TestServer } from '../support/server.ts';
import { clients, registerDevice } from '../telemetry/helpers.ts';

/** Inserts meter rows straight into the table (fixtures older than the ingest backfill window). */
async function insertMeter(
  database: Database,
  deviceId: string,
  rows: [iso: string, imported: number | null, exported: number | null, power: number | null][],
): Promise<void> {
  await database.withSession(async (s) => {
    for (const [iso, imported, exported, power] of rows) {
      await s.query(
        `insert into flux.mg_meter_readings ("time", device_id, energy_imported_active, energy_exported_active, power_total_active) values ($1, $2, $3, $4, $5)`,
        [iso, deviceId, imported, exported, power],
      );
    }
  });
}

function range(startIso: string, endIso: string) {
  return { startTime: timestampFromMs(Date.parse(startIso)), endTime: timestampFromMs(Date.parse(endIso)) };
}

describe.each(ENGINES)('readings queries on %s', (engine) => {
  let t: TestServer;
  let api: ReturnType<typeof clients>;

  beforeAll(async () => {
    t = await startTestServer(engine);
    api = clients(t.baseUrl);
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('computes settlement deltas interpolated at boundaries across a gap and a counter reset', async () => {
    const meter = await registerDevice(t.server.database, 'meter');
    // Imported counter: 100 → 130 → 140, resets to 0 and reads 5, then 15, then a gap to 30.
    // Exported counter grows 2 kWh per reading until the gap.
    await insertMeter(t.server.database, meter, [
      ['2024-01-01T00:10:00Z', 100, 0, 2],
      ['2024-01-01T00:40:00Z', 130, 2, 4],
      ['2024-01-01T00:50:00Z', 140, 4, 6],
      ['2024-01-01T01:10:00Z', 5, 6, 8],
      ['2024-01-01T01:20:00Z', 15, 8, 10],
      ['2024-01-01T02:45:00Z', 30, 8, 12],
    ]);
    const { periods } = await api.readings.listSettlementPeriods({
      deviceIds: [meter],
      range: range('2024-01-01T00:00:00Z', '2024-01-01T03:00:00Z'),
    });
    // Reset-corrected imported counter C: 0, 30, 40, 45, 55, 70 at the six readings.
    // C(00:30) = 20, C(01:00) = 42.5, C(01:30) = 55 + 15·10/85, C(02:00) = 55 + 15·40/85, C(02:30) = 55 + 15·70/85.
    // Exported: E(00:30) = 4/3, E(01:00) = 5, E(01:30) = E(02:00) = E(02:30) = 8.
    const expected = [
      { start: '2024-01-01T00:00:00Z', period: 1, power: 2, imported: undefined, exported: undefined },
      { start: '2024-01-01T00:30:00Z', period: 2, power: 5, imported: 22.5, exported: 5 - 4 / 3 },
      { start: '2024-01-01T01:00:00Z', period: 3, power: 9, imported: 55 + (15 * 10) / 85 - 42.5, exported: 3 },
      { start: '2024-01-01T01:30:00Z', period: 4, power: undefined, imported: (15 * 30) / 85, exported: 0 },
      { start: '2024-01-01T02:00:00Z', period: 5, power: undefined, imported: (15 * 30) / 85, exported: 0 },
      { start: '2024-01-01T02:30:00Z', period: 6, power: 12, imported: undefined, exported: undefined },
    ];
    expect(periods).toHaveLength(expected.length);
    periods.forEach((p, i) => {
      const e = expected[i]!;
      expect(Number(p.startTime!.seconds) * 1000).toBe(Date.parse(e.start));
      expect(p).toMatchObject({ deviceId: meter, settlementDate: '2024-01-01', settlementPeriod: e.period });
      expect(p.powerTotalActiveAvgKw).toBe(e.power);
      if (e.imported === undefined) expect(p.energyImportedActiveDeltaKwh).toBeUndefined();
      else expect(p.energyImportedActiveDeltaKwh).toBeCloseTo(e.imported, 9);
      if (e.exported === undefined) expect(p.energyExportedActiveDeltaKwh).toBeUndefined();
      else expect(p.energyExportedActiveDeltaKwh).toBeCloseTo(e.exported, 9);
    });
  });

  it.each([
    ['spring', '2024-03-31', '2024-03-31T00:00:00Z', '2024-03-31T23:00:00Z', 46],
    ['autumn', '2024-10-27', '2024-10-26T23:00:00Z', '2024-10-28T00:00:00Z', 50],
  ])('numbers the %s clock-change day %s with %i periods', async (_season, date, startIso, endIso, count) => {
    const meter = await registerDevice(t.server.database, 'meter');
    const rows: [string, number, number, number][] = [];
    for (let ms = Date.parse(startIso) - 30 * 60_000, i = 0; ms <= Date.parse(endIso); ms += 15 * 60_000, i++)
      rows.push([new Date(ms).toISOString(), i, 0, 1]);
    await insertMeter(t.server.database, meter, rows);
    const { periods } = await api.readings.listSettlementPeriods({ deviceIds: [meter], range: range(startIso, endIso) });
    expect(periods.map((p) => p.settlementPeriod)).toEqual(Array.from({ length: count }, (_, i) => i + 1));
    expect(new Set(periods.map((p) => p.settlementDate))).toEqual(new Set([date]));
    for (const p of periods) expect(p.energyImportedActiveDeltaKwh).toBeCloseTo(2, 9);
  });

  it('pages raw readings in either order without gaps or repeats', async () => {
    const a = await registerDevice(t.server.database, 'meter');
    const b = await registerDevice(t.server.database, 'meter');
    const rows: [string, number, number, number][] = [];
    for (let i = 0; i < 7; i++) rows.push([new Date(Date.parse('2024-02-01T00:00:00Z') + i * 60_000).toISOString(), i, 0, i]);
    await insertMeter(t.server.database, a, rows);
    await insertMeter(t.server.database, b, rows);
    for (const order of [TimeOrder.ASCENDING, TimeOrder.DESCENDING]) {
      const seen: string[] = [];
      let pageToken = '';
      for (let page = 0; page < 10; page++) {
        const res = await api.readings.listMeterReadings({
          deviceIds: [a, b],
          range: range('2024-02-01T00:00:00Z', '2024-02-01T01:00:00Z'),
          order,
          pageSize: 3,
          pageToken,
        });
        seen.push(...res.meterReadings.map((r) => `${r.time!.seconds}/${r.deviceId}`));
        pageToken = res.nextPageToken;
        if (!pageToken) break;
      }
      const sorted = [...seen].sort();
      expect(seen).toEqual(order === TimeOrder.ASCENDING ? sorted : sorted.reverse());
      expect(new Set(seen).size).toBe(14);
    }
    // A token whose key was edited by hand is refused naming page_token, never sent to SQL.
    const request = { deviceIds: [a, b], range: range('2024-02-01T00:00:00Z', '2024-02-01T01:00:00Z'), pageSize: 3 };
    const token = JSON.parse(Buffer.from((await api.readings.listMeterReadings(request)).nextPageToken, 'base64url').toString('utf8')) as {
      k: unknown[];
    };
    token.k[1] = 'not-a-uuid';
    const edited = await api.readings
      .listMeterReadings({ ...request, pageToken: Buffer.from(JSON.stringify(token)).toString('base64url') })
      .catch((e: unknown) => e);
    expect(ConnectError.from(edited)).toMatchObject({ code: Code.InvalidArgument, rawMessage: expect.stringContaining('page_token') });
    const first = await api.readings.listMeterReadings({ deviceIds: [a], range: range('2024-02-01T00:00:00Z', '2024-02-01T00:01:00Z') });
    expect(first.meterReadings[0]).toMatchObject({ deviceId: a, energyImportedActiveKwh: 0, powerTotalActiveKw: 0 });
  });

  it('answers 5-minute aggregates named as the Flux view', async () => {
    const meter = await registerDevice(t.server.database, 'meter');
    await insertMeter(t.server.database, meter, [
      ['2024-02-02T00:00:00Z', 10, 1, 4],
      ['2024-02-02T00:02:00Z', 12, 1, 6],
      ['2024-02-02T00:05:00Z', 15, 2, 8],
    ]);
    const { aggregates } = await api.readings.listMeterAggregates({
      deviceIds: [meter],
      range: range('2024-02-02T00:00:00Z', '2024-02-02T00:10:00Z'),
    });
    expect(
      aggregates.map((a) => [a.readingCount, a.powerTotalActiveAvgKw, a.energyImportedActiveMinKwh, a.energyImportedActiveMaxKwh]),
    ).toEqual([
      [2, 5, 10, 12],
      [1, 8, 15, 15],
    ]);
  });

  it('returns the latest battery state by id and by site', async () => {
    const bess = await registerDevice(t.server.database, 'bess', { site: 'latest-site' });
    await t.server.database.withSession((s) =>
      s.query(
        `insert into flux.mg_bess_readings ("time", device_id, soe, target_power, command_source) values ('2024-02-03T00:00:00Z', $1, 40, 10, 1), ('2024-02-03T00:01:00Z', $1, 41, -25, 3)`,
        [bess],
      ),
    );
    const byId = await api.readings.getLatestBessState({ deviceIds: [bess] });
    expect(byId.states).toHaveLength(1);
    expect(byId.states[0]).toMatchObject({ deviceId: bess, soePercent: 41, targetPowerKw: -25, commandSource: 3 });
    const bySite = await api.readings.getLatestBessState({ site: 'latest-site' });
    expect(bySite.states.map((s) => s.deviceId)).toEqual([bess]);
  });

  const someId = '9b2a4a55-0000-4000-8000-000000000000';
  const ids = (n: number) => Array.from({ length: n }, (_, i) => `9b2a4a55-0000-4000-8000-${String(i).padStart(12, '0')}`);
  const day = range('2024-02-01T00:00:00Z', '2024-02-02T00:00:00Z');
  it.each([
    ['no device ids', () => api.readings.listMeterReadings({ deviceIds: [], range: day }), 'device_ids'],
    ['more than 100 device ids', () => api.readings.listBessReadings({ deviceIds: ids(101), range: day }), 'device_ids'],
    ['a malformed device id', () => api.readings.listMeterReadings({ deviceIds: [someId, 'meter-1'], range: day }), 'device_ids'],
    ['a missing range', () => api.readings.listMeterReadings({ deviceIds: [someId] }), 'range'],
    [
      'a missing start time',
      () => api.readings.listMeterReadings({ deviceIds: [someId], range: { endTime: day.endTime } }),
      'range.start_time',
    ],
    [
      'a missing end time',
      () => api.readings.listBessReadings({ deviceIds: [someId], range: { startTime: day.startTime } }),
      'range.end_time',
    ],
    ['an unknown order', () => api.readings.listMeterReadings({ deviceIds: [someId], range: day, order: 7 as TimeOrder }), 'order'],
    [
      'an aggregate range over 31 days',
      () => api.readings.listMeterAggregates({ deviceIds: [someId], range: range('2024-01-01T00:00:00Z', '2024-02-01T00:00:01Z') }),
      'range',
    ],
    [
      'a settlement range over 31 days',
      () => api.readings.listSettlementPeriods({ deviceIds: [someId], range: range('2024-01-01T00:00:00Z', '2024-03-01T00:00:00Z') }),
      'range',
    ],
    ['more than 100 settlement meters', () => api.readings.listSettlementPeriods({ deviceIds: ids(101), range: day }), 'device_ids'],
    ['neither batteries nor a site', () => api.readings.getLatestBessState({}), 'device_ids'],
    ['more than 1000 latest-state ids', () => api.readings.getLatestBessState({ deviceIds: ids(1001) }), 'device_ids'],
    ['a missing datum source', () => api.readings.listDatumReadings({ deviceId: someId, sourceId: '', range: day }), 'source_id'],
    ['a malformed datum device id', () => api.readings.listDatumReadings({ deviceId: 'x', sourceId: 'inv/1', range: day }), 'device_id'],
  ] as const)('refuses %s with INVALID_ARGUMENT naming the field', async (_case, call, field) => {
    const err = await (call as () => Promise<unknown>)().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.InvalidArgument);
    expect((err as ConnectError).rawMessage).toContain(field);
  });

  it('refuses a range whose end is not after its start, naming the field', async () => {
    const err = await api.readings
      .listMeterReadings({
        deviceIds: ['9b2a4a55-0000-4000-8000-000000000000'],
        range: range('2024-02-02T00:00:00Z', '2024-02-01T00:00:00Z'),
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.InvalidArgument);
    expect((err as ConnectError).rawMessage).toContain('range.end_time must be after range.start_time');
  });
});
