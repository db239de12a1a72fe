import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { create } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError, createClient, type Client } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { TokenService } from '../../gen/powerplane/v1/auth_pb.ts';
import { DeviceRegistryService, DeviceSchema, DeviceType, RegisterProfile } from '../../gen/powerplane/v1/devices_pb.ts';
import { ControlMode, DispatchService } from '../../gen/powerplane/v1/dispatch_pb.ts';
import { ReadingsService } from '../../gen/powerplane/v1/readings_pb.ts';
import { TelemetryService } from '../../gen/powerplane/v1/telemetry_pb.ts';
import { bearer } from '../../src/auth/bearer.ts';
import { toConfig } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';
import { startServer, type Server } from '../../src/server/server.ts';
import { APP_SCHEMAS, APP_TABLE_PRIVILEGES } from '../../src/storage/app-role.ts';
import { openDatabase } from '../../src/storage/database.ts';
import { loadMigrations, migrate, MIGRATIONS_DIR } from '../../src/storage/migrator.ts';
import { startSimulator, type Simulator } from '../../src/simulator/simulator.ts';
import { createTestDatabase, silentLog, type TestDatabase } from '../support/databases.ts';
import { registerBattery } from '../support/fleet.ts';
import { waitFor } from '../support/wait.ts';
import { batch, bessReading, datumReading, meterReading, recentMinute } from '../telemetry/helpers.ts';

const run = promisify(execFile);
const BIN = path.resolve(import.meta.dirname, '../../bin/powerplane.js');

/** `powerplane migrate` as an operator runs it; resolves with its output. */
async function migrateCli(args: string[]): Promise<{ stdout: string; stderr: string }> {
  return run(process.execPath, [BIN, 'migrate', '--log-level', 'warn', ...args], { timeout: 60_000 });
}

/** `url` with `user` (password `password`) as its credentials. */
function asUser(url: string, user: string, password: string): string {
  const u = new URL(url);
  u.username = user;
  u.password = password;
  return u.toString();
}

async function withClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** The SQLSTATE a statement fails with, or 'ok' when it does not fail. */
async function sqlState(client: pg.Client, statement: string): Promise<string> {
  return client.query(statement).then(
    () => 'ok',
    (err: { code?: string }) => err.code ?? 'no code',
  );
}

describe('the application role that powerplane migrate prints grants for, on PostgreSQL', () => {
  const role = `pp_app_${randomBytes(5).toString('hex')}`;
  const password = randomBytes(12).toString('hex');
  let testDatabase: TestDatabase;
  let ownerUrl: string;
  let appUrl: string;
  let printed: string;
  let dataDir: string;
  let sim: Simulator;
  let server: Server | undefined;
  const logged: Array<Record<string, unknown>> = [];

  beforeAll(async () => {
    testDatabase = await createTestDatabase('postgres');
    if (testDatabase.config.kind !== 'postgres') throw new Error('a PostgreSQL database was expected');
    ownerUrl = testDatabase.config.url;
    appUrl = asUser(ownerUrl, role, password);
    await withClient(ownerUrl, (c) => c.query(`create role ${role} login password '${password}'`));
    dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'powerplane-app-role-'));
    sim = await startSimulator({ bess: 1 });
  });
  afterAll(async () => {
    await server?.stop();
    await sim?.stop();
    await testDatabase?.drop();
    await withClient(inject('postgresAdminUrl'), (c) => c.query(`drop role if exists ${role}`));
    if (dataDir) await fs.rm(dataDir, { recursive: true, force: true });
  });

  it('migrate as the superuser prints the grants of the default role without being asked', async () => {
    const { stdout, stderr } = await migrateCli(['--database-url', ownerUrl]);
    expect(stderr).toBe('');
    expect(stdout).toMatch(/^applied: 1_flux_schema/);
    expect(stdout).toContain('-- The migrations ran as the superuser');
    expect(stdout).toContain('grant select, insert on ');
    expect(stdout).toMatch(/grant select, insert on [^;]*\bpowerplane\.audit_log\b[^;]* to powerplane_app;/);
    expect(stdout).toMatch(/grant select, insert on [^;]*\bpowerplane\.setpoint_events\b[^;]* to powerplane_app;/);
    expect(stdout).not.toMatch(/grant [^;]*(update|delete|truncate|all)[^;]* on [^;]*(audit_log|setpoint_events)/);
  });

  it('knows every relation the migrations create in the schemas the application uses', async () => {
    const names = await withClient(ownerUrl, async (c) =>
      (
        await c.query<{ name: string }>(
          `select n.nspname || '.' || c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
           where n.nspname = any($1::text[]) and c.relkind in ('r', 'p', 'v', 'm', 'f') order by 1`,
          [[...APP_SCHEMAS]],
        )
      ).rows.map((r) => r.name),
    );
    expect(names.length).toBeGreaterThan(10);
    expect(names.filter((name) => !(name in APP_TABLE_PRIVILEGES))).toEqual([]);
  });

  it('runs the printed statements for a new role, which can then migrate (nothing pending) but is told nothing', async () => {
    const { stdout } = await migrateCli(['--database-url', ownerUrl, '--app-role', role]);
    expect(stdout).toMatch(/^up to date at version \d+\n/);
    printed = stdout.slice(stdout.indexOf('\n') + 1);
    expect(printed).toContain(`to ${role};`);
    await withClient(ownerUrl, (c) => c.query(printed));
    // Again, as after a later migration: the same statements apply cleanly to a role that has them.
    await withClient(ownerUrl, (c) => c.query(printed));

    const asApp = await migrateCli(['--database-url', appUrl]);
    expect(asApp.stdout).toMatch(/^up to date at version \d+\n$/);
  });

  it('cannot apply a pending migration itself, and the error says who can', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'powerplane-migrations-'));
    try {
      for (const migration of await loadMigrations(MIGRATIONS_DIR))
        await fs.writeFile(path.join(dir, `${String(migration.version).padStart(4, '0')}_${migration.name}.sql`), migration.sql);
      await fs.writeFile(path.join(dir, '9999_later.sql'), 'create table powerplane.later (id int);');
      const database = await openDatabase({ kind: 'postgres', url: appUrl }, { log: silentLog, poolSize: 1 });
      try {
        await expect(migrate(database, silentLog, dir)).rejects.toMatchObject({
          message:
            'migration 9999_later failed: permission denied for schema powerplane ' +
            '(run powerplane migrate as the schema owner or a superuser)',
        });
      } finally {
        await database.close();
      }
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('serves as that role through ingest, queries, dispatch to a battery over Modbus, overrides, tokens and the audit trail', async () => {
    const config = toConfig({ listen: '127.0.0.1:0', databaseUrl: appUrl, dataDir, tokenCacheMs: '0' });
    const log = createLogger('info', { write: (line: string) => void logged.push(JSON.parse(line) as Record<string, unknown>) });
    server = await startServer(
      { ...config, dispatch: { ...config.dispatch, controlPeriodMs: 250, heartbeatIntervalMs: 300, maxTelemetryAgeMs: 600_000 } },
      { log },
    );
    const admin = (await fs.readFile(path.join(dataDir, 'admin.token'), 'utf8')).trim();
    const transport = createGrpcTransport({ baseUrl: `http://127.0.0.1:${server.address.port}`, interceptors: [bearer(admin)] });
    const registry = createClient(DeviceRegistryService, transport);
    const telemetry = createClient(TelemetryService, transport);
    const readings = createClient(ReadingsService, transport);
    const dispatch = createClient(DispatchService, transport);
    const tokens: Client<typeof TokenService> = createClient(TokenService, transport);

    // Registry: create, update, read.
    const battery = await registerBattery(registry, 'role-site', 'bess-1', sim.bess[0]!.endpoint, {
      minSoePercent: 5,
      maxSoePercent: 95,
      reversionTimeoutS: 5,
    });
    const { device: meter } = await registry.createDevice({
      device: create(DeviceSchema, {
        name: 'grid meter',
        site: 'role-site',
        type: DeviceType.METER,
        spec: {
          case: 'meter',
          value: { modbus: { endpoint: { host: '127.0.0.1', port: 1502, unitId: 1 }, registerProfile: RegisterProfile.SUNSPEC } },
        },
      }),
    });
    await registry.updateDevice({ device: { ...meter!, name: 'grid meter 1' }, updateMask: { paths: ['name'] } });
    expect((await registry.listDevices({ site: 'role-site' })).devices).toHaveLength(2);

    // Ingest: COPY into the readings tables, then the same batch again through the staging
    // tables (duplicates), and datum streams whose names grow.
    const at = recentMinute();
    const first = batch(1, {
      meter: [meterReading(meter!.id, at)],
      bess: [bessReading(battery, at, { soePercent: 50, availableInverterBlocks: 1 })],
      datum: [datumReading(battery, '/cells', at, { instantaneous: { cell_temp_max_c: 31 } })],
    });
    expect((await telemetry.writeReadings({ batch: first })).ack).toMatchObject({ storedCount: 3 });
    expect((await telemetry.writeReadings({ batch: first })).ack).toMatchObject({ duplicateCount: 3 });
    const grown = batch(2, {
      datum: [datumReading(battery, '/cells', at + 1_000, { instantaneous: { cell_temp_max_c: 32, cell_temp_min_c: 20 } })],
    });
    expect((await telemetry.writeReadings({ batch: grown })).ack).toMatchObject({ storedCount: 1 });
    // A fresh battery reading, so the planner has telemetry younger than its limit.
    await telemetry.writeReadings({
      batch: batch(3, { bess: [bessReading(battery, Date.now(), { soePercent: 50, availableInverterBlocks: 1 })] }),
    });

    const range = { startTime: timestampFromMs(at - 3_600_000), endTime: timestampFromMs(Date.now() + 60_000) };
    expect((await readings.listMeterReadings({ deviceIds: [meter!.id], range })).meterReadings).toHaveLength(1);
    expect((await readings.listBessReadings({ deviceIds: [battery], range })).bessReadings.length).toBeGreaterThanOrEqual(2);
    expect((await readings.getLatestBessState({ site: 'role-site' })).states).toHaveLength(1);
    await readings.listMeterAggregates({ deviceIds: [meter!.id], range });
    await readings.listSettlementPeriods({ deviceIds: [meter!.id], range });
    expect((await readings.listDatumReadings({ deviceId: battery, sourceId: '/cells', range })).datumReadings).toHaveLength(2);

    // Market data and site settings.
    await dispatch.publishMarketData({ points: [{ time: timestampFromMs(Date.now()), type: 'wholesale_price', value: 80 }] });
    expect(
      (await dispatch.listMarketData({ types: ['wholesale_price'], startTime: range.startTime, endTime: range.endTime })).points,
    ).toHaveLength(1);
    await dispatch.setSiteConfig({ config: { site: 'role-site', importLimitKw: 500 } });
    // Back to no limits: the meter's reading is too old for the planner to charge under one.
    await dispatch.setSiteConfig({ config: { site: 'role-site' } });
    expect((await dispatch.getSiteConfig({ site: 'role-site' })).config).toMatchObject({ site: 'role-site' });

    // Dispatch through the control loop to the battery, verified over Modbus, retried, overridden, cancelled.
    await waitFor('shard leases', () => server!.controlsBatteries(), 30_000);
    const submit = {
      requestId: 'role-dispatch',
      target: { case: 'deviceId' as const, value: battery },
      intervals: [
        {
          startTime: timestampFromMs(Date.now() - 1_000),
          endTime: timestampFromMs(Date.now() + 120_000),
          command: { case: 'powerKw' as const, value: 40 },
        },
      ],
    };
    const { instructions } = await dispatch.submitDispatch(submit);
    expect((await dispatch.submitDispatch(submit)).instructions[0]!.id).toBe(instructions[0]!.id);
    const wset = () => sim.bess[0]!.state();
    await waitFor('dispatch 40 kW written', () => wset().wsetEna === 1 && wset().wsetW === 40_000);
    await dispatch.setControlMode({
      deviceId: battery,
      mode: ControlMode.MANUAL,
      manualPowerKw: -20,
      expireTime: timestampFromMs(Date.now() + 60_000),
      reason: 'role test',
    });
    await waitFor('manual -20 kW written', () => wset().wsetW === -20_000);
    await dispatch.setControlMode({ deviceId: battery, mode: ControlMode.AUTOMATIC, reason: 'done' });
    await waitFor('dispatch 40 kW restored', () => wset().wsetW === 40_000);
    await dispatch.cancelDispatch({ id: instructions[0]!.id, reason: 'end of test' });
    expect((await dispatch.listDispatches({ deviceId: battery })).instructions).toHaveLength(1);
    expect((await dispatch.getControlState({ deviceIds: [battery] })).states).toHaveLength(1);

    // Tokens: create, list, revoke; a refused call is audited.
    const { token } = await tokens.createToken({ name: 'role agent', scopes: ['telemetry:write'], sites: ['role-site'] });
    expect((await tokens.listTokens({})).tokens.length).toBeGreaterThanOrEqual(2);
    await tokens.revokeToken({ id: token!.id });
    const refused = createClient(
      DeviceRegistryService,
      createGrpcTransport({ baseUrl: `http://127.0.0.1:${server.address.port}`, interceptors: [bearer(`pp_${'0'.repeat(43)}`)] }),
    );
    const err = await refused.listDevices({}).catch((e: unknown) => ConnectError.from(e));
    expect((err as ConnectError).code).toBe(Code.Unauthenticated);

    await withClient(appUrl, async (c) => {
      const { rows: who } = await c.query<{ current_user: string; rolsuper: boolean }>(
        'select current_user, rolsuper from pg_roles where rolname = current_user',
      );
      expect(who).toEqual([{ current_user: role, rolsuper: false }]);
      const methods = async () =>
        (await c.query<{ method: string; phase: string }>(`select method, phase from powerplane.audit_log order by id`)).rows.map(
          (r) => `${r.method} ${r.phase}`,
        );
      await waitFor(
        'the refusal and the cancellation in the audit trail',
        async () => {
          const seen = await methods();
          return seen.some((m) => m.endsWith('refused')) && seen.some((m) => m.includes('CancelDispatch completed'));
        },
        10_000,
      );
      expect(await methods()).toEqual(
        expect.arrayContaining([
          expect.stringMatching(/CreateDevice completed$/),
          expect.stringMatching(/UpdateDevice completed$/),
          expect.stringMatching(/PublishMarketData completed$/),
          expect.stringMatching(/SetSiteConfig completed$/),
          expect.stringMatching(/SubmitDispatch completed$/),
          expect.stringMatching(/SetControlMode completed$/),
          expect.stringMatching(/CancelDispatch completed$/),
          expect.stringMatching(/CreateToken completed$/),
          expect.stringMatching(/RevokeToken completed$/),
        ]),
      );
      const { rows: verified } = await c.query<{ n: number }>(
        `select count(*)::int as n from powerplane.setpoint_events where device_id = $1 and phase = 'VERIFIED'`,
        [battery],
      );
      expect(verified[0]!.n).toBeGreaterThan(0);
    });

    // Nothing the server did, in a request or in a background loop, was refused by the database.
    expect(logged.filter((line) => /permission denied|must be owner|42501/.test(JSON.stringify(line)))).toEqual([]);
    expect(logged.filter((line) => Number(line.level) >= 50)).toEqual([]);
  }, 120_000);

  describe('as that role, the audit trail cannot be changed and its triggers cannot be disabled', () => {
    it.each([
      ['update powerplane.audit_log', `update powerplane.audit_log set principal = 'someone else'`],
      ['delete from powerplane.audit_log', 'delete from powerplane.audit_log'],
      ['truncate powerplane.audit_log', 'truncate powerplane.audit_log'],
      ['disable its update trigger', 'alter table powerplane.audit_log disable trigger audit_log_append_only'],
      ['disable every trigger', 'alter table powerplane.audit_log disable trigger all'],
      ['drop its trigger', 'drop trigger audit_log_append_only on powerplane.audit_log'],
      [
        'replace the trigger function',
        `create or replace function powerplane.refuse_audit_change() returns trigger language plpgsql as $$ begin return new; end $$`,
      ],
      ['skip triggers for the session', 'set session_replication_role = replica'],
      ['draw audit ids', `select nextval('powerplane.audit_log_id_seq')`],
      ['update powerplane.setpoint_events', `update powerplane.setpoint_events set target_power_kw = 0`],
      ['disable the setpoint_events trigger', 'alter table powerplane.setpoint_events disable trigger setpoint_events_append_only'],
      ['create a table in the schema', 'create table powerplane.shadow (id int)'],
      ['delete readings', 'delete from flux.mg_meter_readings'],
    ])('%s is refused (insufficient privilege)', async (_what, statement) => {
      await withClient(appUrl, async (c) => {
        const before = (await c.query<{ n: number }>('select count(*)::int as n from powerplane.audit_log')).rows[0]!.n;
        expect(before).toBeGreaterThan(0);
        expect(await sqlState(c, statement)).toBe('42501');
        expect((await c.query<{ n: number }>('select count(*)::int as n from powerplane.audit_log')).rows[0]!.n).toBe(before);
      });
    });

    it('while the owner may disable them, which is why the server must not run as the owner', async () => {
      await withClient(ownerUrl, async (c) => {
        await c.query('begin');
        expect(await sqlState(c, 'alter table powerplane.audit_log disable trigger audit_log_append_only')).toBe('ok');
        await c.query('rollback');
      });
    });
  });
});
