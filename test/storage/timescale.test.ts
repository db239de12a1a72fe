import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/errors.ts';
import { createLogger } from '../../src/logger.ts';
import type { Database, Session } from '../../src/storage/database.ts';
import { migrate } from '../../src/storage/migrator.ts';
import { hypertableNames } from '../../src/storage/timescale.ts';
import { decideTimescale, preloadLine, readTimescaleFacts } from '../../src/storage/timescale-detect.ts';
import { setupTimescale } from '../../src/storage/timescale-setup.ts';
import { createTestDatabase, ENGINES, silentLog, type TestDatabase } from '../support/databases.ts';

function capturingLog() {
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger('debug', { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  return { log, lines, warnings: () => lines.filter((l) => (l.level as number) >= 40) };
}

describe.each(ENGINES)('without TimescaleDB (%s)', (engine) => {
  let testDatabase: TestDatabase;
  let database: Database;
  beforeAll(async () => {
    testDatabase = await createTestDatabase(engine);
    database = await testDatabase.open({ migrated: false });
  });
  afterAll(() => testDatabase.drop());

  it('migrates to plain tables, reports why, and leaves them plain when run again', async () => {
    const facts = await database.withSession((s) => readTimescaleFacts(s));
    // This server has no preloaded TimescaleDB (the test clusters preload nothing).
    const expected = decideTimescale(facts);
    expect(expected).not.toBe('usable');
    const first = await migrate(database, silentLog, undefined, { retention: { meter: 30, market: 90 } });
    expect(first.timescale).toEqual({ status: expected, steps: [] });
    const again = await migrate(database, silentLog, undefined, { retention: { meter: 30, market: 90 } });
    expect(again).toMatchObject({ applied: [], timescale: { status: expected, steps: [] } });
    const kinds = await database.withSession((s) =>
      s.query<{ name: string; relkind: string }>(
        `select relname as name, relkind from pg_class where relnamespace = 'flux'::regnamespace
         and relname in ('mg_meter_readings', 'mg_bess_readings', 'market_data', 'mg_meter_readings_5m_intermediate') order by 1`,
      ),
    );
    expect(kinds).toEqual([
      { name: 'market_data', relkind: 'r' },
      { name: 'mg_bess_readings', relkind: 'r' },
      { name: 'mg_meter_readings', relkind: 'r' },
    ]);
    expect(await database.withSession((s) => hypertableNames(s))).toEqual(new Set());
  });

  it.each([
    [{ meter: 0 }, 'retention.meter'],
    [{ bess: -1 }, 'retention.bess'],
    [{ market: Number.NaN }, 'retention.market'],
    [{ datum: Number.POSITIVE_INFINITY }, 'retention.datum'],
    [{ meter: 1.5 }, 'retention.meter'],
  ])('refuses retention %j, naming %s', async (retention, field) => {
    const refused = migrate(database, silentLog, undefined, { retention });
    await expect(refused).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(refused).rejects.toMatchObject({ field });
  });
});

/**
 * The detection query against the real catalog. TimescaleDB cannot be installed here, so
 * the probe points it at an extension this server has and at `session_preload_libraries`, a
 * list setting of the same syntax a superuser may set per session (the server's own
 * `shared_preload_libraries` can only be set at start, and naming an unknown library there
 * stops it from starting).
 */
describe('detecting TimescaleDB on PostgreSQL', () => {
  let testDatabase: TestDatabase;
  let database: Database;
  let installable: string;
  beforeAll(async () => {
    testDatabase = await createTestDatabase('postgres');
    database = await testDatabase.open();
    const [row] = await database.withSession((s) =>
      s.query<{ name: string }>(
        `select name from pg_available_extensions where installed_version is null and name not like '%timescale%' order by name limit 1`,
      ),
    );
    if (!row) throw new Error('this PostgreSQL has no extension available to create (install its contrib modules)');
    installable = row.name;
  });
  afterAll(() => testDatabase.drop());

  /** Runs `fn` on one connection with `session_preload_libraries` set to `preload` for the session. */
  const withPreload = <T>(preload: string, fn: (session: Session) => Promise<T>) =>
    database.withSession(async (session) => {
      await session.query(`select set_config('session_preload_libraries', $1, false)`, [preload]);
      try {
        return await fn(session);
      } finally {
        await session.exec('reset session_preload_libraries');
      }
    });

  it('reads a quoted list of preloaded libraries and finds an installed extension named in it usable', async () => {
    const facts = await withPreload(`pg_stat_statements, "${installable}"`, (s) =>
      readTimescaleFacts(s, { extension: installable, preloadSetting: 'session_preload_libraries' }),
    );
    expect(facts).toMatchObject({ created: false, available: true, preload: `pg_stat_statements, "${installable}"` });
    expect(decideTimescale(facts, installable)).toBe('usable');
  });

  it('finds an installed extension missing from the list not preloaded, and says once what to add', async () => {
    const { log, warnings } = capturingLog();
    const setup = await withPreload('pg_stat_statements', (s) =>
      setupTimescale(s, log, { probe: { extension: installable, preloadSetting: 'session_preload_libraries' } }),
    );
    expect(setup).toEqual({ status: 'not-preloaded', steps: [] });
    expect(warnings()).toHaveLength(1);
    expect(warnings()[0]).toMatchObject({ add: preloadLine('pg_stat_statements') });
    expect(String(warnings()[0]!.msg)).toMatch(/installed but not preloaded.*postgresql\.conf.*migrate again/);
    const [created] = await database.withSession((s) =>
      s.query<{ n: number }>('select count(*)::int as n from pg_extension where extname = $1', [installable]),
    );
    expect(created?.n).toBe(0);
  });

  it('calls no function of an extension created but no longer preloaded', async () => {
    const { log, lines } = capturingLog();
    const setup = await withPreload('pg_stat_statements', (s) =>
      setupTimescale(s, log, { probe: { extension: 'plpgsql', preloadSetting: 'session_preload_libraries' } }),
    );
    expect(setup).toEqual({ status: 'created-not-preloaded', steps: [] });
    expect(lines.filter((l) => l.level === 50)).toHaveLength(1);
  });

  it('cannot tell for a role that may not read the setting, and creates nothing', async () => {
    const role = `ts_probe_${Math.random().toString(36).slice(2, 10)}`;
    await database.withSession((s) => s.exec(`create role ${role}`));
    try {
      const facts = await database.withSession(async (session) => {
        await session.exec(`set role ${role}`);
        try {
          return await readTimescaleFacts(session, { extension: installable });
        } finally {
          await session.exec('reset role');
        }
      });
      expect(facts).toMatchObject({ available: true, created: false, preload: undefined, configFile: undefined });
      expect(decideTimescale(facts, installable)).toBe('preload-unknown');
    } finally {
      await database.withSession((s) => s.exec(`drop role ${role}`));
    }
  });

  it('runs every step on its own: each failure is logged and reported, and the connection stays usable', async () => {
    const { log, warnings } = capturingLog();
    // plpgsql is created and named as preloaded, so the setup runs; TimescaleDB's functions and views are missing here.
    const setup = await withPreload('plpgsql', async (s) => {
      const result = await setupTimescale(s, log, {
        probe: { extension: 'plpgsql', preloadSetting: 'session_preload_libraries' },
        retention: { bess: 7 },
      });
      expect(await s.query('select 1 as one')).toEqual([{ one: 1 }]);
      return result;
    });
    expect(setup.status).toBe('usable');
    const byStep = Object.fromEntries(setup.steps.map((s) => [s.step, s]));
    expect(byStep['extension plpgsql']).toEqual({ step: 'extension plpgsql', outcome: 'present' });
    for (const table of ['flux.mg_meter_readings', 'flux.mg_bess_readings', 'flux.market_data']) {
      expect(byStep[`hypertable ${table}`]).toMatchObject({ outcome: 'failed', detail: expect.stringMatching(/create_hypertable/) });
      expect(byStep[`compression ${table}`]).toMatchObject({ outcome: 'skipped', detail: `${table} is not a hypertable` });
      expect(byStep[`compression policy ${table}`]).toMatchObject({
        outcome: 'failed',
        detail: expect.stringMatching(/timescaledb_information/),
      });
    }
    expect(byStep['continuous aggregate flux.mg_meter_readings_5m_intermediate']).toMatchObject({ outcome: 'skipped' });
    expect(byStep['retention policy flux.mg_bess_readings']).toMatchObject({
      outcome: 'skipped',
      detail: expect.stringMatching(/retention job/),
    });
    expect(byStep['retention policy flux.mg_meter_readings']).toMatchObject({ outcome: 'present', detail: 'none; kept forever' });
    const failed = setup.steps.filter((s) => s.outcome === 'failed').map((s) => s.step);
    expect(failed).toHaveLength(7);
    expect(warnings().map((l) => l.step)).toEqual(failed);
    // Nothing of a failed step is kept: the tables are as the migrations left them.
    const [plain] = await database.withSession((s) =>
      s.query<{ n: number }>(`select count(*)::int as n from pg_class where relnamespace = 'flux'::regnamespace and relkind = 'r'
         and relname in ('mg_meter_readings', 'mg_bess_readings', 'market_data')`),
    );
    expect(plain?.n).toBe(3);
  });
});
