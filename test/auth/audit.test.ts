import { createHash } from 'node:crypto';
import { create, toJson } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DispatchService, PublishMarketDataRequestSchema } from '../../gen/powerplane/v1/dispatch_pb.ts';
import { createAuditLog } from '../../src/audit/audit.ts';
import { bearer } from '../../src/auth/bearer.ts';
import { createTokenStore } from '../../src/auth/tokens.ts';
import { toConfig } from '../../src/config.ts';
import type { Database } from '../../src/storage/database.ts';
import { errorOf } from '../support/api.ts';
import { createTestDatabase, type TestDatabase } from '../support/databases.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

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
    const refusal = { principal: 'token:flood', method: 'powerplane.v1.DispatchService/SubmitDispatch', code: 'ResourceExhausted', message: 'over the limit' };
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
      points: Array.from({ length: points }, (_, i) => ({ time: timestampFromMs(from + i * 60_000), type: 'niv_estimate', value: 100 + i, metadata: { source: 'audit test' } })),
    });

  beforeAll(async () => {
    t = await startTestServer('pglite', { auth: { ...toConfig({}).auth, enabled: true, adminTokenFile: undefined } });
    const created = await createTokenStore({ db: t.server.database.db, cacheMs: 0 }).create({ name: 'niv feed', scopes: ['marketdata:write'] }, 'test');
    secret = created.secret;
    tokenId = created.info.id;
  });
  afterAll(async () => {
    await t?.stop();
  });

  const client = () => createClient(DispatchService, createGrpcTransport({ baseUrl: t.baseUrl, interceptors: [bearer(secret)] }));
  const rowsOf = async () => (await createAuditLog({ db: t.server.database.db }).list({ principal: `token:${tokenId}`, limit: 1_000 })).reverse();

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
    const stored = await sql<{ created_at: Date }>`select min(created_at) as created_at from flux.market_data where metadata->>'source' = 'audit test'`.execute(t.server.database.db);
    expect(rows[0]!.at.getTime()).toBeLessThanOrEqual(stored.rows[0]!.created_at.getTime());
  });

  it('records a refused publish (an unknown type) as failed with its code', async () => {
    const before = (await rowsOf()).length;
    const bad = create(PublishMarketDataRequestSchema, { points: [{ time: timestampFromMs(Date.UTC(2026, 5, 2)), type: 'no_such_type', value: 1 }] });
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
    expect(requested!.request).toEqual({ truncated: true, bytes: Buffer.byteLength(text), sha256: createHash('sha256').update(text).digest('hex'), start: text.slice(0, 1_000) });
    expect(completed).toMatchObject({ phase: 'completed', callId: requested!.callId });
  });
});
