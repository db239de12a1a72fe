import { create, toBinary, toJsonString, type DescMessage, type MessageShape } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { Code, createClient, type Client } from '@connectrpc/connect';
import { createConnectTransport, createGrpcTransport } from '@connectrpc/connect-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TokenInfoSchema, TokenService } from '../../gen/powerplane/v1/auth_pb.ts';
import { DeviceRegistryService, DeviceSchema, DeviceType, RegisterProfile, type Device } from '../../gen/powerplane/v1/devices_pb.ts';
import { DispatchInstructionSchema, DispatchService, MarketDataPointSchema } from '../../gen/powerplane/v1/dispatch_pb.ts';
import { ReadingsService } from '../../gen/powerplane/v1/readings_pb.ts';
import { MeterReadingSchema } from '../../gen/powerplane/v1/telemetry_pb.ts';
import { toConfig } from '../../src/config.ts';
import { pageBytesFor } from '../../src/page-token.ts';
import { METER_QUANTITIES } from '../../src/storage/reading-columns.ts';
import { errorOf } from '../support/api.ts';
import { ENGINES } from '../support/databases.ts';
import { registerBattery } from '../support/fleet.ts';
import { startTestServer, type TestServer } from '../support/server.ts';
import { registerDevice } from '../telemetry/helpers.ts';

/** A small message limit, so a few rows of tens of kilobytes are more than one response can hold. */
const MAX_MESSAGE_BYTES = 64 * 1024;
const PAGE_BYTES = pageBytesFor(MAX_MESSAGE_BYTES);

type Encoding = 'protobuf' | 'json';

interface Clients {
  registry: Client<typeof DeviceRegistryService>;
  dispatch: Client<typeof DispatchService>;
  tokens: Client<typeof TokenService>;
  readings: Client<typeof ReadingsService>;
}

function clientsOver(transport: ReturnType<typeof createGrpcTransport>): Clients {
  return {
    registry: createClient(DeviceRegistryService, transport),
    dispatch: createClient(DispatchService, transport),
    tokens: createClient(TokenService, transport),
    readings: createClient(ReadingsService, transport),
  };
}

/** Bytes of a page's rows in the encoding they travelled in. */
function pageBytes<Desc extends DescMessage>(schema: Desc, rows: readonly MessageShape<Desc>[], encoding: Encoding): number {
  return rows.reduce(
    (sum, row) => sum + (encoding === 'json' ? Buffer.byteLength(toJsonString(schema, row)) : toBinary(schema, row).length),
    0,
  );
}

/**
 * Follows a listing to its end (at most 100 pages) and checks every page: its rows within
 * the page byte budget, or a single row alone. Returns the pages.
 */
async function allPages<Desc extends DescMessage>(
  schema: Desc,
  encoding: Encoding,
  list: (pageToken: string) => Promise<{ rows: MessageShape<Desc>[]; nextPageToken: string }>,
): Promise<MessageShape<Desc>[][]> {
  const pages: MessageShape<Desc>[][] = [];
  let pageToken = '';
  for (let i = 0; i < 100; i++) {
    const page = await list(pageToken);
    pages.push(page.rows);
    if (page.rows.length > 1) expect(pageBytes(schema, page.rows, encoding)).toBeLessThanOrEqual(PAGE_BYTES);
    pageToken = page.nextPageToken;
    if (pageToken === '') return pages;
  }
  throw new Error('the listing did not end within 100 pages');
}

/** `{ a: { a: ... { a: 1 } } }` with `levels` objects. */
function nested(levels: number): Record<string, unknown> {
  let value: unknown = 1;
  for (let i = 0; i < levels; i++) value = { a: value };
  return value as Record<string, unknown>;
}

function battery(
  site: string,
  name: string,
  extra: Partial<Omit<Device, '$typeName'>> = {},
  registerMap?: Record<string, unknown>,
): Device {
  return create(DeviceSchema, {
    name,
    site,
    type: DeviceType.BESS,
    spec: {
      case: 'bess',
      value: {
        ratedChargePowerKw: 100,
        ratedDischargePowerKw: 100,
        capacityKwh: 200,
        modbus: {
          endpoint: { host: '127.0.0.1', port: 1 },
          registerProfile: registerMap ? RegisterProfile.CUSTOM : RegisterProfile.SUNSPEC,
          ...(registerMap ? { registerMap: registerMap as never } : {}),
        },
      },
    },
    ...extra,
  });
}

describe.each(ENGINES)('listings with large rows on %s', (engine) => {
  let t: TestServer;
  const over: Record<Encoding, Clients> = {} as Record<Encoding, Clients>;

  beforeAll(async () => {
    const base = toConfig({ listen: '127.0.0.1:0' });
    t = await startTestServer(engine, { limits: { ...base.limits, maxMessageBytes: MAX_MESSAGE_BYTES } });
    over.protobuf = clientsOver(createGrpcTransport({ baseUrl: t.baseUrl }));
    over.json = clientsOver(createConnectTransport({ baseUrl: t.baseUrl, httpVersion: '1.1', useBinaryFormat: false }));
  });
  afterAll(() => t?.stop());

  it('refuses device metadata nested 50 deep over JSON, or beyond 16 KiB, naming the field', async () => {
    const deep = await errorOf(over.json.registry.createDevice({ device: battery('bounds', 'deep', { metadata: nested(50) as never }) }));
    expect(deep).toMatchObject({
      code: 'InvalidArgument',
      message: expect.stringMatching(/^device\.metadata must nest objects and arrays at most 8 levels deep/),
    });
    const large = await errorOf(
      over.protobuf.registry.createDevice({ device: battery('bounds', 'large', { metadata: { notes: 'x'.repeat(17_000) } }) }),
    );
    expect(large).toMatchObject({
      code: 'InvalidArgument',
      message: expect.stringMatching(/^device\.metadata must be at most 16384 bytes as JSON/),
    });
    const keys = Object.fromEntries(Array.from({ length: 101 }, (_, i) => [`k${i}`, i]));
    expect(await errorOf(over.protobuf.registry.createDevice({ device: battery('bounds', 'keys', { metadata: keys }) }))).toMatchObject({
      code: 'InvalidArgument',
      message: expect.stringContaining('device.metadata must have at most 100 keys in each object'),
    });
    const { devices } = await over.protobuf.registry.listDevices({ site: 'bounds' });
    expect(devices).toEqual([]);
  });

  it('refuses a register map nested too deep before reading its points, naming the field', async () => {
    const map = { points: [{ name: 'soePercent', address: 1, type: 'uint16' }], control: nested(9) };
    expect(await errorOf(over.json.registry.createDevice({ device: battery('bounds', 'map', {}, map) }))).toMatchObject({
      code: 'InvalidArgument',
      message: expect.stringMatching(/^device\.bess\.modbus\.register_map must nest objects and arrays at most 8 levels deep/),
    });
  });

  it('refuses oversized metadata on update and leaves the device as it was', async () => {
    const { device } = await over.protobuf.registry.createDevice({
      device: battery('bounds-update', 'b', { metadata: { location: 'WLCE' } }),
    });
    const changed = create(DeviceSchema, { ...device!, name: 'renamed', metadata: { notes: 'x'.repeat(17_000) } });
    expect(
      await errorOf(over.protobuf.registry.updateDevice({ device: changed, updateMask: { paths: ['name', 'metadata'] } })),
    ).toMatchObject({
      code: 'InvalidArgument',
      message: expect.stringContaining('device.metadata must be at most 16384 bytes'),
    });
    expect((await over.protobuf.registry.getDevice({ id: device!.id })).device).toMatchObject({
      name: 'b',
      metadata: { location: 'WLCE' },
    });
  });

  it('refuses market data metadata beyond its bounds, naming the point', async () => {
    const points = [
      { time: timestampFromMs(Date.UTC(2026, 0, 1)), type: 'niv_estimate', value: 1 },
      { time: timestampFromMs(Date.UTC(2026, 0, 1, 0, 30)), type: 'niv_estimate', value: 2, metadata: nested(9) as never },
    ];
    expect(await errorOf(over.json.dispatch.publishMarketData({ points }))).toMatchObject({
      code: 'InvalidArgument',
      message: expect.stringMatching(/^points\[1\]\.metadata must nest objects and arrays at most 8 levels deep/),
    });
  });

  it.each(['protobuf', 'json'] as const)(
    'lists devices stored with oversized metadata before the bound, each alone on its page (%s)',
    async (encoding) => {
      const site = `legacy-${encoding}`;
      // Stored as another Flux tool (or an older Powerplane) could have: 40 KB of metadata
      // each, three of them more than one response may carry.
      const legacy: string[] = [];
      const spec = { modbus: { host: '127.0.0.1', port: 502, unit_id: 1, register_profile: 'sunspec', polling_interval_ms: 1000 } };
      for (let i = 0; i < 3; i++) {
        const id = await registerDevice(t.server.database, 'meter', { site });
        const metadata = JSON.stringify({ meter: spec, blob: 'x'.repeat(40_000) });
        await t.server.database.withSession((s) =>
          s.query(`update flux.mg_device_registry set name = $2, metadata = $3::jsonb where id = $1`, [id, `legacy-${i}`, metadata]),
        );
        legacy.push(id);
      }
      const fresh: string[] = [];
      for (let i = 0; i < 5; i++) fresh.push((await over.protobuf.registry.createDevice({ device: battery(site, `new-${i}`) })).device!.id);

      const client = over[encoding].registry;
      const pages = await allPages(DeviceSchema, encoding, async (pageToken) => {
        const page = await client.listDevices({ site, pageSize: 100, pageToken });
        return { rows: page.devices, nextPageToken: page.nextPageToken };
      });
      // Ordered by name: the legacy devices first, each alone, then the new ones together.
      expect(pages.map((p) => p.map((d) => d.id))).toEqual([[legacy[0]], [legacy[1]], [legacy[2]], fresh]);

      // A legacy device can still be changed in its other fields; its metadata cannot be written back as it is.
      const [old] = pages[0]!;
      const renamed = await client.updateDevice({
        device: create(DeviceSchema, { ...old!, name: 'legacy-0-renamed' }),
        updateMask: { paths: ['name'] },
      });
      expect(renamed.device?.name).toBe('legacy-0-renamed');
      expect((await errorOf(client.updateDevice({ device: old!, updateMask: { paths: ['metadata'] } }))).code).toBe('InvalidArgument');
    },
  );

  it('pages tokens by count and by bytes, newest first', async () => {
    // About 9 KB each: eight of them are more than one response may carry.
    const ids: string[] = [];
    for (let i = 0; i < 8; i++) {
      const sites = Array.from({ length: 120 }, (_, s) => `token-site-${i}-${s}-${'x'.repeat(50)}`);
      ids.push((await over.protobuf.tokens.createToken({ name: `wide-${i}`, scopes: ['readings:read'], sites })).token!.id);
    }
    const newestFirst = [...ids].reverse();
    for (const encoding of ['protobuf', 'json'] as const) {
      const pages = await allPages(TokenInfoSchema, encoding, async (pageToken) => {
        const page = await over[encoding].tokens.listTokens({ pageToken });
        return { rows: page.tokens, nextPageToken: page.nextPageToken };
      });
      expect(pages.length).toBeGreaterThan(1);
      expect(
        pages
          .flat()
          .map((x) => x.id)
          .filter((id) => ids.includes(id)),
      ).toEqual(newestFirst);
    }
    // By count: pages of two, over the same tokens in the same order.
    const byTwo = await allPages(TokenInfoSchema, 'protobuf', async (pageToken) => {
      const page = await over.protobuf.tokens.listTokens({ pageSize: 2, pageToken });
      expect(page.tokens.length).toBeLessThanOrEqual(2);
      return { rows: page.tokens, nextPageToken: page.nextPageToken };
    });
    expect(
      byTwo
        .flat()
        .map((x) => x.id)
        .filter((id) => ids.includes(id)),
    ).toEqual(newestFirst);
    // A token made for one listing is refused by another.
    const first = await over.protobuf.tokens.listTokens({ pageSize: 1 });
    expect(
      (await errorOf(over.protobuf.tokens.listTokens({ pageSize: 1, includeRevoked: true, pageToken: first.nextPageToken }))).code,
    ).toBe('InvalidArgument');
  });

  it('pages market data by bytes', async () => {
    const times = Array.from({ length: 6 }, (_, i) => Date.UTC(2026, 1, 1, 0, 30 * i));
    // 15 KB of metadata each, within the bound; published two at a time to keep each request small.
    for (let i = 0; i < times.length; i += 2) {
      const points = times.slice(i, i + 2).map((ms) => ({
        time: timestampFromMs(ms),
        type: 'wholesale_price',
        value: 50,
        metadata: { origin: 'feed', notes: 'n'.repeat(15_000) },
      }));
      await over.protobuf.dispatch.publishMarketData({ points });
    }
    for (const encoding of ['protobuf', 'json'] as const) {
      const pages = await allPages(MarketDataPointSchema, encoding, async (pageToken) => {
        const page = await over[encoding].dispatch.listMarketData({
          types: ['wholesale_price'],
          startTime: timestampFromMs(times[0]!),
          endTime: timestampFromMs(times.at(-1)! + 1),
          pageToken,
        });
        return { rows: page.points, nextPageToken: page.nextPageToken };
      });
      expect(pages.flat().map((p) => Number(p.time!.seconds) * 1000)).toEqual(times);
    }
  });

  it('pages dispatch instructions by bytes', async () => {
    const site = 'instructions';
    await registerBattery(over.protobuf.registry, site, 'b1', { host: '127.0.0.1', port: 1, unitId: 1 });
    // Tomorrow, so nothing is driven: 200 one-minute instructions of about 400 bytes each.
    const start = Date.now() + 86_400_000;
    for (let r = 0; r < 4; r++) {
      const intervals = Array.from({ length: 50 }, (_, i) => ({
        startTime: timestampFromMs(start + (r * 50 + i) * 60_000),
        endTime: timestampFromMs(start + (r * 50 + i + 1) * 60_000),
        command: { case: 'powerKw' as const, value: 10 },
      }));
      await over.protobuf.dispatch.submitDispatch({
        requestId: `batch-${r}-${'r'.repeat(90)}`,
        target: { case: 'site', value: site },
        intervals,
      });
    }
    for (const encoding of ['protobuf', 'json'] as const) {
      const pages = await allPages(DispatchInstructionSchema, encoding, async (pageToken) => {
        const page = await over[encoding].dispatch.listDispatches({ site, pageSize: 1000, pageToken });
        return { rows: page.instructions, nextPageToken: page.nextPageToken };
      });
      expect(pages.length).toBeGreaterThan(1);
      const ids = pages.flat().map((i) => i.id);
      expect(ids.length).toBe(200);
      expect(new Set(ids).size).toBe(200);
    }
  });

  it('pages meter readings by the bytes of the encoding asked for', async () => {
    const meter = await registerDevice(t.server.database, 'meter');
    const columns = METER_QUANTITIES.map((q) => q.column);
    // 80 readings with every quantity: about 15 KB in protobuf, about 90 KB in JSON.
    const startMs = Date.UTC(2025, 0, 1);
    await t.server.database.withSession((s) =>
      s.query(
        `insert into flux.mg_meter_readings ("time", device_id, ${columns.join(', ')})
         select to_timestamp(${startMs / 1000} + g * 60), $1::uuid, ${columns.map(() => 'g + 0.123456789').join(', ')}
         from generate_series(0, 79) g`,
        [meter],
      ),
    );
    const range = { startTime: timestampFromMs(startMs), endTime: timestampFromMs(startMs + 80 * 60_000) };
    const counts: Record<Encoding, number> = { protobuf: 0, json: 0 };
    for (const encoding of ['protobuf', 'json'] as const) {
      const pages = await allPages(MeterReadingSchema, encoding, async (pageToken) => {
        const page = await over[encoding].readings.listMeterReadings({ deviceIds: [meter], range, pageSize: 10_000, pageToken });
        return { rows: page.meterReadings, nextPageToken: page.nextPageToken };
      });
      expect(pages.flat().map((r) => Number(r.time!.seconds))).toEqual(Array.from({ length: 80 }, (_, g) => startMs / 1000 + g * 60));
      counts[encoding] = pages.length;
    }
    // JSON takes several times the bytes, so it takes more pages.
    expect(counts.json).toBeGreaterThan(counts.protobuf);
  });

  it('still refuses a page size beyond the maximum', async () => {
    const err = await errorOf(over.protobuf.tokens.listTokens({ pageSize: 1001 }));
    expect(err).toMatchObject({ code: Code[Code.InvalidArgument], message: expect.stringContaining('page_size') });
  });
});
