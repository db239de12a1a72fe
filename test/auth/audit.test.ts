import { createHash } from 'node:crypto';
import { create, toJson } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { createClient, type Client } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeviceRegistryService } from '../../gen/powerplane/v1/devices_pb.ts';
import { DispatchService, PublishMarketDataRequestSchema } from '../../gen/powerplane/v1/dispatch_pb.ts';
import { createAuditLog } from '../../src/audit/audit.ts';
import { bearer } from '../../src/auth/bearer.ts';
import { createTokenStore } from '../../src/auth/tokens.ts';
import { toConfig } from '../../src/config.ts';
import { startSimulator, type Simulator } from '../../src/simulator/simulator.ts';
import type { Database } from '../../src/storage/database.ts';
import { errorOf } from '../support/api.ts';
import { createTestDatabase, ENGINES, type TestDatabase } from '../support/databases.ts';
import { registerBattery } from '../support/fleet.ts';
import { startTestServer, type TestServer } from '../support/server.ts';
import { sleep, waitFor } from '../support/wait.ts';

describe('the audit trail', () => {
  let testDatabase: TestDatabase;
  let database: Database;
  beforeAll(async () => {
    testDatabase = await createTestDatabase('pglite');
    database = await testDatabase.open({ migrated: true });
  });
  afterAll(async () => {
    await database?.close();
    await testDatabase?.drop();
  });

  it('folds repeated refusals of one principal, method and code into one row a second, and counts them', async () => {
    let clock = 1_000_000;
    const audit = createAuditLog({ db: database.db, now: () => clock });
    const refusal = {
      principal: 'token:flood',
      method: 'powerplane.v1.DispatchService/SubmitDispatch',
      code: 'ResourceExhausted',
      message: 'over the limit',
    };
    for (let i = 0; i < 50; i++) await audit.refused(refusal);
    await audit.refused({ ...refusal, code: 'PermissionDenied' });
    clock += 1_000;
    await audit.refused(refusal);
    const rows = (await audit.list({ principal: 'token:flood' })).reverse();
    expect(rows.map((r) => [r.phase, r.code, r.message])).toEqual([
      ['refused', 'ResourceExhausted', 'over the limit'],
      ['refused', 'PermissionDenied', 'over the limit'],
      ['refused', 'ResourceExhausted', 'over the limit (and 49 more like it since the last row)'],
    ]);
  });
});

describe('the audit of market data (drives batteries through the NIV chase)', () => {
  let t: TestServer;
  let secret: string;
  let tokenId: string;
  const publishing = (points: number, from: number) =>
    create(PublishMarketDataRequestSchema, {
      points: Array.from({ length: points }, (_, i) => ({
        time: timestampFromMs(from + i * 60_000),
        type: 'niv_estimate',
        value: 100 + i,
        metadata: { source: 'audit test' },
      })),
    });

  beforeAll(async () => {
    t = await startTestServer('pglite', { auth: { ...toConfig({}).auth, enabled: true, adminTokenFile: undefined } });
    const created = await createTokenStore({ db: t.server.database.db, cacheMs: 0 }).create(
      { name: 'niv feed', scopes: ['marketdata:write'] },
      'test',
    );
    secret = created.secret;
    tokenId = created.info.id;
  });
  afterAll(async () => {
    await t?.stop();
  });

  const client = () => createClient(DispatchService, createGrpcTransport({ baseUrl: t.baseUrl, interceptors: [bearer(secret)] }));
  const rowsOf = async () =>
    (await createAuditLog({ db: t.server.database.db }).list({ principal: `token:${tokenId}`, limit: 1_000 })).reverse();

  it('records a publish as requested, with its principal and points, before it is stored, and as completed after', async () => {
    const before = (await rowsOf()).length;
    const request = publishing(2, Date.UTC(2026, 5, 1));
    expect(await client().publishMarketData(request)).toMatchObject({ storedCount: 2 });
    const rows = (await rowsOf()).slice(before);
    expect(rows.map((r) => [r.method, r.phase])).toEqual([
      ['powerplane.v1.DispatchService/PublishMarketData', 'requested'],
      ['powerplane.v1.DispatchService/PublishMarketData', 'completed'],
    ]);
    expect(rows[1]!.callId).toBe(rows[0]!.callId);
    expect(rows[0]!.request).toEqual(toJson(PublishMarketDataRequestSchema, request));
    const stored = await sql<{
      created_at: Date;
    }>`select min(created_at) as created_at from flux.market_data where metadata->>'source' = 'audit test'`.execute(t.server.database.db);
    expect(rows[0]!.at.getTime()).toBeLessThanOrEqual(stored.rows[0]!.created_at.getTime());
  });

  it('records a refused publish (an unknown type) as failed with its code', async () => {
    const before = (await rowsOf()).length;
    const bad = create(PublishMarketDataRequestSchema, {
      points: [{ time: timestampFromMs(Date.UTC(2026, 5, 2)), type: 'no_such_type', value: 1 }],
    });
    expect(await errorOf(client().publishMarketData(bad))).toMatchObject({ code: 'InvalidArgument' });
    const rows = (await rowsOf()).slice(before);
    expect(rows.map((r) => [r.phase, r.code])).toEqual([
      ['requested', undefined],
      ['failed', 'InvalidArgument'],
    ]);
  });

  it('keeps a large batch as its size, SHA-256 and start, not whole', async () => {
    const before = (await rowsOf()).length;
    const request = publishing(2_000, Date.UTC(2026, 6, 1));
    const text = JSON.stringify(toJson(PublishMarketDataRequestSchema, request));
    expect(Buffer.byteLength(text)).toBeGreaterThan(16 * 1024);
    expect(await client().publishMarketData(request)).toMatchObject({ storedCount: 2_000 });
    const [requested, completed] = (await rowsOf()).slice(before);
    expect(requested).toMatchObject({ phase: 'requested', principal: `token:${tokenId}` });
    expect(requested!.request).toEqual({
      truncated: true,
      bytes: Buffer.byteLength(text),
      sha256: createHash('sha256').update(text).digest('hex'),
      start: text.slice(0, 1_000),
    });
    expect(completed).toMatchObject({ phase: 'completed', callId: requested!.callId });
  });
});

describe.each(ENGINES)('a change whose audit record cannot be written, on %s', (engine) => {
  let sim: Simulator;
  let t: TestServer;
  let dispatch: Client<typeof DispatchService>;
  let batteryId: string;
  const db = () => t.server.database.db;
  const submit = (requestId: string, kw = 20) =>
    dispatch.submitDispatch({
      requestId,
      target: { case: 'site', value: 'audited' },
      intervals: [
        {
          startTime: timestampFromMs(Date.now() - 1_000),
          endTime: timestampFromMs(Date.now() + 600_000),
          command: { case: 'powerKw', value: kw },
        },
      ],
    });
  const stored = async (requestId: string) =>
    (
      await sql<{ n: number }>`select count(*)::int as n from powerplane.dispatch_instructions where request_id = ${requestId}`.execute(
        db(),
      )
    ).rows[0]!.n;
  const auditRows = async (phase: string) =>
    (
      await sql<{
        n: number;
      }>`select count(*)::int as n from powerplane.audit_log
         where method = 'powerplane.v1.DispatchService/SubmitDispatch' and phase = ${phase}`.execute(db())
    ).rows[0]!.n;
  /** Makes every new audit row fail (a check no row passes; existing rows are not checked), runs `fn`, and lifts it. */
  async function withAuditFailing(fn: () => Promise<void>): Promise<void> {
    await sql`alter table powerplane.audit_log add constraint audit_unavailable check (false) not valid`.execute(db());
    try {
      await fn();
    } finally {
      await sql`alter table powerplane.audit_log drop constraint audit_unavailable`.execute(db());
    }
  }

  beforeAll(async () => {
    sim = await startSimulator({ bess: 1 });
    t = await startTestServer(engine, { dispatch: { ...toConfig({}).dispatch, controlPeriodMs: 250, maxTelemetryAgeMs: 60_000 } });
    const transport = createGrpcTransport({ baseUrl: t.baseUrl });
    dispatch = createClient(DispatchService, transport);
    batteryId = await registerBattery(createClient(DeviceRegistryService, transport), 'audited', 'audited-0', sim.bess[0]!.endpoint);
    await sql`insert into flux.mg_bess_readings (time, device_id, soe, available_inverter_blocks, command_source)
              values (now(), ${batteryId}, 50, 1, 2)`.execute(db());
    await waitFor('the control loop', () => t.server.controlsBatteries(), 30_000);
  });
  afterAll(async () => {
    await t?.stop();
    await sim?.stop();
  });

  it('refuses SubmitDispatch (a retried id too) and PublishMarketData UNAVAILABLE, storing, planning and writing nothing', async () => {
    expect(await submit('audited-first', 10)).toMatchObject({ instructions: [{ requestId: 'audited-first' }] });
    await waitFor('the first dispatch held', () => sim.bess[0]!.state().wsetW === 10_000);
    const events = (
      await sql<{ n: number }>`select count(*)::int as n from powerplane.setpoint_events where target_power_kw = 30`.execute(db())
    ).rows[0]!.n;
    await withAuditFailing(async () => {
      expect(await errorOf(submit('audited-refused', 30))).toEqual({
        code: 'Unavailable',
        message: 'the audit trail cannot be written - retry later',
      });
      // A retry answered from its stored response writes nothing either, but it is a call nobody could audit.
      expect(await errorOf(submit('audited-first', 10))).toMatchObject({ code: 'Unavailable' });
      // A handler that waits for its record before running is refused the same way.
      const point = { time: timestampFromMs(Date.UTC(2026, 6, 1)), type: 'niv_estimate', value: 42, metadata: { source: 'unaudited' } };
      expect(await errorOf(dispatch.publishMarketData({ points: [point] }))).toMatchObject({ code: 'Unavailable' });
      await sleep(750);
    });
    expect(
      (await sql<{ n: number }>`select count(*)::int as n from flux.market_data where metadata->>'source' = 'unaudited'`.execute(db()))
        .rows[0]!.n,
    ).toBe(0);
    expect(await stored('audited-refused')).toBe(0);
    expect(sim.bess[0]!.state().wsetW).toBe(10_000);
    expect(
      (await sql<{ n: number }>`select count(*)::int as n from powerplane.setpoint_events where target_power_kw = 30`.execute(db()))
        .rows[0]!.n,
    ).toBe(events);
  });

  // PGlite is one session: another cannot hold the audit table's lock meanwhile.
  if (engine === 'postgres')
    it('stores a SubmitDispatch only once its requested record is written, though its reads run meanwhile', async () => {
      const before = await auditRows('requested');
      const locker = await t.server.database.withSession(async (session) => {
        await session.exec('begin; lock table powerplane.audit_log in exclusive mode');
        const pending = submit('audited-late', -15);
        await sleep(500);
        const whileLocked = { stored: await stored('audited-late'), requested: await auditRows('requested') };
        await session.exec('commit');
        await pending;
        return whileLocked;
      });
      expect(locker).toEqual({ stored: 0, requested: before });
      expect(await stored('audited-late')).toBe(1);
      expect(await auditRows('requested')).toBe(before + 1);
      await waitFor('the dispatch held', () => sim.bess[0]!.state().wsetW === -15_000);
    });
});
