import { create, ScalarType, type DescMessage, type DescMethod, type DescService } from '@bufbuild/protobuf';
import { timestampFromMs, type Timestamp } from '@bufbuild/protobuf/wkt';
import { createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TokenService } from '../../gen/powerplane/v1/auth_pb.ts';
import { DeviceRegistryService, DeviceSchema, DeviceType, RegisterProfile } from '../../gen/powerplane/v1/devices_pb.ts';
import { ControlMode, DispatchService } from '../../gen/powerplane/v1/dispatch_pb.ts';
import { FleetService } from '../../gen/powerplane/v1/fleet_pb.ts';
import { ReadingsService } from '../../gen/powerplane/v1/readings_pb.ts';
import { createAuditLog } from '../../src/audit/audit.ts';
import { encodePageToken } from '../../src/page-token.ts';
import { errorOf } from '../support/api.ts';
import { ENGINES } from '../support/databases.ts';
import { registerBattery } from '../support/fleet.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

/** The services whose requests are checked as a whole before any handler runs (TelemetryService checks reading by reading). */
const SERVICES: readonly DescService[] = [TokenService, DeviceRegistryService, DispatchService, ReadingsService, FleetService];
const serviceOf = (name: string) => SERVICES.find((s) => s.name === name)!;
const methodOf = (service: string, method: string) => serviceOf(service).methods.find((m) => m.name === method)!;

/**
 * Every string field of every request, by RPC and field path (`[]` marks a repeated field,
 * `{}` a JSON `Struct`, whose keys and strings are checked). A test below derives the same
 * list from the protobuf descriptors, so a string field added to the API fails it until it
 * is listed here, and thereby tested.
 */
const STRING_FIELDS: ReadonlyArray<readonly [service: string, method: string, path: string]> = [
  ['TokenService', 'CreateToken', 'name'],
  ['TokenService', 'CreateToken', 'scopes[]'],
  ['TokenService', 'CreateToken', 'sites[]'],
  ['TokenService', 'ListTokens', 'page_token'],
  ['TokenService', 'RevokeToken', 'id'],
  ['DeviceRegistryService', 'CreateDevice', 'device.id'],
  ['DeviceRegistryService', 'CreateDevice', 'device.name'],
  ['DeviceRegistryService', 'CreateDevice', 'device.site'],
  ['DeviceRegistryService', 'CreateDevice', 'device.bess.modbus.endpoint.host'],
  ['DeviceRegistryService', 'CreateDevice', 'device.bess.modbus.register_map{}'],
  ['DeviceRegistryService', 'CreateDevice', 'device.meter.modbus.endpoint.host'],
  ['DeviceRegistryService', 'CreateDevice', 'device.meter.modbus.register_map{}'],
  ['DeviceRegistryService', 'CreateDevice', 'device.metadata{}'],
  ['DeviceRegistryService', 'CreateDevice', 'request_id'],
  ['DeviceRegistryService', 'GetDevice', 'id'],
  ['DeviceRegistryService', 'ListDevices', 'site'],
  ['DeviceRegistryService', 'ListDevices', 'page_token'],
  ['DeviceRegistryService', 'UpdateDevice', 'device.id'],
  ['DeviceRegistryService', 'UpdateDevice', 'device.name'],
  ['DeviceRegistryService', 'UpdateDevice', 'device.site'],
  ['DeviceRegistryService', 'UpdateDevice', 'device.bess.modbus.endpoint.host'],
  ['DeviceRegistryService', 'UpdateDevice', 'device.bess.modbus.register_map{}'],
  ['DeviceRegistryService', 'UpdateDevice', 'device.meter.modbus.endpoint.host'],
  ['DeviceRegistryService', 'UpdateDevice', 'device.meter.modbus.register_map{}'],
  ['DeviceRegistryService', 'UpdateDevice', 'device.metadata{}'],
  ['DeviceRegistryService', 'UpdateDevice', 'update_mask.paths[]'],
  ['DeviceRegistryService', 'DeactivateDevice', 'id'],
  ['DeviceRegistryService', 'DeactivateDevice', 'reason'],
  ['DispatchService', 'PublishMarketData', 'points[].type'],
  ['DispatchService', 'PublishMarketData', 'points[].metadata{}'],
  ['DispatchService', 'ListMarketData', 'types[]'],
  ['DispatchService', 'ListMarketData', 'page_token'],
  ['DispatchService', 'SubmitDispatch', 'request_id'],
  ['DispatchService', 'SubmitDispatch', 'site'],
  ['DispatchService', 'SubmitDispatch', 'device_id'],
  ['DispatchService', 'CancelDispatch', 'id'],
  ['DispatchService', 'CancelDispatch', 'reason'],
  ['DispatchService', 'GetDispatch', 'id'],
  ['DispatchService', 'ListDispatches', 'site'],
  ['DispatchService', 'ListDispatches', 'device_id'],
  ['DispatchService', 'ListDispatches', 'page_token'],
  ['DispatchService', 'SetControlMode', 'device_id'],
  ['DispatchService', 'SetControlMode', 'reason'],
  ['DispatchService', 'WatchSetpoints', 'site'],
  ['DispatchService', 'WatchSetpoints', 'device_id'],
  ['DispatchService', 'GetControlState', 'site'],
  ['DispatchService', 'GetControlState', 'device_ids[]'],
  ['DispatchService', 'SetSiteConfig', 'config.site'],
  ['DispatchService', 'GetSiteConfig', 'site'],
  ['ReadingsService', 'ListMeterReadings', 'device_ids[]'],
  ['ReadingsService', 'ListMeterReadings', 'page_token'],
  ['ReadingsService', 'ListBessReadings', 'device_ids[]'],
  ['ReadingsService', 'ListBessReadings', 'page_token'],
  ['ReadingsService', 'GetLatestBessState', 'device_ids[]'],
  ['ReadingsService', 'GetLatestBessState', 'site'],
  ['ReadingsService', 'ListMeterAggregates', 'device_ids[]'],
  ['ReadingsService', 'ListMeterAggregates', 'page_token'],
  ['ReadingsService', 'ListSettlementPeriods', 'device_ids[]'],
  ['ReadingsService', 'ListBatterySeries', 'site'],
  ['ReadingsService', 'ListBatterySeries', 'device_ids[]'],
  ['ReadingsService', 'ListDatumReadings', 'device_id'],
  ['ReadingsService', 'ListDatumReadings', 'source_id'],
  ['ReadingsService', 'ListDatumReadings', 'page_token'],
  ['FleetService', 'GetFleetSummary', 'sites[]'],
];

const JSON_TYPES = new Set(['google.protobuf.Struct', 'google.protobuf.Value', 'google.protobuf.ListValue']);

/** The string fields (and Struct fields) reachable from `desc`, as paths in the notation of STRING_FIELDS. */
function stringPaths(desc: DescMessage, prefix = ''): string[] {
  return desc.fields.flatMap((field) => {
    const path = `${prefix}${field.name}${field.fieldKind === 'list' ? '[]' : ''}`;
    if (field.fieldKind === 'scalar' || (field.fieldKind === 'list' && field.listKind === 'scalar'))
      return field.scalar === ScalarType.STRING ? [path] : [];
    if (field.fieldKind === 'message' || (field.fieldKind === 'list' && field.listKind === 'message')) {
      return JSON_TYPES.has(field.message.typeName) ? [`${path}{}`] : stringPaths(field.message, `${path}.`);
    }
    return field.fieldKind === 'map' ? [`${path}{map}`] : [];
  });
}

/** The Timestamp fields reachable from `desc`, as paths with `[0]` for a repeated field. */
function timestampPaths(desc: DescMessage, prefix = ''): string[] {
  return desc.fields.flatMap((field) => {
    if (field.fieldKind !== 'message' && !(field.fieldKind === 'list' && field.listKind === 'message')) return [];
    const path = `${prefix}${field.name}${field.fieldKind === 'list' ? '[0]' : ''}`;
    if (field.message.typeName === 'google.protobuf.Timestamp') return [path];
    return JSON_TYPES.has(field.message.typeName) ? [] : timestampPaths(field.message, `${path}.`);
  });
}

/** A request init with `leaf` at `path` (one element for each repeated field on the way, the oneof case chosen). */
function requestWith(desc: DescMessage, path: string, leaf: unknown): Record<string, unknown> {
  const [head, ...rest] = path.split('.');
  const name = head!.replace(/\[\]$|\{\}$/, '');
  const field = desc.fields.find((f) => f.name === name)!;
  let value = rest.length === 0 ? leaf : requestWith((field as { message: DescMessage }).message, rest.join('.'), leaf);
  if (field.fieldKind === 'list') value = [value];
  return field.oneof ? { [field.oneof.localName]: { case: field.localName, value } } : { [field.localName]: value };
}

/** Calls `method` with `request` and drains a server stream's first message. */
async function call(baseUrl: string, service: DescService, method: DescMethod, request: object): Promise<unknown> {
  const client = createClient(service, createGrpcTransport({ baseUrl })) as unknown as Record<string, (req: object) => unknown>;
  const result = client[method.localName]!(create(method.input, request as never));
  if (method.methodKind === 'server_streaming') {
    for await (const _ of result as AsyncIterable<unknown>) break;
    return undefined;
  }
  return result;
}

describe('the string fields of the requests', () => {
  it('are all in the table the tests below walk', () => {
    const derived = SERVICES.flatMap((s) => s.methods.flatMap((m) => stringPaths(m.input).map((path) => [s.name, m.name, path] as const)));
    expect(derived).toEqual(STRING_FIELDS);
    // 64 paths (50 distinct fields), plus the 10 fields of TelemetryService checked reading by reading.
    expect(derived).toHaveLength(64);
  });
});

const NOW = Date.now();
const DAY = 86_400_000;
const UUID = '00000000-0000-4000-8000-000000000000';
const RANGE = (t: Timestamp, end: boolean) => ({
  range: end ? { startTime: timestampFromMs(NOW - DAY), endTime: t } : { startTime: t, endTime: timestampFromMs(NOW) },
});

/**
 * Every Timestamp field of every request with a request that is otherwise good enough to
 * reach the conversion. `device.create_time` is output only and ignored (tested below).
 */
const TIME_FIELDS: ReadonlyArray<readonly [service: string, method: string, field: string, request: (t: Timestamp) => object]> = [
  ['TokenService', 'CreateToken', 'expire_time', (t) => ({ name: 'n', scopes: ['readings:read'], expireTime: t })],
  ['DispatchService', 'PublishMarketData', 'points[0].time', (t) => ({ points: [{ time: t, type: 'niv_estimate', value: 1 }] })],
  ['DispatchService', 'ListMarketData', 'start_time', (t) => ({ startTime: t, endTime: timestampFromMs(NOW) })],
  ['DispatchService', 'ListMarketData', 'end_time', (t) => ({ startTime: timestampFromMs(NOW), endTime: t })],
  ...(['start_time', 'end_time'] as const).map(
    (end) =>
      [
        'DispatchService',
        'SubmitDispatch',
        `intervals[0].${end}`,
        (t: Timestamp) => ({
          requestId: 'r',
          target: { case: 'site', value: 'nowhere' },
          intervals: [
            {
              startTime: end === 'start_time' ? t : timestampFromMs(NOW),
              endTime: end === 'end_time' ? t : timestampFromMs(NOW + DAY),
              command: { case: 'powerKw', value: 1 },
            },
          ],
        }),
      ] as const,
  ),
  ['DispatchService', 'ListDispatches', 'start_time', (t) => ({ startTime: t })],
  ['DispatchService', 'ListDispatches', 'end_time', (t) => ({ endTime: t })],
  [
    'DispatchService',
    'SetControlMode',
    'expire_time',
    (t) => ({ deviceId: UUID, mode: ControlMode.MANUAL, manualPowerKw: 1, reason: 'r', expireTime: t }),
  ],
  ...(['ListMeterReadings', 'ListBessReadings', 'ListMeterAggregates', 'ListSettlementPeriods', 'ListBatterySeries'] as const).flatMap(
    (method) =>
      [false, true].map(
        (end) =>
          [
            'ReadingsService',
            method,
            `range.${end ? 'end' : 'start'}_time`,
            (t: Timestamp) => ({ deviceIds: [UUID], ...RANGE(t, end) }),
          ] as const,
      ),
  ),
  ...[false, true].map(
    (end) =>
      [
        'ReadingsService',
        'ListDatumReadings',
        `range.${end ? 'end' : 'start'}_time`,
        (t: Timestamp) => ({ deviceId: UUID, sourceId: 's', ...RANGE(t, end) }),
      ] as const,
  ),
];
const OUTPUT_ONLY_TIMES = [
  ['DeviceRegistryService', 'CreateDevice', 'device.create_time'],
  ['DeviceRegistryService', 'UpdateDevice', 'device.create_time'],
];

describe('the Timestamp fields of the requests', () => {
  it('are all in the table the tests below walk', () => {
    const derived = SERVICES.flatMap((s) => s.methods.flatMap((m) => timestampPaths(m.input).map((path) => [s.name, m.name, path])));
    expect(derived).toEqual(expect.arrayContaining([...TIME_FIELDS.map(([s, m, f]) => [s, m, f]), ...OUTPUT_ONLY_TIMES]));
    expect(derived).toHaveLength(TIME_FIELDS.length + OUTPUT_ONLY_TIMES.length);
  });
});

describe.each(ENGINES)('requests on %s', (engine) => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer(engine);
  });
  afterAll(async () => {
    await t?.stop();
  });

  it.each(STRING_FIELDS)('%s.%s answers a NUL in %s with INVALID_ARGUMENT naming the field', async (service, method, path) => {
    const struct = path.endsWith('{}');
    const leaf = path.endsWith('[]') ? 'a\u0000b' : struct ? { note: 'a\u0000b' } : 'a\u0000b';
    const field = path.replace(/\[\]/g, '[0]').replace(/\{\}$/, '.note');
    const desc = methodOf(service, method);
    const { code, message } = await errorOf(call(t.baseUrl, serviceOf(service), desc, requestWith(desc.input, path, leaf)));
    expect({ code, message }).toEqual({ code: 'InvalidArgument', message: `${field} must not contain a NUL character (got "a\\u0000b")` });
  });

  it('answers a NUL in a key of a Struct field, and a lone surrogate in one, naming the field', async () => {
    const registry = createClient(DeviceRegistryService, createGrpcTransport({ baseUrl: t.baseUrl }));
    expect(await errorOf(registry.createDevice({ device: { name: 'x', metadata: { ok: { 'k\u0000': 1 } } } }))).toEqual({
      code: 'InvalidArgument',
      message: 'device.metadata.ok has a key that must not contain a NUL character (got "k\\u0000")',
    });
    // Only JSON can carry a lone surrogate (binary protobuf has UTF-8, where it has no form).
    const res = await fetch(`${t.baseUrl}/powerplane.v1.DispatchService/PublishMarketData`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: `{"points":[{"time":"${new Date(NOW).toISOString()}","type":"niv_estimate","value":1,"metadata":{"note":"a\\ud800"}}]}`,
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({
      code: 'invalid_argument',
      message: 'points[0].metadata.note must be well-formed Unicode (it holds a lone surrogate) (got "a\\ud800")',
    });
  });

  it('answers text longer than its field allows with INVALID_ARGUMENT naming the field', async () => {
    const dispatch = createClient(DispatchService, createGrpcTransport({ baseUrl: t.baseUrl }));
    expect(await errorOf(dispatch.cancelDispatch({ id: UUID, reason: 'r'.repeat(1_001) }))).toMatchObject({
      code: 'InvalidArgument',
      message: expect.stringMatching(/^reason must be at most 1000 characters/),
    });
    expect(await errorOf(dispatch.getSiteConfig({ site: 's'.repeat(201) }))).toMatchObject({
      code: 'InvalidArgument',
      message: expect.stringMatching(/^site must be at most 200 characters/),
    });
  });

  it('refuses an audited change holding a NUL before it is audited, never as UNAVAILABLE', async () => {
    const rows = async () =>
      (await sql<{ n: number }>`select count(*)::int as n from powerplane.audit_log`.execute(t.server.database.db)).rows[0]!.n;
    const before = await rows();
    const dispatch = createClient(DispatchService, createGrpcTransport({ baseUrl: t.baseUrl }));
    expect(await errorOf(dispatch.submitDispatch({ requestId: 'trade\u0000', target: { case: 'site', value: 'a' } }))).toMatchObject({
      code: 'InvalidArgument',
    });
    expect(await errorOf(dispatch.setControlMode({ deviceId: UUID, mode: ControlMode.MANUAL, reason: 'storm\u0000' }))).toMatchObject({
      code: 'InvalidArgument',
    });
    expect(await rows()).toBe(before);
    // The same calls without the NUL are audited: the count above could have moved.
    expect(await errorOf(dispatch.setControlMode({ deviceId: UUID, mode: ControlMode.MANUAL, reason: 'storm' }))).toMatchObject({
      code: 'NotFound',
    });
    expect(await rows()).toBe(before + 2);
  });

  it('stores an audit message or principal holding a NUL escaped, as it reads', async () => {
    const audit = createAuditLog({ db: t.server.database.db });
    await audit.record({
      callId: crypto.randomUUID(),
      principal: 'jwt:odd\u0000sub',
      method: 'test/Escape',
      phase: 'failed',
      code: 'InvalidArgument',
      message: 'site "a\u0000" \ud800',
    });
    const [row] = await audit.list({ principal: 'jwt:odd\\u0000sub', limit: 1 });
    expect(row).toMatchObject({ method: 'test/Escape', message: 'site "a\\u0000" \\ud800' });
  });

  it('refuses a page token whose keys hold a NUL with INVALID_ARGUMENT naming page_token', async () => {
    const registry = createClient(DeviceRegistryService, createGrpcTransport({ baseUrl: t.baseUrl }));
    const pageToken = encodePageToken(['site\u0000', 'name', UUID], {});
    expect(await errorOf(registry.listDevices({ pageToken }))).toMatchObject({
      code: 'InvalidArgument',
      message: expect.stringMatching(/^page_token is not a page token from this API/),
    });
    const dispatch = createClient(DispatchService, createGrpcTransport({ baseUrl: t.baseUrl }));
    const beyondDates = encodePageToken([9e15, UUID], {});
    expect(await errorOf(dispatch.listDispatches({ pageToken: beyondDates }))).toMatchObject({
      code: 'InvalidArgument',
      message: expect.stringMatching(/^page_token/),
    });
  });

  it.each(TIME_FIELDS)('%s.%s answers an impossible %s with INVALID_ARGUMENT naming the field', async (service, method, field, request) => {
    const desc = methodOf(service, method);
    const beyond = await errorOf(
      call(t.baseUrl, serviceOf(service), desc, request({ $typeName: 'google.protobuf.Timestamp', seconds: 2n ** 62n, nanos: 0 })),
    );
    expect(beyond).toEqual({
      code: 'InvalidArgument',
      message: `${field} must be from year 1 to year 9999 (the range of a Timestamp) (got "${2n ** 62n}s 0ns")`,
    });
    const nanos = await errorOf(
      call(t.baseUrl, serviceOf(service), desc, request({ $typeName: 'google.protobuf.Timestamp', seconds: 0n, nanos: -1 })),
    );
    expect(nanos).toEqual({ code: 'InvalidArgument', message: `${field} must have nanos from 0 to 999999999 (got "0s -1ns")` });
  });

  it('takes the ends of the Timestamp range as the bounds of a listing', async () => {
    const first = { seconds: -62_135_596_800n, nanos: 0 };
    const last = { seconds: 253_402_300_799n, nanos: 999_999_999 };
    const transport = createGrpcTransport({ baseUrl: t.baseUrl });
    expect(await createClient(DispatchService, transport).listMarketData({ startTime: first, endTime: last })).toMatchObject({
      nextPageToken: '',
    });
    expect(await createClient(DispatchService, transport).listDispatches({ startTime: first, endTime: last })).toMatchObject({
      nextPageToken: '',
    });
    expect(
      await createClient(ReadingsService, transport).listBessReadings({ deviceIds: [UUID], range: { startTime: first, endTime: last } }),
    ).toMatchObject({ bessReadings: [] });
  });

  it('ignores a device create_time, which the server assigns, however impossible', async () => {
    const registry = createClient(DeviceRegistryService, createGrpcTransport({ baseUrl: t.baseUrl }));
    const { device } = await registry.createDevice({
      device: create(DeviceSchema, {
        name: 'meter-created-in-the-far-future',
        site: 'time',
        type: DeviceType.METER,
        createTime: { seconds: 2n ** 62n },
        spec: {
          case: 'meter',
          value: { modbus: { endpoint: { host: '127.0.0.1', port: 1502 }, registerProfile: RegisterProfile.SUNSPEC } },
        },
      }),
    });
    expect(Math.abs(Number(device!.createTime!.seconds) * 1_000 - Date.now())).toBeLessThan(DAY);
  });

  it('bounds a dispatch instruction to end at most 7 days ahead', async () => {
    const transport = createGrpcTransport({ baseUrl: t.baseUrl });
    await registerBattery(createClient(DeviceRegistryService, transport), 'window', 'b1', { host: '127.0.0.1', port: 1, unitId: 1 });
    const dispatch = createClient(DispatchService, transport);
    const end = Date.now() + 7 * DAY + 60_000;
    const submitted = dispatch.submitDispatch({
      requestId: 'far-ahead',
      target: { case: 'site', value: 'window' },
      intervals: [{ startTime: timestampFromMs(end - 60 * 60_000), endTime: timestampFromMs(end), command: { case: 'powerKw', value: 5 } }],
    });
    expect(await errorOf(submitted)).toEqual({
      code: 'InvalidArgument',
      message: `intervals[0].end_time must be at most 7 days ahead of now (got "${new Date(end).toISOString()}")`,
    });
    expect((await dispatch.listDispatches({ site: 'window' })).instructions).toEqual([]);
  });

  it('bounds a market data point to 31 days ahead and 731 days back', async () => {
    const dispatch = createClient(DispatchService, createGrpcTransport({ baseUrl: t.baseUrl }));
    const point = (ms: number) => ({ time: timestampFromMs(ms), type: 'wholesale_price', value: 50 });
    const ahead = Date.now() + 32 * DAY;
    expect(await errorOf(dispatch.publishMarketData({ points: [point(Date.now()), point(ahead)] }))).toEqual({
      code: 'InvalidArgument',
      message: `points[1].time must be at most 31 days ahead of now (got "${new Date(ahead).toISOString()}")`,
    });
    const behind = Date.now() - 732 * DAY;
    expect(await errorOf(dispatch.publishMarketData({ points: [point(behind)] }))).toMatchObject({
      code: 'InvalidArgument',
      message: expect.stringMatching(/^points\[0\]\.time must be at most 731 days before now/),
    });
    expect(await dispatch.publishMarketData({ points: [point(Date.now() + 30 * DAY), point(Date.now() - 730 * DAY)] })).toMatchObject({
      storedCount: 2,
    });
  });
});
