import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError } from '@connectrpc/connect';
import { sql, type Kysely, type KyselyPlugin } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeviceSchema, DeviceType, RegisterProfile } from '../../gen/powerplane/v1/devices_pb.ts';
import { ControlMode } from '../../gen/powerplane/v1/dispatch_pb.ts';
import { StreamReadingsRequestSchema } from '../../gen/powerplane/v1/telemetry_pb.ts';
import { createAuditLog } from '../../src/audit/audit.ts';
import { SCOPES, UNRESTRICTED, type Principal } from '../../src/rpc/principal.ts';
import type { SetpointRecord } from '../../src/dispatch/setpoint-events.ts';
import type { Database } from '../../src/storage/database.ts';
import { createTestDatabase, ENGINES, type TestDatabase } from '../support/databases.ts';
import { registerBattery } from '../support/fleet.ts';
import { serveInMemory, type Clients, type InMemoryApi } from '../support/services.ts';
import { waitFor } from '../support/wait.ts';

/**
 * One rule for ids of other sites: for a caller bound to sites, a device, instruction or
 * token outside them is answered exactly like an id that names nothing, and a site outside
 * the binding is refused the same way whether or not it exists. Every RPC that takes such a
 * name is called twice — with an unknown one and with another site's — and the two answers
 * (code and message, or the response) must be byte-identical once the name's text is
 * replaced, and must have cost the same database statements.
 *
 * The real services run over a real database behind `createRouterTransport` with the real
 * audit and error interceptors (`support/services.ts`); the caller's principal is the
 * subject here, not how authentication established it.
 */

const UNKNOWN_DEVICE = '00000000-0000-4000-8000-00000000abcd';
const UNKNOWN_INSTRUCTION = '00000000-0000-4000-8000-00000000dcba';
const UNKNOWN_TOKEN = '00000000-0000-4000-8000-00000000beef';
const UNKNOWN_SITE = 'site-nowhere';
const FOREIGN_SITE = 'site-b';

/** The bound caller: every scope (scopes are not the subject), site A only. */
const TRADER: Principal = { id: 'token:trader-a', kind: 'token', scopes: new Set(SCOPES), sites: new Set(['site-a']) };

/** The SQL of every statement run through `db`, in order of execution; `take()` empties it. */
function recordStatements(db: Kysely<object>): { db: Kysely<object>; take(): string[] } {
  let seen: string[] = [];
  const executor = db.getExecutor();
  const plugin: KyselyPlugin = {
    transformQuery(args) {
      seen.push(executor.compileQuery(args.node, args.queryId).sql);
      return args.node;
    },
    transformResult: async (args) => args.result,
  };
  return {
    db: db.withPlugin(plugin),
    take() {
      const taken = seen;
      seen = [];
      return taken;
    },
  };
}

type Answer = { code: string; message: string } | { response: unknown } | { events: string[] };

/** What a unary call answered, as comparable data. */
async function answerOf(call: Promise<unknown>): Promise<Answer> {
  try {
    return { response: JSON.parse(JSON.stringify(await call, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))) as unknown };
  } catch (err) {
    const e = ConnectError.from(err);
    return { code: Code[e.code], message: e.rawMessage };
  }
}

describe.each(ENGINES)('ids and sites outside a bound caller are answered as unknown ones, on %s', (engine) => {
  let testDb: TestDatabase;
  let database: Database;
  let api: InMemoryApi;
  let statements: ReturnType<typeof recordStatements>;
  const as = (principal: Principal) => api.as(principal);
  const ids: Record<string, string> = {};
  const start = Date.parse('2024-03-01T00:00:00Z');
  const range = { startTime: timestampFromMs(start), endTime: timestampFromMs(start + 3_600_000) };

  beforeAll(async () => {
    testDb = await createTestDatabase(engine);
    database = await testDb.open();
    statements = recordStatements(database.db);
    // The audit trail writes through `database` itself, unrecorded: what is compared is what the answer waited for.
    api = serveInMemory(database, testDb.config, { db: statements.db });

    // Site A is the caller's; site B holds a battery and a meter with data of every kind.
    const admin = as(UNRESTRICTED);
    const endpoint = { host: '127.0.0.1', port: 1, unitId: 1 };
    ids.batteryA = await registerBattery(admin.registry, 'site-a', 'bess-a', endpoint);
    ids.batteryB = await registerBattery(admin.registry, FOREIGN_SITE, 'bess-b', { ...endpoint, unitId: 2 });
    const meter = (site: string, name: string, unitId: number) =>
      create(DeviceSchema, {
        name,
        site,
        type: DeviceType.METER,
        spec: { case: 'meter', value: { modbus: { endpoint: { ...endpoint, unitId }, registerProfile: RegisterProfile.SUNSPEC } } },
      });
    ids.meterB = (await admin.registry.createDevice({ device: meter(FOREIGN_SITE, 'meter-b', 3) })).device!.id;
    for (let minute = 0; minute < 60; minute += 5) {
      const time = new Date(start + minute * 60_000);
      await sql`insert into flux.mg_meter_readings ("time", device_id, power_total_active, energy_imported_active, energy_exported_active)
                values (${time}, ${ids.meterB}, 10, ${minute}, 0)`.execute(database.db);
      for (const battery of [ids.batteryA, ids.batteryB]) {
        await sql`insert into flux.mg_bess_readings ("time", device_id, soe, target_power, available_inverter_blocks, command_source)
                  values (${time}, ${battery}, 50, 5, 1, 2)`.execute(database.db);
      }
    }
    const { rows } = await sql<{ stream_id: string }>`insert into powerplane.datum_streams (device_id, source_id, names_i)
              values (${ids.batteryB}, 'cells', '{temp}') returning stream_id::text`.execute(database.db);
    await sql`insert into powerplane.datum_readings (stream_id, ts, data_i)
              values (${rows[0]!.stream_id}::uuid, ${new Date(start)}, '{21.5}')`.execute(database.db);
    const window = [
      {
        startTime: timestampFromMs(Date.now() + 3_600_000),
        endTime: timestampFromMs(Date.now() + 7_200_000),
        command: { case: 'powerKw' as const, value: 10 },
      },
    ];
    ids.siteInstructionB = (
      await admin.dispatch.submitDispatch({ requestId: 'b-site', target: { case: 'site', value: FOREIGN_SITE }, intervals: window })
    ).instructions[0]!.id;
    ids.batteryInstructionB = (
      await admin.dispatch.submitDispatch({ requestId: 'b-battery', target: { case: 'deviceId', value: ids.batteryB }, intervals: window })
    ).instructions[0]!.id;
    ids.tokenB = (await admin.tokens.createToken({ name: 'agent b', scopes: ['readings:read'], sites: [FOREIGN_SITE] })).token!.id;
  });

  afterAll(async () => {
    await api?.close();
    await testDb?.drop();
  });

  /** Calls `call` with `unknown` and then with `foreign`, each answer with its name replaced, and the statements each ran. */
  async function both(unknown: string, foreign: string, call: (name: string) => Promise<Answer>) {
    const run = async (name: string) => {
      statements.take();
      const answer = JSON.stringify(await call(name)).replaceAll(name, '<name>');
      return { answer, statements: statements.take() };
    };
    return { unknown: await run(unknown), foreign: await run(foreign) };
  }

  const deviceCases: Array<[string, 'batteryB' | 'meterB', (c: Clients, id: string) => Promise<Answer>]> = [
    ['DeviceRegistryService.GetDevice', 'batteryB', (c, id) => answerOf(c.registry.getDevice({ id }))],
    ['DeviceRegistryService.DeactivateDevice', 'batteryB', (c, id) => answerOf(c.registry.deactivateDevice({ id }))],
    [
      'DeviceRegistryService.UpdateDevice',
      'batteryB',
      (c, id) => answerOf(c.registry.updateDevice({ device: { id, name: 'renamed' }, updateMask: { paths: ['name'] } })),
    ],
    ['ReadingsService.ListMeterReadings', 'meterB', (c, id) => answerOf(c.readings.listMeterReadings({ deviceIds: [id], range }))],
    ['ReadingsService.ListBessReadings', 'batteryB', (c, id) => answerOf(c.readings.listBessReadings({ deviceIds: [id], range }))],
    ['ReadingsService.ListBessReadings with an own battery too, page by page', 'batteryB', (c, id) => pagesAnswer(c, [ids.batteryA!, id])],
    ['ReadingsService.GetLatestBessState', 'batteryB', (c, id) => answerOf(c.readings.getLatestBessState({ deviceIds: [id] }))],
    ['ReadingsService.ListMeterAggregates', 'meterB', (c, id) => answerOf(c.readings.listMeterAggregates({ deviceIds: [id], range }))],
    ['ReadingsService.ListSettlementPeriods', 'meterB', (c, id) => answerOf(c.readings.listSettlementPeriods({ deviceIds: [id], range }))],
    [
      'ReadingsService.ListBatterySeries',
      'batteryB',
      (c, id) => answerOf(c.readings.listBatterySeries({ deviceIds: [ids.batteryA!, id], range })),
    ],
    [
      'ReadingsService.ListDatumReadings',
      'batteryB',
      (c, id) => answerOf(c.readings.listDatumReadings({ deviceId: id, sourceId: 'cells', range })),
    ],
    [
      'DispatchService.SubmitDispatch',
      'batteryB',
      (c, id) =>
        answerOf(
          c.dispatch.submitDispatch({
            requestId: 'to-a-battery',
            target: { case: 'deviceId', value: id },
            intervals: [
              {
                startTime: timestampFromMs(Date.now() + 60_000),
                endTime: timestampFromMs(Date.now() + 120_000),
                command: { case: 'powerKw', value: 10 },
              },
            ],
          }),
        ),
    ],
    ['DispatchService.ListDispatches', 'batteryB', (c, id) => answerOf(c.dispatch.listDispatches({ deviceId: id }))],
    [
      'DispatchService.SetControlMode',
      'batteryB',
      (c, id) => answerOf(c.dispatch.setControlMode({ deviceId: id, mode: ControlMode.AUTOMATIC, reason: 'probe' })),
    ],
    ['DispatchService.GetControlState', 'batteryB', (c, id) => answerOf(c.dispatch.getControlState({ deviceIds: [id] }))],
    ['DispatchService.WatchSetpoints', 'batteryB', (c, id) => watchAnswer(c, { deviceId: id }, id)],
    [
      'TelemetryService.WriteReadings',
      'batteryB',
      (c, id) =>
        answerOf(
          c.telemetry.writeReadings({
            batch: { sequence: 1n, bessReadings: [{ deviceId: id, time: timestampFromMs(Date.now()), soePercent: 50 }] },
          }),
        ),
    ],
    [
      'TelemetryService.StreamReadings',
      'batteryB',
      (c, id) =>
        streamAnswer(c, {
          message: {
            case: 'batch',
            value: { sequence: 1n, bessReadings: [{ deviceId: id, time: timestampFromMs(Date.now()), soePercent: 50 }] },
          },
        }),
    ],
  ];

  it.each(deviceCases)("%s answers another site's device exactly as an unknown one", async (_name, which, call) => {
    const trader = as(TRADER);
    const { unknown, foreign } = await both(UNKNOWN_DEVICE, ids[which]!, (id) => call(trader, id));
    expect(foreign.answer).toBe(unknown.answer);
    expect(foreign.statements).toEqual(unknown.statements);
  });

  it.each([
    ['DispatchService.GetDispatch', 'siteInstructionB', (c: Clients, id: string) => answerOf(c.dispatch.getDispatch({ id }))],
    ['DispatchService.GetDispatch', 'batteryInstructionB', (c: Clients, id: string) => answerOf(c.dispatch.getDispatch({ id }))],
    [
      'DispatchService.CancelDispatch',
      'siteInstructionB',
      (c: Clients, id: string) => answerOf(c.dispatch.cancelDispatch({ id, reason: 'probe' })),
    ],
    [
      'DispatchService.CancelDispatch',
      'batteryInstructionB',
      (c: Clients, id: string) => answerOf(c.dispatch.cancelDispatch({ id, reason: 'probe' })),
    ],
    ['TokenService.RevokeToken', 'tokenB', (c: Clients, id: string) => answerOf(c.tokens.revokeToken({ id }))],
  ] as const)("%s answers another site's %s exactly as an unknown id", async (_name, which, call) => {
    const unknownId = which === 'tokenB' ? UNKNOWN_TOKEN : UNKNOWN_INSTRUCTION;
    const { unknown, foreign } = await both(unknownId, ids[which]!, (id) => call(as(TRADER), id));
    expect(foreign.answer).toBe(unknown.answer);
    expect(foreign.statements).toEqual(unknown.statements);
    expect(JSON.parse(foreign.answer)).toMatchObject({ code: 'NotFound' });
  });

  const bound = 'names site "<name>", which token:trader-a is not bound to';
  const siteCases: Array<[string, string, (c: Clients, site: string) => Promise<Answer>]> = [
    ['DeviceRegistryService.ListDevices', `site ${bound}`, (c, site) => answerOf(c.registry.listDevices({ site }))],
    [
      'DeviceRegistryService.CreateDevice',
      'CreateDevice needs a caller not bound to sites',
      (c, site) => answerOf(c.registry.createDevice({ device: { name: 'x', site, type: DeviceType.METER } })),
    ],
    ['ReadingsService.GetLatestBessState', `site ${bound}`, (c, site) => answerOf(c.readings.getLatestBessState({ site }))],
    ['ReadingsService.ListBatterySeries', `site ${bound}`, (c, site) => answerOf(c.readings.listBatterySeries({ site, range }))],
    ['FleetService.GetFleetSummary', `sites[1] ${bound}`, (c, site) => answerOf(c.fleet.getFleetSummary({ sites: ['site-a', site] }))],
    [
      'DispatchService.SubmitDispatch',
      `site ${bound}`,
      (c, site) => answerOf(c.dispatch.submitDispatch({ requestId: 'to-a-site', target: { case: 'site', value: site }, intervals: [] })),
    ],
    ['DispatchService.ListDispatches', `site ${bound}`, (c, site) => answerOf(c.dispatch.listDispatches({ site }))],
    ['DispatchService.GetControlState', `site ${bound}`, (c, site) => answerOf(c.dispatch.getControlState({ site }))],
    ['DispatchService.SetSiteConfig', `config.site ${bound}`, (c, site) => answerOf(c.dispatch.setSiteConfig({ config: { site } }))],
    ['DispatchService.GetSiteConfig', `site ${bound}`, (c, site) => answerOf(c.dispatch.getSiteConfig({ site }))],
    ['DispatchService.WatchSetpoints', `site ${bound}`, (c, site) => watchAnswer(c, { site }, site)],
    [
      'TelemetryService.StreamReadings',
      `hello.site ${bound}`,
      (c, site) => streamAnswer(c, { message: { case: 'hello', value: { site } } }),
    ],
    [
      'TokenService.CreateToken',
      `sites ${bound}`,
      (c, site) => answerOf(c.tokens.createToken({ name: 'probe', scopes: ['readings:read'], sites: [site] })),
    ],
  ];

  it.each(siteCases)('%s refuses another site exactly as a site that does not exist, before any lookup', async (_name, message, call) => {
    const { unknown, foreign } = await both(UNKNOWN_SITE, FOREIGN_SITE, (site) => call(as(TRADER), site));
    expect(foreign.answer).toBe(unknown.answer);
    expect(JSON.parse(foreign.answer)).toMatchObject({ code: 'PermissionDenied', message: expect.stringContaining(message) });
    expect(foreign.statements).toEqual([]);
    expect(unknown.statements).toEqual([]);
  });

  it("shows the caller nothing of another site's battery: the foreign rows exist and an unrestricted caller sees them", async () => {
    // The comparisons above are only worth something if site B's data is really there.
    const admin = as(UNRESTRICTED);
    expect((await admin.readings.listBessReadings({ deviceIds: [ids.batteryB!], range })).bessReadings).toHaveLength(12);
    expect((await admin.readings.listMeterReadings({ deviceIds: [ids.meterB!], range })).meterReadings).toHaveLength(12);
    expect((await admin.readings.listDatumReadings({ deviceId: ids.batteryB!, sourceId: 'cells', range })).datumReadings).toHaveLength(1);
    expect((await admin.dispatch.listDispatches({ deviceId: ids.batteryB! })).instructions.map((i) => i.id)).toEqual([
      ids.batteryInstructionB,
    ]);
    expect((await admin.dispatch.getDispatch({ id: ids.batteryInstructionB! })).instruction?.id).toBe(ids.batteryInstructionB);
    // The caller's own battery is listed alongside: only the other site's rows are left out.
    const mixed = await as(TRADER).readings.listBessReadings({ deviceIds: [ids.batteryA!, ids.batteryB!], range });
    expect(new Set(mixed.bessReadings.map((r) => r.deviceId))).toEqual(new Set([ids.batteryA]));
    expect(mixed.bessReadings).toHaveLength(12);
  });

  it("audits a NOT_FOUND for another site's id as a refusal, and an unknown id not", async () => {
    const trader = as(TRADER);
    await answerOf(trader.registry.getDevice({ id: UNKNOWN_DEVICE }));
    await answerOf(trader.dispatch.getDispatch({ id: UNKNOWN_INSTRUCTION }));
    await answerOf(trader.dispatch.getDispatch({ id: ids.batteryInstructionB! }));
    await answerOf(trader.readings.listDatumReadings({ deviceId: ids.batteryB!, sourceId: 'cells', range }));
    const log = createAuditLog({ db: database.db });
    const refusals = async () =>
      (await log.list({ principal: TRADER.id, limit: 1_000 })).filter((r) => r.phase === 'refused' && r.code === 'NotFound');
    const seen = (method: string) => async () => (await refusals()).some((r) => r.method === `powerplane.v1.${method}`);
    // Refusals of the same method within a second fold into one row (of the earlier cases, maybe).
    await waitFor('the GetDispatch refusal', seen('DispatchService/GetDispatch'));
    await waitFor('the ListDatumReadings refusal', seen('ReadingsService/ListDatumReadings'));
    await waitFor('the GetDevice refusal', seen('DeviceRegistryService/GetDevice'));
    const rows = await refusals();
    const instructionsOfB = [ids.siteInstructionB!, ids.batteryInstructionB!];
    expect(rows.find((r) => r.method === 'powerplane.v1.DispatchService/GetDispatch')?.message).toMatch(
      new RegExp(`id names no dispatch instruction \\(got "(${instructionsOfB.join('|')})"\\)`),
    );
    // A refusal is another site's id, never an unknown one.
    for (const unknown of [UNKNOWN_DEVICE, UNKNOWN_INSTRUCTION]) expect(rows.filter((r) => r.message?.includes(unknown))).toEqual([]);
  });

  /**
   * A WatchSetpoints stream of the bound caller: whether it opened, and which events it got
   * of two published for `id` — one at site B, then one at site A — read until the second.
   */
  async function watchAnswer(c: Clients, request: { deviceId?: string; site?: string }, id: string): Promise<Answer> {
    const stop = new AbortController();
    const before = api.subscriptions();
    const events: string[] = [];
    const done = (async () => {
      for await (const res of c.dispatch.watchSetpoints(request, { signal: stop.signal })) {
        events.push(...res.events.map((e) => e.setpointId));
        if (events.includes('at-site-a')) break;
      }
    })().then(
      () => undefined,
      (err: unknown) => ConnectError.from(err),
    );
    let failed: ConnectError | undefined;
    void done.then((e) => (failed = e));
    await waitFor('the watch to open or fail', () => api.subscriptions() > before || failed !== undefined, 10_000, 5);
    if (failed) return { code: Code[failed.code], message: failed.rawMessage };
    const event = (setpointId: string, site: string): SetpointRecord => ({
      setpointId,
      deviceId: request.deviceId ?? id,
      site,
      phase: 'VERIFIED',
      targetPowerKw: 1,
      source: 'DISPATCH',
      at: new Date(0),
      elapsedMs: 0,
    });
    api.bus.publish(event('at-site-b', FOREIGN_SITE));
    api.bus.publish(event('at-site-a', 'site-a'));
    const error = await done;
    stop.abort();
    return error ? { code: Code[error.code], message: error.rawMessage } : { events };
  }

  /**
   * Every page of a ListBessReadings of `deviceIds`, 5 rows a page. A page token is kept as
   * the position it carries: its filter digest covers the ids asked for, so it differs
   * with them by design, and is checked by the next call instead.
   */
  async function pagesAnswer(c: Clients, deviceIds: string[]): Promise<Answer> {
    const pages: unknown[] = [];
    let pageToken = '';
    for (let page = 0; page < 10; page++) {
      const res = await c.readings.listBessReadings({ deviceIds, range, pageSize: 5, pageToken });
      const position = res.nextPageToken
        ? (JSON.parse(Buffer.from(res.nextPageToken, 'base64url').toString('utf8')) as { k: unknown }).k
        : null;
      pages.push({ rows: res.bessReadings.map((r) => [r.deviceId, Number(r.time?.seconds)]), position });
      pageToken = res.nextPageToken;
      if (!pageToken) break;
    }
    return { response: pages };
  }

  /** A StreamReadings call of one request, half-closed after it: every response, or the error. */
  async function streamAnswer(c: Clients, request: MessageInitShape<typeof StreamReadingsRequestSchema>): Promise<Answer> {
    async function* one() {
      yield request;
    }
    const responses: unknown[] = [];
    try {
      for await (const res of c.telemetry.streamReadings(one())) responses.push(res);
    } catch (err) {
      const e = ConnectError.from(err);
      return { code: Code[e.code], message: e.rawMessage };
    }
    return { response: JSON.parse(JSON.stringify(responses, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))) as unknown };
  }
});
