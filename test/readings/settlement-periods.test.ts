import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createReadings } from '../../src/readings/readings.ts';
import type { Database } from '../../src/storage/database.ts';
import { MIGRATIONS_DIR } from '../../src/storage/migrator.ts';
import { EVERY_SITE } from '../../src/storage/site-scope.ts';
import { createTestDatabase, ENGINES, type TestDatabase } from '../support/databases.ts';

/**
 * The open settlement period in SQL and in the readings domain, on PGlite and PostgreSQL:
 * the running deltas of a period no reading follows, `complete`, and the completed
 * periods, which must come out exactly as the plain-SQL function of migration 0004 gave
 * them (kept here as a reference under another name).
 */

const BASE_MS = Date.parse('2024-01-01T00:00:00Z');
const PERIOD_MS = 30 * 60_000;
const iso = (minutes: number) => new Date(BASE_MS + minutes * 60_000).toISOString();

/** A meter row: minutes after 2024-01-01T00:00Z, the two counters (kWh) and power (kW). */
type Row = [minutes: number, imported: number | null, exported: number | null, power: number | null];

/** A row of either function, as compared here. */
interface Period {
  time_b: string;
  power_total_active_avg: number | null;
  energy_imported_active_delta: number | null;
  energy_exported_active_delta: number | null;
  complete?: boolean;
}

async function insertMeter(database: Database, deviceId: string, rows: readonly Row[]): Promise<void> {
  if (rows.length === 0) return;
  const params: unknown[] = [];
  const values = rows.map(([minutes, imported, exported, power]) => {
    params.push(iso(minutes), deviceId, imported, exported, power);
    const n = params.length;
    return `($${n - 4}::timestamptz, $${n - 3}::uuid, $${n - 2}::real, $${n - 1}::real, $${n}::real)`;
  });
  await database.withSession((s) =>
    s.query(
      `insert into flux.mg_meter_readings ("time", device_id, energy_imported_active, energy_exported_active, power_total_active)
       values ${values.join(', ')}`,
      params,
    ),
  );
}

const COLUMNS = `to_char(time_b at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') as time_b,
  power_total_active_avg, energy_imported_active_delta, energy_exported_active_delta`;

/** The seed-signature function's rows, called with the seed's named arguments. */
async function seedFunction(database: Database, deviceId: string, startMin: number, endMin: number): Promise<Period[]> {
  return database.withSession((s) =>
    s.query<Period>(
      `select ${COLUMNS} from flux.get_meter_readings_30m(start_time => $1, end_time => $2, device_ids => array[$3]::uuid[])`,
      [iso(startMin), iso(endMin), deviceId],
    ),
  );
}

/** The second function's rows, with `complete`, as of `asOfMin`. */
async function statusFunction(database: Database, deviceId: string, startMin: number, endMin: number, asOfMin: number): Promise<Period[]> {
  return database.withSession((s) =>
    s.query<Period>(`select ${COLUMNS}, complete from flux.get_meter_readings_30m_status($1, $2, array[$3]::uuid[], $4)`, [
      iso(startMin),
      iso(endMin),
      deviceId,
      iso(asOfMin),
    ]),
  );
}

/** Migration 0004's function, created as `settlement_reference.get_meter_readings_30m`. */
async function createReference(database: Database): Promise<void> {
  const text = await fs.readFile(path.join(MIGRATIONS_DIR, '0004_meter_readings_30m.sql'), 'utf8');
  const fn = /create or replace function flux\.get_meter_readings_30m\([\s\S]*?\n\$fn\$;/.exec(text)?.[0];
  if (!fn) throw new Error('migration 0004 no longer holds flux.get_meter_readings_30m');
  await database.withSession((s) =>
    s.exec(`create schema if not exists settlement_reference;
      ${fn.replace('flux.get_meter_readings_30m(', 'settlement_reference.get_meter_readings_30m(')}`),
  );
}

async function referenceFunction(database: Database, deviceId: string, startMin: number, endMin: number): Promise<Period[]> {
  return database.withSession((s) =>
    s.query<Period>(`select ${COLUMNS} from settlement_reference.get_meter_readings_30m($1, $2, array[$3]::uuid[])`, [
      iso(startMin),
      iso(endMin),
      deviceId,
    ]),
  );
}

/**
 * The running delta of the period starting `bMin` for one counter, worked out here from the
 * readings alone: the reset-corrected counter at the period's last reading minus the counter
 * interpolated at its start; null without a reading at or before the start, or in the period.
 */
function runningDelta(readings: readonly (readonly [minutes: number, value: number])[], bMin: number): number | null {
  const cumulative: number[] = [];
  readings.forEach(([, v], i) => {
    const prev = readings[i - 1]?.[1];
    cumulative.push(i === 0 ? 0 : cumulative[i - 1]! + (v >= prev! ? v - prev! : v));
  });
  const before = readings.findLastIndex(([t]) => t <= bMin);
  const last = readings.findLastIndex(([t]) => t < bMin + 30);
  if (before < 0 || last < 0 || readings[last]![0] < bMin) return null;
  const [t0] = readings[before]!;
  const start =
    t0 === bMin
      ? cumulative[before]!
      : cumulative[before]! + ((cumulative[before + 1]! - cumulative[before]!) * (bMin - t0)) / (readings[before + 1]![0] - t0);
  return cumulative[last]! - start;
}

function counter(rows: readonly Row[], column: 1 | 2): [number, number][] {
  return rows.filter((r) => r[column] !== null).map((r) => [r[0], r[column]!]);
}

function expectDelta(actual: number | null, expected: number | null): void {
  if (expected === null) expect(actual).toBeNull();
  else expect(actual).toBeCloseTo(expected, 6);
}

/** Readings with strictly increasing minutes, counters that grow and sometimes restart from zero. */
const rowsArbitrary = fc
  .array(
    fc.record({
      step: fc.oneof(fc.integer({ min: 1, max: 40 }), fc.constant(30)),
      importedIncrease: fc.integer({ min: 0, max: 50 }),
      reset: fc.integer({ min: 0, max: 9 }),
      exported: fc.option(fc.integer({ min: 0, max: 20 }), { freq: 5 }),
      power: fc.option(fc.integer({ min: -100, max: 100 }), { freq: 5 }),
    }),
    { minLength: 1, maxLength: 14 },
  )
  .map((steps) => {
    const rows: Row[] = [];
    let minutes = -20;
    let imported = 1_000;
    let exported = 0;
    for (const s of steps) {
      minutes += s.step;
      // One reading in ten restarts the imported counter from zero (a meter replaced or reset).
      imported = s.reset === 0 ? s.importedIncrease : imported + s.importedIncrease;
      if (s.exported !== null) exported += s.exported;
      rows.push([minutes, imported, s.exported === null ? null : exported, s.power]);
    }
    return rows;
  });

describe.each(ENGINES)('the open settlement period on %s', (engine) => {
  let testDb: TestDatabase;
  let database: Database;

  beforeAll(async () => {
    testDb = await createTestDatabase(engine);
    database = await testDb.open();
    await createReference(database);
  });
  afterAll(async () => {
    await testDb?.drop();
  });

  it('gives the last period the running delta from its interpolated start to its last reading, counting a reset inside it', async () => {
    const meter = randomUUID();
    // Imported: 100 at 00:20, 110 at 00:40, 120 at 00:50, 125 at 01:05, restarts and reads 4
    // at 01:15, then 9 at 01:20. Reset-corrected: 100, 110, 120, 125, 129, 134.
    await insertMeter(database, meter, [
      [20, 100, 7, 1],
      [40, 110, 7, 2],
      [50, 120, 7, 3],
      [65, 125, 8, 4],
      [75, 4, 8, 5],
      [80, 9, 9, 6],
    ]);
    const periods = await seedFunction(database, meter, 0, 120);
    // C(00:30) = 105, C(01:00) = 120 + 5·10/15; the 01:00 period runs to C(01:20) = 134.
    // Exported: E(00:30) = 7, E(01:00) = 7 + 1·10/15; the 01:00 period runs to E(01:20) = 9.
    expect(periods.map((p) => p.time_b)).toEqual(['2024-01-01T00:00:00Z', '2024-01-01T00:30:00Z', '2024-01-01T01:00:00Z']);
    expectDelta(periods[0]!.energy_imported_active_delta, null);
    expectDelta(periods[1]!.energy_imported_active_delta, 120 + 50 / 15 - 105);
    expectDelta(periods[2]!.energy_imported_active_delta, 134 - (120 + 50 / 15));
    expectDelta(periods[1]!.energy_exported_active_delta, 10 / 15);
    expectDelta(periods[2]!.energy_exported_active_delta, 9 - (7 + 10 / 15));
    expect(periods[2]!.power_total_active_avg).toBe(5);

    const status = await statusFunction(database, meter, 0, 120, 24 * 60);
    expect(status.map((p) => p.complete)).toEqual([true, true, false]);
    expect(status.map(({ complete: _c, ...p }) => p)).toEqual(periods);
  });

  it('says a period is complete only once it has ended and a reading at or after its end is stored', async () => {
    const meter = randomUUID();
    await insertMeter(database, meter, [
      [10, 10, 0, 1],
      [30, 20, 0, 1],
      [45, 26, 0, 1],
    ]);
    // 00:00 is followed by the reading at 00:30 exactly; nothing follows 00:30.
    const afterBoth = await statusFunction(database, meter, 0, 60, 24 * 60);
    expect(afterBoth.map((p) => [p.time_b, p.complete])).toEqual([
      ['2024-01-01T00:00:00Z', true],
      ['2024-01-01T00:30:00Z', false],
    ]);
    expectDelta(afterBoth[1]!.energy_imported_active_delta, 6);
    // As of 00:29 neither period has ended, whatever is stored.
    const during = await statusFunction(database, meter, 0, 60, 29);
    expect(during.map((p) => p.complete)).toEqual([false, false]);
    // As of 00:30 exactly the first has ended; a reading at 01:00 exactly completes the second.
    await insertMeter(database, meter, [[60, 30, 0, 1]]);
    const ended = await statusFunction(database, meter, 0, 60, 60);
    expect(ended.map((p) => p.complete)).toEqual([true, true]);
    expectDelta(ended[1]!.energy_imported_active_delta, 10);
  });

  it('answers complete through the readings domain with the wall clock it is given', async () => {
    const meter = randomUUID();
    await insertMeter(database, meter, [
      [5, 1, null, 2],
      [35, 4, null, 2],
      [62, 7, null, 2],
    ]);
    let nowMs = BASE_MS + 50 * 60_000;
    const readings = createReadings({ db: database.db, now: () => nowMs });
    const range = { startMicros: BASE_MS * 1_000, endMicros: (BASE_MS + 2 * PERIOD_MS) * 1_000 };
    const during = await readings.listSettlementPeriods([meter], range, EVERY_SITE);
    expect(during.map((p) => [p.settlementPeriod, p.complete])).toEqual([
      [1, true],
      [2, false],
    ]);
    // The second period's deltas are final already (a reading follows it); only the clock says it is open.
    expect(during[1]!.energyImportedActiveDelta).toBeCloseTo(4 + (3 * 25) / 27 - (1 + (3 * 25) / 30), 9);
    nowMs = BASE_MS + 2 * PERIOD_MS;
    const after = await readings.listSettlementPeriods([meter], range, EVERY_SITE);
    expect(after.map((p) => p.complete)).toEqual([true, true]);
    expect(after[1]!.energyExportedActiveDelta).toBeNull();
  });

  it("keeps migration 0004's answers for completed periods and gives the others the running delta, on random readings", async () => {
    await fc.assert(
      fc.asyncProperty(
        rowsArbitrary,
        fc.integer({ min: -60, max: 300 }),
        fc.integer({ min: 1, max: 360 }),
        async (rows, startMin, spanMin) => {
          const meter = randomUUID();
          await insertMeter(database, meter, rows);
          const endMin = startMin + spanMin;
          const [now, reference, status] = await Promise.all([
            seedFunction(database, meter, startMin, endMin),
            referenceFunction(database, meter, startMin, endMin),
            statusFunction(database, meter, startMin, endMin, 100 * 24 * 60),
          ]);
          expect(status.map(({ complete: _c, ...p }) => p)).toEqual(now);
          // Every period 0004 returned is still returned, and no other.
          expect(status.map((p) => p.time_b)).toEqual(reference.map((p) => p.time_b));
          const lastMinute = rows.at(-1)![0];
          status.forEach((p, i) => {
            const bMin = (Date.parse(p.time_b) - BASE_MS) / 60_000;
            const old = reference[i]!;
            expect(p.power_total_active_avg).toBe(old.power_total_active_avg);
            // Where 0004 gave a delta it still stands; where it gave none the period may now run.
            const imported = old.energy_imported_active_delta ?? runningDelta(counter(rows, 1), bMin);
            const exported = old.energy_exported_active_delta ?? runningDelta(counter(rows, 2), bMin);
            const running =
              (old.energy_imported_active_delta === null && imported !== null) ||
              (old.energy_exported_active_delta === null && exported !== null);
            expect(p.complete).toBe(lastMinute >= bMin + 30 && !running);
            if (p.complete) {
              expect(p.energy_imported_active_delta).toBe(old.energy_imported_active_delta);
              expect(p.energy_exported_active_delta).toBe(old.energy_exported_active_delta);
            } else {
              expectDelta(p.energy_imported_active_delta, imported);
              expectDelta(p.energy_exported_active_delta, exported);
            }
          });
        },
      ),
      { numRuns: 40, seed: 16_018 },
    );
  });
});
