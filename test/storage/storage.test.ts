import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../src/storage/database.ts';
import { loadMigrations, migrate, MIGRATIONS_DIR } from '../../src/storage/migrator.ts';
import { createTestDatabase, ENGINES, silentLog, type TestDatabase } from '../support/databases.ts';

/** The Flux seed's columns, in order, with their PostgreSQL types. */
const FLUX_COLUMNS: Record<string, string[]> = {
  mg_meter_readings: [
    'time timestamp with time zone',
    'device_id uuid',
    'id uuid',
    'created_at timestamp with time zone',
    ...[
      'frequency',
      'voltage_line_average',
      'current_phase_a',
      'current_phase_b',
      'current_phase_c',
      'current_phase_average',
      'power_phase_a_active',
      'power_phase_b_active',
      'power_phase_c_active',
      'power_total_active',
      'power_total_reactive',
      'power_total_apparent',
      'power_factor_total',
      'energy_imported_active',
      'energy_exported_active',
      'energy_imported_phase_a_active',
      'energy_exported_phase_a_active',
      'energy_imported_phase_b_active',
      'energy_exported_phase_b_active',
      'energy_imported_phase_c_active',
      'energy_exported_phase_c_active',
      'energy_imported_reactive',
      'energy_exported_reactive',
      'energy_imported_apparent',
      'energy_exported_apparent',
    ].map((c) => `${c} real`),
  ],
  mg_bess_readings: [
    'time timestamp with time zone',
    'device_id uuid',
    'id uuid',
    'created_at timestamp with time zone',
    'soe real',
    'target_power real',
    'available_inverter_blocks smallint',
    'command_source smallint',
  ],
  mg_device_registry: [
    'id uuid',
    'created_at timestamp with time zone',
    'name text',
    'type text',
    'site text',
    'metadata jsonb',
    'active boolean',
  ],
  market_data: [
    'id uuid',
    'time timestamp with time zone',
    'type integer',
    'value real',
    'metadata jsonb',
    'created_at timestamp with time zone',
  ],
  market_data_types: ['id integer', 'name text', 'description text', 'unit text', 'created_at timestamp with time zone'],
};

describe.each(ENGINES)('the Flux schema on %s', (engine) => {
  let testDatabase: TestDatabase;
  let database: Database;
  beforeAll(async () => {
    testDatabase = await createTestDatabase(engine);
    database = await testDatabase.open();
  });
  afterAll(() => testDatabase?.drop());

  const rows = async <R>(query: string, params: unknown[] = []) => database.withSession((s) => s.query<R>(query, params));

  it.each(Object.keys(FLUX_COLUMNS))('creates flux.%s with the seed columns and types, in order', async (table) => {
    const columns = await rows<{ column_name: string; data_type: string }>(
      `select column_name, data_type from information_schema.columns
       where table_schema = 'flux' and table_name = $1 order by ordinal_position`,
      [table],
    );
    expect(columns.map((c) => `${c.column_name} ${c.data_type}`)).toEqual(FLUX_COLUMNS[table]);
  });

  it('creates the seed indexes, unique on (device_id, time)', async () => {
    const indexes = await rows<{ indexname: string; indexdef: string }>(
      `select indexname, indexdef from pg_indexes where schemaname = 'flux' order by indexname`,
    );
    const byName = Object.fromEntries(indexes.map((i) => [i.indexname, i.indexdef]));
    expect(byName.mg_meter_readings_deviceid_time_idx).toMatch(/UNIQUE INDEX .* \(device_id, "time"\)/);
    expect(byName.mg_bess_readings_deviceid_time_idx).toMatch(/UNIQUE INDEX .* \(device_id, "time"\)/);
    expect(byName.mg_meter_readings_time_idx).toMatch(/\("time" DESC\)/);
    expect(byName.mg_bess_readings_time_idx).toMatch(/\("time" DESC\)/);
    expect(byName.mg_meter_readings_device_time_idx).toMatch(/\(device_id, "time" DESC\)/);
    expect(byName.market_data_type_time_idx).toMatch(/\(type, "time" DESC\)/);
    expect(byName.mg_device_registry_site_idx).toBeDefined();
    expect(byName.mg_device_registry_type_idx).toBeDefined();
  });

  it('holds the four standard market data types and the market_data_input type', async () => {
    const types = await rows<{ id: number; name: string; unit: string }>('select id, name, unit from flux.market_data_types order by id');
    expect(types).toEqual([
      { id: 1, name: 'niv_estimate', unit: 'MW' },
      { id: 2, name: 'wholesale_price', unit: '£/MWh' },
      { id: 3, name: 'imbalance_price', unit: '£/MWh' },
      { id: 4, name: 'axle_dispatch', unit: 'kW' },
    ]);
    const [input] = await rows<{ t: unknown }>(`select row('2024-01-01T00:00:00Z', 1, 2.5)::flux.market_data_input as t`);
    expect(input?.t).toBeDefined();
  });

  it('refuses a second reading for the same device and time', async () => {
    const device = '123e4567-e89b-12d3-a456-426614174000';
    await rows(`insert into flux.mg_bess_readings (time, device_id, soe) values ('2024-01-01T00:00:00Z', $1, 50)`, [device]);
    await expect(
      rows(`insert into flux.mg_bess_readings (time, device_id, soe) values ('2024-01-01T00:00:00Z', $1, 51)`, [device]),
    ).rejects.toThrow(/duplicate key/);
  });

  it("runs the seed's example queries unchanged", async () => {
    const device = '123e4567-e89b-12d3-a456-426614174000';
    await rows(
      `insert into flux.mg_bess_readings (time, device_id, soe, target_power) values (now() - interval '10 minutes', $1, 55.5, -120)`,
      [device],
    );
    await rows(`insert into flux.market_data (time, type, value) values (date_trunc('minute', now() - interval '10 minutes'), 1, 42)`);
    const recent = await rows<{ soe: number; target_power: number }>(`SELECT time, device_id, soe, target_power
FROM flux.mg_bess_readings
WHERE device_id = '123e4567-e89b-12d3-a456-426614174000'
AND time > now() - interval '1 hour'
ORDER BY time DESC;`);
    expect(recent).toHaveLength(1);
    expect(recent[0]).toMatchObject({ soe: 55.5, target_power: -120 });

    const correlated = await rows<{ niv_estimate: number }>(`SELECT
b.time,
b.soe,
b.target_power,
m.value as niv_estimate
FROM flux.mg_bess_readings b
JOIN flux.market_data m
ON date_trunc('minute', b.time) = date_trunc('minute', m.time)
AND m.type = 1 -- NIV estimate
WHERE b.time > now() - interval '1 day'
ORDER BY b.time;`);
    expect(correlated.map((r) => r.niv_estimate)).toEqual([42]);
  });

  it("runs the seed's 30-minute settlement query, with named arguments, for a real device", async () => {
    const meter = '223e4567-e89b-12d3-a456-426614174001';
    for (const [time, power, imported] of [
      ['2024-01-01T00:05:00Z', 2, 10],
      ['2024-01-01T00:25:00Z', 4, 12],
      ['2024-01-01T00:45:00Z', 6, 15],
    ] as const) {
      await rows(
        `insert into flux.mg_meter_readings (time, device_id, power_total_active, energy_imported_active) values ($1, $2, $3, $4)`,
        [time, meter, power, imported],
      );
    }
    // The seed's text, with its placeholder 'device-uuid' replaced by the real id.
    const periods = await rows<{
      time_b: Date;
      device_id: string;
      power_total_active_avg: number;
    }>(`SELECT * FROM flux.get_meter_readings_30m(
start_time => '2024-01-01',
end_time => '2024-01-02',
device_ids => ARRAY['${meter}']::uuid[]
);`);
    expect(periods.map((p) => [new Date(p.time_b).toISOString(), p.device_id, p.power_total_active_avg])).toEqual([
      ['2024-01-01T00:00:00.000Z', meter, 3],
      ['2024-01-01T00:30:00.000Z', meter, 6],
    ]);
  });

  it('applies nothing when migrated again', async () => {
    const result = await migrate(database, silentLog);
    expect(result.applied).toEqual([]);
    const [count] = await rows<{ n: number }>('select count(*)::int as n from powerplane.schema_migrations');
    expect(count?.n).toBe((await loadMigrations(MIGRATIONS_DIR)).length);
  });
});

describe('migrations', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'powerplane-migrations-'));
  });
  afterAll(() => fs.rm(dir, { recursive: true, force: true }));

  it('apply each migration once when two replicas migrate at the same time', async () => {
    const testDatabase = await createTestDatabase('postgres');
    try {
      const [a, b] = [await testDatabase.open({ migrated: false }), await testDatabase.open({ migrated: false })];
      const results = await Promise.all([migrate(a, silentLog), migrate(b, silentLog)]);
      const applied = results.flatMap((r) => r.applied).sort();
      const expected = (await loadMigrations(MIGRATIONS_DIR)).map((m) => `${m.version}_${m.name}`);
      expect(applied).toEqual(expected.sort());
      const { rows } = await sql<{ n: number }>`select count(*)::int as n from flux.market_data_types`.execute(a.db);
      expect(rows[0]?.n).toBe(4);
    } finally {
      await testDatabase.drop();
    }
  });

  it.each(ENGINES)('refuse to run when an applied migration was edited (%s)', async (engine) => {
    const testDatabase = await createTestDatabase(engine);
    const own = path.join(dir, engine);
    await fs.mkdir(own);
    try {
      const database = await testDatabase.open({ migrated: false });
      await fs.writeFile(path.join(own, '0001_first.sql'), 'create table public.t1 (id int);');
      expect((await migrate(database, silentLog, own)).applied).toEqual(['1_first']);
      await fs.writeFile(path.join(own, '0001_first.sql'), 'create table public.t1 (id bigint);');
      await expect(migrate(database, silentLog, own)).rejects.toThrow(/1_first changed after it was applied/);
    } finally {
      await testDatabase.drop();
    }
  });

  it.each(ENGINES)('roll back a failing migration whole and record nothing (%s)', async (engine) => {
    const testDatabase = await createTestDatabase(engine);
    const own = path.join(dir, `failing-${engine}`);
    await fs.mkdir(own);
    try {
      const database = await testDatabase.open({ migrated: false });
      await fs.writeFile(path.join(own, '0001_broken.sql'), 'create table public.half (id int); select no_such_function();');
      await expect(migrate(database, silentLog, own)).rejects.toThrow(/1_broken failed/);
      const tables = await database.withSession((s) => s.query(`select 1 from information_schema.tables where table_name = 'half'`));
      expect(tables).toEqual([]);
      const recorded = await database.withSession((s) => s.query('select version from powerplane.schema_migrations'));
      expect(recorded).toEqual([]);
    } finally {
      await testDatabase.drop();
    }
  });

  it('refuse a migration file not named NNNN_name.sql', async () => {
    const own = path.join(dir, 'badname');
    await fs.mkdir(own);
    await fs.writeFile(path.join(own, '1_first.sql'), 'select 1;');
    await expect(loadMigrations(own)).rejects.toThrow(/not named NNNN_name.sql/);
  });
});
