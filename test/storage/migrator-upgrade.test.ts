import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EDITED_MIGRATIONS, loadMigrations, migrate, MIGRATIONS_DIR } from '../../src/storage/migrator.ts';
import { createTestDatabase, ENGINES, silentLog } from '../support/databases.ts';

/** The texts of migrations as they were before they were edited in place. */
const FORMER_DIR = fileURLToPath(new URL('../fixtures/former-migrations/', import.meta.url));

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/** A copy of the shipped migrations in which the files of `FORMER_DIR` replace their edited versions. */
async function formerMigrationsDir(into: string): Promise<void> {
  await fs.mkdir(into, { recursive: true });
  for (const file of await fs.readdir(MIGRATIONS_DIR)) await fs.copyFile(path.join(MIGRATIONS_DIR, file), path.join(into, file));
  for (const file of await fs.readdir(FORMER_DIR)) await fs.copyFile(path.join(FORMER_DIR, file), path.join(into, file));
}

describe('migrations edited in place', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'powerplane-former-migrations-'));
  });
  afterAll(() => fs.rm(dir, { recursive: true, force: true }));

  it('are listed with the checksums of their current and former texts, and only those', async () => {
    const former = await loadMigrations(FORMER_DIR);
    const current = new Map((await loadMigrations(MIGRATIONS_DIR)).map((m) => [`${m.version}_${m.name}`, m]));
    expect(
      Object.fromEntries(
        former.map((m) => [`${m.version}_${m.name}`, { current: current.get(`${m.version}_${m.name}`)?.checksum, former: [m.checksum] }]),
      ),
    ).toEqual(EDITED_MIGRATIONS);
    for (const migration of former) {
      expect(current.get(`${migration.version}_${migration.name}`)?.checksum).not.toBe(migration.checksum);
      // What they lost is the TimescaleDB work, which the setup after the migrations now does.
      expect(migration.sql).toMatch(/timescaledb/);
      expect(current.get(`${migration.version}_${migration.name}`)?.sql).not.toMatch(/timescaledb|create_hypertable|create extension/);
    }
  });

  it.each(ENGINES)(
    'let a database migrated with the former texts upgrade, keeping its data and its recorded checksums (%s)',
    async (engine) => {
      const testDatabase = await createTestDatabase(engine);
      const old = path.join(dir, `old-${engine}`);
      await formerMigrationsDir(old);
      try {
        const database = await testDatabase.open({ migrated: false });
        const first = await migrate(database, silentLog, old);
        expect(first.applied).toContain('1_flux_schema');
        expect(first.applied).toContain('4_meter_readings_30m');
        await database.withSession((s) =>
          s.exec(`insert into flux.market_data ("time", type, value) values ('2024-01-01T00:00:00Z', 2, 71.5)`),
        );

        const upgraded = await migrate(database, silentLog);
        expect(upgraded.applied).toEqual([]);
        const rows = await database.withSession((s) =>
          s.query<{ version: number; checksum: string }>(
            `select version, checksum from powerplane.schema_migrations where version in (1, 4) order by version`,
          ),
        );
        expect(rows).toEqual([
          { version: 1, checksum: sha256(await fs.readFile(path.join(FORMER_DIR, '0001_flux_schema.sql'), 'utf8')) },
          { version: 4, checksum: sha256(await fs.readFile(path.join(FORMER_DIR, '0004_meter_readings_30m.sql'), 'utf8')) },
        ]);
        const [market] = await database.withSession((s) => s.query<{ value: number }>('select value from flux.market_data'));
        expect(market?.value).toBe(71.5);
        // And again: the upgraded database stays acceptable to the current files.
        expect((await migrate(database, silentLog)).applied).toEqual([]);
      } finally {
        await testDatabase.drop();
      }
    },
  );

  it('still refuse any other edit of an applied migration', async () => {
    const testDatabase = await createTestDatabase('postgres');
    const edited = path.join(dir, 'edited');
    await formerMigrationsDir(edited);
    try {
      const database = await testDatabase.open({ migrated: false });
      await migrate(database, silentLog, edited);
      const text = await fs.readFile(path.join(MIGRATIONS_DIR, '0001_flux_schema.sql'), 'utf8');
      await fs.writeFile(path.join(edited, '0001_flux_schema.sql'), `${text}\ncreate table flux.extra (id int);\n`);
      await expect(migrate(database, silentLog, edited)).rejects.toThrow(/1_flux_schema changed after it was applied/);
    } finally {
      await testDatabase.drop();
    }
  });
});
