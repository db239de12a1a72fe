import { randomUUID } from 'node:crypto';
import { timestampFromMs, timestampMs } from '@bufbuild/protobuf/wkt';
import type { Client } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReadingsService } from '../../gen/powerplane/v1/readings_pb.ts';
import { errorOf } from '../../test/support/api.ts';
import { createTestDatabase, ENGINES, type TestDatabase } from '../../test/support/databases.ts';
import { serveInMemory, type InMemoryApi } from '../../test/support/services.ts';
import { registerDevice } from '../../test/telemetry/helpers.ts';
import { insertSetpointEvents } from '../dispatch/setpoint-events.repository.ts';
import type { DispatchTables } from '../dispatch/dispatch.table.ts';
import { SCOPES, UNRESTRICTED, type Principal } from '../rpc/principal.ts';
import type { Database } from '../storage/database.ts';

/**
 * ListBatterySeries through `createRouterTransport` over a real database on both engines:
 * buckets computed in SQL from stored readings and planned setpoints, the selection by
 * site or ids within the caller's sites, and the refusals naming their field.
 */

const MINUTE = 60_000;
const T0 = Date.parse('2024-03-01T12:00:00Z');

const bound = (sites: string[]): Principal => ({ id: 'token:bound', kind: 'token', scopes: new Set(SCOPES), sites: new Set(sites) });
const window = (startMs: number, endMs: number) => ({ startTime: timestampFromMs(startMs), endTime: timestampFromMs(endMs) });

/** Inserts battery rows: [ms, soe, target power]. */
async function insertBess(database: Database, deviceId: string, rows: [ms: number, soe: number, power: number][]): Promise<void> {
  await database.withSession(async (s) => {
    for (const [ms, soe, power] of rows) {
      await s.query(`insert into flux.mg_bess_readings ("time", device_id, soe, target_power) values ($1, $2, $3, $4)`, [
        new Date(ms).toISOString(),
        deviceId,
        soe,
        power,
      ]);
    }
  });
}

/** Stores setpoint steps of `deviceId` at `site`: [ms, phase, kW]. */
async function insertSteps(
  database: Database,
  deviceId: string,
  site: string,
  steps: [ms: number, phase: 'PLANNED' | 'VERIFIED', kw: number][],
): Promise<void> {
  await insertSetpointEvents(
    database.db.withTables<DispatchTables>(),
    steps.map(([ms, phase, kw]) => ({
      setpointId: randomUUID(),
      deviceId,
      site,
      phase,
      targetPowerKw: kw,
      source: 'DISPATCH',
      at: new Date(ms),
      elapsedMs: 0,
    })),
  );
}

describe.each(ENGINES)('ListBatterySeries on %s', (engine) => {
  let testDb: TestDatabase;
  let database: Database;
  let api: InMemoryApi;
  let readings: Client<typeof ReadingsService>;

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

  it('starts the buckets at the first data when the window holds less, averages readings and carries the setpoint in force', async () => {
    const battery = await registerDevice(database, 'bess', { site: 'series-a' });
    // Readings every 30 s from minute 40 to 49.5 of the hour; SoE rises 0.5 % a reading, power 10 kW then 20 kW.
    const rows: [number, number, number][] = [];
    for (let i = 0; i < 20; i++) rows.push([T0 + 40 * MINUTE + i * 30_000, 50 + i * 0.5, i < 10 ? 10 : 20]);
    await insertBess(database, battery, rows);
    // A setpoint planned before the window (in force from its start), a new one at minute 45;
    // VERIFIED steps are not setpoints of their own.
    await insertSteps(database, battery, 'series-a', [
      [T0 - 10 * MINUTE, 'PLANNED', 20],
      [T0 - 10 * MINUTE + 500, 'VERIFIED', 20],
      [T0 + 45 * MINUTE, 'PLANNED', -30],
      [T0 + 47 * MINUTE, 'VERIFIED', -30],
    ]);
    const { series, bucketSeconds } = await readings.listBatterySeries({
      deviceIds: [battery],
      range: window(T0, T0 + 60 * MINUTE),
      points: 10,
    });
    // From the first reading (minute 40) to the end: 20 minutes in 10 buckets of 2 minutes.
    expect(bucketSeconds).toBe(120);
    expect(series).toHaveLength(1);
    const points = series[0]!.points;
    expect(points.map((p) => (timestampMs(p.time!) - T0) / MINUTE)).toEqual([40, 42, 44, 46, 48]);
    // Four readings a bucket: SoE 50, 50.5, 51, 51.5 → 50.75 in the first, and so on.
    expect(points.map((p) => p.soePercent)).toEqual([50.75, 52.75, 54.75, 56.75, 58.75]);
    expect(points.map((p) => p.reportedPowerKw)).toEqual([10, 10, 15, 20, 20]);
    // The setpoint at each bucket's end: 20 kW until minute 45 planned -30 kW.
    expect(points.map((p) => p.setpointKw)).toEqual([20, 20, -30, -30, -30]);
  });

  it('covers a full window in at most `points` buckets from its start, leaving out buckets without data', async () => {
    const battery = await registerDevice(database, 'bess', { site: 'series-b' });
    const rows: [number, number, number][] = [];
    // A reading a minute for an hour, but none in minutes 30 to 39.
    for (let m = 0; m < 60; m++) if (m < 30 || m >= 40) rows.push([T0 + m * MINUTE, 40, -5]);
    await insertBess(database, battery, rows);
    const { series, bucketSeconds } = await readings.listBatterySeries({
      deviceIds: [battery],
      range: window(T0, T0 + 60 * MINUTE),
      points: 7,
    });
    // 3600 s in 7 buckets: 514.285714 s each, rounded up to the microsecond.
    expect(bucketSeconds).toBeCloseTo(3600 / 7, 5);
    const starts = series[0]!.points.map((p) => timestampMs(p.time!));
    expect(starts.length).toBeLessThanOrEqual(7);
    expect(starts[0]).toBe(T0);
    // The bucket from minute 34.3 to 42.9 holds readings 40–42; the one from 25.7 to 34.3 readings 26–29: none is empty.
    expect(starts.length).toBe(7);
    for (const p of series[0]!.points) {
      expect(p.soePercent).toBe(40);
      expect(p.reportedPowerKw).toBe(-5);
      expect(p.setpointKw).toBeUndefined();
    }
    // With 60 buckets of a minute, the ten minutes without readings are gaps.
    const fine = await readings.listBatterySeries({ deviceIds: [battery], range: window(T0, T0 + 60 * MINUTE), points: 60 });
    expect(fine.bucketSeconds).toBe(60);
    expect(fine.series[0]!.points).toHaveLength(50);
  });

  it("selects a site's active batteries in id order, each with its series, even one without data", async () => {
    const a = await registerDevice(database, 'bess', { site: 'series-c' });
    const b = await registerDevice(database, 'bess', { site: 'series-c' });
    await registerDevice(database, 'bess', { site: 'series-c', active: false });
    await registerDevice(database, 'meter', { site: 'series-c' });
    await insertBess(database, a, [[T0 + MINUTE, 60, 1]]);
    const { series } = await readings.listBatterySeries({ site: 'series-c', range: window(T0, T0 + 15 * MINUTE) });
    expect(series.map((s) => s.deviceId)).toEqual([a, b].sort());
    expect(series.find((s) => s.deviceId === a)!.points).toHaveLength(1);
    expect(series.find((s) => s.deviceId === b)!.points).toEqual([]);
  });

  it('leaves out ids of other sites for a bound caller, as unknown ones, and refuses a site outside its binding', async () => {
    const own = await registerDevice(database, 'bess', { site: 'series-own' });
    const other = await registerDevice(database, 'bess', { site: 'series-other' });
    const caller = api.as(bound(['series-own'])).readings;
    const range = window(T0, T0 + MINUTE);
    const { series } = await caller.listBatterySeries({ deviceIds: [other, own, '00000000-0000-4000-8000-000000000000'], range });
    expect(series.map((s) => s.deviceId)).toEqual([own]);
    expect((await caller.listBatterySeries({ site: 'series-own', range })).series.map((s) => s.deviceId)).toEqual([own]);
    expect(await errorOf(caller.listBatterySeries({ site: 'series-other', range }))).toEqual({
      code: 'PermissionDenied',
      message: 'site names site "series-other", which token:bound is not bound to',
    });
  });

  it('gives fewer buckets per battery when the answer would pass its byte budget', async () => {
    const a = await registerDevice(database, 'bess', { site: 'series-d' });
    const b = await registerDevice(database, 'bess', { site: 'series-d' });
    const rows: [number, number, number][] = [];
    for (let m = 0; m < 60; m++) rows.push([T0 + m * MINUTE, 50, 0]);
    await insertBess(database, a, rows);
    await insertBess(database, b, rows);
    // 4000 bytes of series: a few dozen points of at most ~60 bytes in binary, shared by two batteries.
    const small = serveInMemory(database, testDb.config, { pageBytes: 2_000 });
    try {
      const { series, bucketSeconds } = await small
        .as(UNRESTRICTED)
        .readings.listBatterySeries({ site: 'series-d', range: window(T0, T0 + 60 * MINUTE), points: 60 });
      const count = series[0]!.points.length;
      expect(count).toBeGreaterThan(1);
      expect(count).toBeLessThan(60);
      expect(series[1]!.points).toHaveLength(count);
      expect(bucketSeconds).toBeCloseTo(3600 / count, 0);
    } finally {
      await small.close();
    }
  });

  it.each([
    ['neither site nor ids', {}, 'site is required (or device_ids)'],
    ['both site and ids', { site: 'x', deviceIds: ['00000000-0000-4000-8000-000000000000'] }, 'site must be empty when device_ids is set'],
    ['a malformed id', { deviceIds: ['nope'] }, 'device_ids[0] must be a UUID'],
    ['more than 1000 ids', { deviceIds: Array.from({ length: 1001 }, () => randomUUID()) }, 'device_ids must name at most 1000'],
    ['no range', { site: 'x', range: undefined }, 'range is required'],
    ['no start', { site: 'x', range: { endTime: timestampFromMs(T0) } }, 'range.start_time is required'],
    ['an end before the start', { site: 'x', range: window(T0, T0 - 1) }, 'range.end_time must be after range.start_time'],
    ['a range over 31 days', { site: 'x', range: window(T0, T0 + 32 * 86_400_000) }, 'range must span at most 31 days'],
    ['more than 1000 points', { site: 'x', points: 1001 }, 'points must be from 1 to 1000'],
  ] as const)('refuses %s naming the field', async (_case, change, message) => {
    const request = { range: window(T0, T0 + MINUTE), ...change } as Parameters<typeof readings.listBatterySeries>[0];
    const err = await errorOf(readings.listBatterySeries(request));
    expect(err.code).toBe('InvalidArgument');
    expect(err.message.startsWith(message)).toBe(true);
  });

  it('answers NOT_FOUND naming site for a site without active batteries', async () => {
    await registerDevice(database, 'meter', { site: 'series-meters' });
    expect(await errorOf(readings.listBatterySeries({ site: 'series-meters', range: window(T0, T0 + MINUTE) }))).toEqual({
      code: 'NotFound',
      message: 'site names no site with active batteries (got "series-meters")',
    });
  });
});
