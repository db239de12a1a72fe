import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { create } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeviceSchema, DeviceType, RegisterProfile } from '../../gen/powerplane/v1/devices_pb.ts';
import { SCOPES, type Principal } from '../../src/rpc/principal.ts';
import { findIdempotentResponse, stableStringify } from '../../src/storage/idempotency.ts';
import { MIGRATIONS_DIR, migrate } from '../../src/storage/migrator.ts';
import { errorOf } from '../support/api.ts';
import { createTestDatabase, ENGINES, silentLog, type TestDatabase } from '../support/databases.ts';
import { registerBattery } from '../support/fleet.ts';
import { serveInMemory, type InMemoryApi } from '../support/services.ts';

/** A caller with every scope, bound to `sites` (`'*'` for every site). */
const principal = (id: string, sites: ReadonlySet<string> | '*', identity?: string): Principal => ({
  id,
  kind: identity ? 'jwt' : 'token',
  scopes: new Set(SCOPES),
  sites,
  ...(identity ? { identity } : {}),
});

const DESK_A = principal('token:desk-a', new Set(['site-a']));
const DESK_B = principal('token:desk-b', new Set(['site-b']));
const OPS_1 = principal('token:ops-1', '*');
const OPS_2 = principal('token:ops-2', '*');

const interval = (powerKw: number) => ({
  startTime: timestampFromMs(Date.now() + 600_000),
  endTime: timestampFromMs(Date.now() + 1_200_000),
  command: { case: 'powerKw' as const, value: powerKw },
});

function meter(site: string, name: string) {
  return create(DeviceSchema, {
    name,
    site,
    type: DeviceType.METER,
    spec: {
      case: 'meter',
      value: { modbus: { endpoint: { host: '127.0.0.1', port: 1, unitId: 9 }, registerProfile: RegisterProfile.SUNSPEC } },
    },
  });
}

describe.each(ENGINES)('request ids belong to the caller that sent them, on %s', (engine) => {
  let testDb: TestDatabase;
  let api: InMemoryApi;

  beforeAll(async () => {
    testDb = await createTestDatabase(engine);
    const database = await testDb.open();
    api = serveInMemory(database, testDb.config);
    const ops = api.as(OPS_1).registry;
    await registerBattery(ops, 'site-a', 'bess-a', { host: '127.0.0.1', port: 1, unitId: 1 });
    await registerBattery(ops, 'site-b', 'bess-b', { host: '127.0.0.1', port: 1, unitId: 2 });
  });
  afterAll(async () => {
    await api?.close();
    await testDb?.drop();
  });

  it("lets two desks use the same request id for their own dispatches, and answers each one's retry with its own", async () => {
    const a = api.as(DESK_A).dispatch;
    const b = api.as(DESK_B).dispatch;
    const requestA = { requestId: 'trade-99', target: { case: 'site' as const, value: 'site-a' }, intervals: [interval(10)] };
    const requestB = { requestId: 'trade-99', target: { case: 'site' as const, value: 'site-b' }, intervals: [interval(-20)] };
    const first = await a.submitDispatch(requestA);
    // Site B's desk learns nothing of site A's "trade-99": its own is a new request.
    const other = await b.submitDispatch(requestB);
    expect(other.instructions).toHaveLength(1);
    expect(other.instructions[0]).toMatchObject({ target: { case: 'site', value: 'site-b' }, principal: 'token:desk-b' });
    expect(other.instructions[0]!.id).not.toBe(first.instructions[0]!.id);
    // Each desk's retry gets its own stored answer, and writes nothing more.
    expect((await a.submitDispatch(requestA)).instructions).toEqual(first.instructions);
    expect((await b.submitDispatch(requestB)).instructions).toEqual(other.instructions);
    // A desk reusing its own id for another payload is still refused.
    expect(await errorOf(a.submitDispatch({ ...requestA, intervals: [interval(11)] }))).toMatchObject({
      code: 'AlreadyExists',
      message: expect.stringContaining('request_id'),
    });
    const all = await api.as(OPS_1).dispatch.listDispatches({ site: 'site-a' });
    const allB = await api.as(OPS_1).dispatch.listDispatches({ site: 'site-b' });
    expect(
      [...all.instructions, ...allB.instructions]
        .filter((i) => i.requestId === 'trade-99')
        .map((i) => i.principal)
        .sort(),
    ).toEqual(['token:desk-a', 'token:desk-b']);
  });

  it("lets two operators use the same request id to create devices, and answers each one's retry with its own device", async () => {
    const one = api.as(OPS_1).registry;
    const two = api.as(OPS_2).registry;
    const first = await one.createDevice({ device: meter('shared-id', 'meter-1'), requestId: 'create-7' });
    const second = await two.createDevice({ device: meter('shared-id', 'meter-2'), requestId: 'create-7' });
    expect(second.device!.id).not.toBe(first.device!.id);
    expect((await one.createDevice({ device: meter('shared-id', 'meter-1'), requestId: 'create-7' })).device).toEqual(first.device);
    expect((await two.createDevice({ device: meter('shared-id', 'meter-2'), requestId: 'create-7' })).device).toEqual(second.device);
    expect((await one.listDevices({ site: 'shared-id' })).devices.map((d) => d.name).sort()).toEqual(['meter-1', 'meter-2']);
  });

  it('keys a JWT caller by issuer and subject, so a re-issued JWT retries, and a new static token is a new caller', async () => {
    const request = { requestId: 'jwt-retry', target: { case: 'site' as const, value: 'site-a' }, intervals: [interval(5)] };
    const identity = 'jwt:https://idp.test desk-a';
    const first = await api.as(principal('jwt:desk-a', new Set(['site-a']), identity)).dispatch.submitDispatch(request);
    // The same subject with a fresh JWT is the same identity: its retry gets the first answer.
    expect((await api.as(principal('jwt:desk-a', new Set(['site-a']), identity)).dispatch.submitDispatch(request)).instructions).toEqual(
      first.instructions,
    );
    // The same subject of another issuer is someone else.
    const elsewhere = await api
      .as(principal('jwt:desk-a', new Set(['site-a']), 'jwt:https://other-idp.test desk-a'))
      .dispatch.submitDispatch(request);
    expect(elsewhere.instructions[0]!.id).not.toBe(first.instructions[0]!.id);
    // A static token's id is its identity: a rotated token does not match the old one's keys.
    const before = await api.as(principal('token:old', new Set(['site-a']))).dispatch.submitDispatch({ ...request, requestId: 'rotated' });
    const after = await api.as(principal('token:new', new Set(['site-a']))).dispatch.submitDispatch({ ...request, requestId: 'rotated' });
    expect(after.instructions[0]!.id).not.toBe(before.instructions[0]!.id);
  });
});

describe.each(ENGINES)('migrating stored request ids to per-principal keys, on %s', (engine) => {
  let testDb: TestDatabase;
  let dir: string;

  beforeAll(async () => {
    testDb = await createTestDatabase(engine);
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'powerplane-idempotency-'));
  });
  afterAll(async () => {
    await testDb?.drop();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('gives each key the principal its dispatch or audit row names, and a placeholder otherwise', async () => {
    // The schema as it was before request ids were per principal.
    const files = (await fs.readdir(MIGRATIONS_DIR)).filter((f) => f < '0014_');
    for (const file of files) await fs.copyFile(path.join(MIGRATIONS_DIR, file), path.join(dir, file));
    const database = await testDb.open({ migrated: false });
    await migrate(database, silentLog, dir);
    const db = database.db;
    const hash = (payload: unknown) => createHash('sha256').update(stableStringify(payload)).digest('hex');
    const stored = new Uint8Array([1, 2, 3]);
    for (const [method, requestId] of [
      ['SubmitDispatch', 'old-trade'],
      ['CreateDevice', 'old-create'],
      ['CreateDevice', 'not-audited'],
      ['CreateDevice', 'failed-only'],
    ]) {
      await sql`insert into powerplane.idempotency_keys (method, request_id, payload_sha256, response)
                values (${method}, ${requestId}, ${hash({ requestId })}, ${stored})`.execute(db);
    }
    await sql`insert into powerplane.dispatch_instructions (id, request_id, site, start_time, end_time, power_kw, priority, principal)
              values (gen_random_uuid(), 'old-trade', 'site-a', now(), now() + interval '1 hour', 10, 0, 'token:desk')`.execute(db);
    // The device's creator completed; a later caller with the same id (answered from the key) too.
    const audit = async (callId: string, who: string, requestId: string, phases: string[]) => {
      for (const phase of phases) {
        const request = phase === 'requested' ? JSON.stringify({ requestId, device: { name: 'x' } }) : null;
        await sql`insert into powerplane.audit_log (call_id, principal, method, phase, request)
                  values (${callId}::uuid, ${who}, 'powerplane.v1.DeviceRegistryService/CreateDevice',
                          ${phase}, ${request}::jsonb)`.execute(db);
      }
    };
    await audit('00000000-0000-4000-8000-000000000001', 'token:ops', 'old-create', ['requested', 'completed']);
    await audit('00000000-0000-4000-8000-000000000002', 'token:later', 'old-create', ['requested', 'completed']);
    await audit('00000000-0000-4000-8000-000000000003', 'token:refused', 'failed-only', ['requested', 'failed']);

    // The per-principal migration is the first of those this database had not applied.
    expect((await migrate(database, silentLog)).applied[0]).toBe('14_idempotency_per_principal');

    const { rows } = await sql<{ principal: string; method: string; request_id: string }>`
      select principal, method, request_id from powerplane.idempotency_keys order by method, request_id`.execute(db);
    expect(rows).toEqual([
      { principal: 'legacy:unknown', method: 'CreateDevice', request_id: 'failed-only' },
      { principal: 'legacy:unknown', method: 'CreateDevice', request_id: 'not-audited' },
      { principal: 'token:ops', method: 'CreateDevice', request_id: 'old-create' },
      { principal: 'token:desk', method: 'SubmitDispatch', request_id: 'old-trade' },
    ]);
    // The key's owner still gets its stored answer; anyone else finds nothing under that id.
    const codec = { encode: (v: Uint8Array) => v, decode: (v: Uint8Array) => v };
    const key = (who: string) => ({
      principal: who,
      method: 'SubmitDispatch',
      requestId: 'old-trade',
      payload: { requestId: 'old-trade' },
    });
    const found = await findIdempotentResponse(db, key('token:desk'), codec);
    expect(found && [...found]).toEqual([...stored]);
    expect(await findIdempotentResponse(db, key('token:someone-else'), codec)).toBeUndefined();
    // The same method and request id under another principal is a key of its own (a unique violation before).
    await sql`insert into powerplane.idempotency_keys (principal, method, request_id, payload_sha256, response)
              values ('token:someone-else', 'SubmitDispatch', 'old-trade', 'x', ${stored})`.execute(db);
  });
});
