import { create } from '@bufbuild/protobuf';
import { timestampFromMs, timestampMs } from '@bufbuild/protobuf/wkt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MeterReadingSchema, ReadingKind, type MeterReading } from '../../gen/powerplane/v1/telemetry_pb.ts';
import { errorOf } from '../../test/support/api.ts';
import { createTestDatabase, ENGINES, type TestDatabase } from '../../test/support/databases.ts';
import { serveInMemory, type InMemoryApi } from '../../test/support/services.ts';
import { batch, bessReading, datumReading, meterReading, recentMinute, registerDevice } from '../../test/telemetry/helpers.ts';
import { UNRESTRICTED, type Principal } from '../rpc/principal.ts';
import type { Database } from '../storage/database.ts';
import { METER_QUANTITIES } from '../storage/reading-columns.ts';
import { METER_FIELDS, meterValues } from './telemetry.service.ts';

describe('meterValues', () => {
  it('reads every quantity in METER_FIELDS order, undefined when absent', () => {
    expect(METER_FIELDS.length).toBe(METER_QUANTITIES.length);
    const init: Record<string, number> = {};
    METER_FIELDS.forEach((f, i) => (init[f] = i + 0.5));
    expect(meterValues(create(MeterReadingSchema, init))).toEqual(METER_FIELDS.map((_, i) => i + 0.5));
    expect(meterValues(create(MeterReadingSchema, {}))).toEqual(METER_FIELDS.map(() => undefined));
  });
});

/**
 * WriteReadings through `createRouterTransport`: the real service, audit and error
 * interceptors over a real database, no HTTP. Binary requests take the wire view (the
 * batch decoded by hand, `wire-decode.ts`) and JSON requests the generated schema, so each
 * case runs in both. Streams, flow control and acks over HTTP/2 are the subject of
 * `test/telemetry/`.
 */
describe.each(ENGINES)('WriteReadings in memory on %s', (engine) => {
  let testDb: TestDatabase;
  let database: Database;
  let api: InMemoryApi;
  let meterId: string;
  let bessId: string;
  let inactiveId: string;
  /**
   * Each case writes at its own minute, so no case sees another's rows as duplicates: minutes
   * counted back from one instant taken once, as a clock crossing a minute between two cases
   * would otherwise give both the same one.
   */
  const firstMinute = recentMinute(60);
  let minute = 0;
  const nextMinute = () => firstMinute - 60_000 * minute++;

  beforeAll(async () => {
    testDb = await createTestDatabase(engine);
    database = await testDb.open();
    api = serveInMemory(database, testDb.config);
    meterId = await registerDevice(database, 'meter');
    bessId = await registerDevice(database, 'bess');
    inactiveId = await registerDevice(database, 'meter', { active: false });
  });
  afterAll(async () => {
    await api?.close();
    await testDb?.drop();
  });

  const formats = ['binary', 'json'] as const;
  const client = (format: (typeof formats)[number], principal: Principal = UNRESTRICTED) => api.as(principal, { json: format === 'json' });
  const around = (at: number) => ({ startTime: timestampFromMs(at - 1_000), endTime: timestampFromMs(at + 60_000) });

  it.each(formats)('stores a batch and acknowledges it with its sequence, readable at once (%s)', async (format) => {
    const at = nextMinute();
    const c = client(format);
    const { ack } = await c.telemetry.writeReadings({
      batch: batch(7, {
        meter: [meterReading(meterId, at, { powerTotalActiveKw: -3.5 }), meterReading(meterId, at + 1_000)],
        bess: [bessReading(bessId, at)],
      }),
    });
    expect(ack).toEqual(
      expect.objectContaining({ sequence: 7n, storedCount: 3, duplicateCount: 0, conflictCount: 0, rejectedCount: 0, rejections: [] }),
    );
    const meters = await c.readings.listMeterReadings({ deviceIds: [meterId], range: around(at) });
    expect(meters.meterReadings.map((m) => [timestampMs(m.time!), m.frequencyHz, m.powerTotalActiveKw, m.energyImportedActiveKwh])).toEqual(
      [
        [at, 50, -3.5, 1000],
        [at + 1_000, 50, 12.5, 1000],
      ],
    );
    const bess = await c.readings.listBessReadings({ deviceIds: [bessId], range: around(at) });
    expect(
      bess.bessReadings.map((b) => [timestampMs(b.time!), b.soePercent, b.targetPowerKw, b.availableInverterBlocks, b.commandSource]),
    ).toEqual([[at, 55, -100, 4, 2]]);
  });

  it.each(formats)(
    'counts an identical re-send as duplicates and a changed one as conflicts, keeping the first values (%s)',
    async (format) => {
      const at = nextMinute();
      const c = client(format);
      const sent = batch(1, {
        meter: [meterReading(meterId, at, { powerTotalActiveKw: 558.49 })],
        bess: [bessReading(bessId, at, { soePercent: 33.3 })],
      });
      expect((await c.telemetry.writeReadings({ batch: sent })).ack).toMatchObject({ storedCount: 2, duplicateCount: 0 });
      expect((await c.telemetry.writeReadings({ batch: sent })).ack).toMatchObject({
        sequence: 1n,
        storedCount: 0,
        duplicateCount: 2,
        conflictCount: 0,
      });
      const changed = batch(2, {
        meter: [meterReading(meterId, at, { powerTotalActiveKw: 1 })],
        bess: [bessReading(bessId, at, { soePercent: 34 })],
      });
      expect((await c.telemetry.writeReadings({ batch: changed })).ack).toMatchObject({
        storedCount: 0,
        duplicateCount: 0,
        conflictCount: 2,
      });
      const stored = await c.readings.listMeterReadings({ deviceIds: [meterId], range: around(at) });
      // A float in JSON is its shortest decimal, in binary the float32 itself.
      expect(stored.meterReadings.map((m) => Math.fround(m.powerTotalActiveKw!))).toEqual([Math.fround(558.49)]);
      // A key repeated inside one batch: a duplicate when identical, a conflict when not.
      const next = nextMinute();
      const repeated = batch(3, {
        meter: [meterReading(meterId, next), meterReading(meterId, next), meterReading(meterId, next, { frequencyHz: 49.9 })],
      });
      expect((await c.telemetry.writeReadings({ batch: repeated })).ack).toMatchObject({
        storedCount: 1,
        duplicateCount: 1,
        conflictCount: 1,
      });
    },
  );

  // [case, the bad reading at `at`, field, value ('' for any), reason]
  const badMeters: Array<[string, (at: number) => MeterReading, string, string, string]> = [
    [
      'an unknown device',
      (at) => meterReading('9b2a4a55-0000-4000-8000-000000000000', at),
      'device_id',
      '9b2a4a55-0000-4000-8000-000000000000',
      'names no registered device',
    ],
    ['a malformed device id', (at) => meterReading('meter-7', at), 'device_id', 'meter-7', 'must be a UUID'],
    ['an inactive device', (at) => meterReading(inactiveId, at), 'device_id', '', 'names an inactive device'],
    ['a device of the wrong type', (at) => meterReading(bessId, at), 'device_id', '', 'names a bess device, not a meter'],
    ['NaN', (at) => meterReading(meterId, at, { frequencyHz: Number.NaN }), 'frequency_hz', 'NaN', 'must be a finite number'],
    [
      '-Infinity',
      (at) => meterReading(meterId, at, { energyExportedActiveKwh: -Infinity }),
      'energy_exported_active_kwh',
      '-Infinity',
      'must be a finite number',
    ],
    ['a time far in the future', () => meterReading(meterId, Date.now() + 10 * 60_000), 'time', '', 'ahead of the server clock'],
    [
      'a time older than the backfill window',
      () => meterReading(meterId, Date.now() - 8 * 86_400_000),
      'time',
      '',
      'older than the backfill window of 7 days',
    ],
    ['a missing time', () => ({ ...meterReading(meterId, 0), time: undefined }), 'time', '', 'is required'],
  ];

  it.each(formats.flatMap((format) => badMeters.map(([name, ...rest]) => [name, format, ...rest] as const)))(
    'rejects a meter reading with %s (%s), naming field, value and reason, and stores the good one',
    async (_name, format, make, field, value, reason) => {
      const at = nextMinute();
      const c = client(format);
      const { ack } = await c.telemetry.writeReadings({ batch: batch(3, { meter: [meterReading(meterId, at), make(at + 1_000)] }) });
      expect(ack).toMatchObject({ sequence: 3n, storedCount: 1, rejectedCount: 1 });
      const rejection = ack!.rejections[0]!;
      expect(rejection).toMatchObject({ kind: ReadingKind.METER, index: 1, field });
      expect(rejection.reason).toContain(reason);
      if (value) expect(rejection.value).toBe(value);
      expect(
        (await c.readings.listMeterReadings({ deviceIds: [meterId], range: around(at) })).meterReadings.map((m) => timestampMs(m.time!)),
      ).toEqual([at]);
    },
  );

  it.each([
    ['soe above 100', { soePercent: 100.5 }, 'soe_percent', '100.5', 'must be between 0 and 100'],
    ['target power Infinity', { targetPowerKw: Infinity }, 'target_power_kw', 'Infinity', 'must be a finite number'],
    ['too many inverter blocks', { availableInverterBlocks: 40_000 }, 'available_inverter_blocks', '40000', 'must be from 0 to 32767'],
    ['an unknown command source', { commandSource: 9 }, 'command_source', '9', 'is not a known CommandSource'],
  ] as const)('rejects a battery reading with %s in either format and stores the good one', async (_name, fields, field, value, reason) => {
    for (const format of formats) {
      const at = nextMinute();
      const { ack } = await client(format).telemetry.writeReadings({
        batch: batch(4, { bess: [bessReading(bessId, at, fields as never), bessReading(bessId, at + 1_000)] }),
      });
      expect(ack).toMatchObject({ storedCount: 1, rejectedCount: 1 });
      expect(ack!.rejections[0]).toMatchObject({ kind: ReadingKind.BESS, index: 0, field, value, reason, deviceId: bessId });
    }
  });

  it.each(formats)(
    'rejects only the datum readings whose text or time cannot be stored, and stores the rest of the batch (%s)',
    async (format) => {
      const at = nextMinute();
      const c = client(format);
      const source = `/text/${format}`;
      // JSON cannot hold a time beyond year 9999, so only a binary client can send one.
      const beyondAnyDate =
        format === 'binary'
          ? [datumReading(meterId, source, at, { time: { seconds: 2n ** 62n, nanos: 0 } as never, instantaneous: { t: 1 } })]
          : [];
      const { ack } = await c.telemetry.writeReadings({
        batch: batch(9, {
          meter: [meterReading(meterId, at)],
          datum: [
            datumReading(meterId, source, at, { instantaneous: { ['t\u0000']: 1 } }),
            datumReading(meterId, source, at, { status: { alarm: 'hot\u0000' } }),
            datumReading(meterId, source, at, {}),
            ...beyondAnyDate,
            datumReading(meterId, source, at, { instantaneous: { t: 2 }, status: { alarm: 'ok' } }),
          ],
        }),
      });
      expect(ack).toMatchObject({ storedCount: 2, rejectedCount: 3 + beyondAnyDate.length });
      expect(ack!.rejections.map((r) => [r.kind, r.index, r.field])).toEqual([
        [ReadingKind.DATUM, 0, 'instantaneous'],
        [ReadingKind.DATUM, 1, 'status.alarm'],
        [ReadingKind.DATUM, 2, 'instantaneous'],
        ...beyondAnyDate.map(() => [ReadingKind.DATUM, 3, 'time']),
      ]);
      const stored = await c.readings.listDatumReadings({ deviceId: meterId, sourceId: source, range: around(at) });
      expect(stored.datumReadings.map((d) => [d.instantaneous, d.status])).toEqual([[{ t: 2 }, { alarm: 'ok' }]]);
    },
  );

  it.each(formats)("stores a caller's own site's readings and rejects another site's, naming the device (%s)", async (format) => {
    const other = await registerDevice(database, 'meter', { site: `site-other-${format}` });
    const at = nextMinute();
    const agent: Principal = {
      id: `token:agent-${format}`,
      kind: 'token',
      scopes: new Set(['telemetry:write']),
      sites: new Set(['site-t']),
    };
    const { ack } = await client(format, agent).telemetry.writeReadings({
      batch: batch(5, { meter: [meterReading(other, at), meterReading(meterId, at)] }),
    });
    expect(ack).toMatchObject({ storedCount: 1, rejectedCount: 1 });
    expect(ack!.rejections[0]).toMatchObject({
      index: 0,
      deviceId: other,
      field: 'device_id',
      value: other,
      reason: 'names no registered device at the sites this caller may write',
    });
    expect(
      (await client(format).readings.listMeterReadings({ deviceIds: [other, meterId], range: around(at) })).meterReadings.map(
        (m) => m.deviceId,
      ),
    ).toEqual([meterId]);
  });

  it.each(formats)(
    'refuses a request without a batch, or a batch over the configured size, as a whole with INVALID_ARGUMENT (%s)',
    async (format) => {
      const c = client(format);
      expect(await errorOf(c.telemetry.writeReadings({}))).toEqual({ code: 'InvalidArgument', message: 'batch is required (got nothing)' });
      const at = nextMinute();
      const readings = Array.from({ length: 5_001 }, (_, i) => meterReading(meterId, at - i * 10));
      expect(await errorOf(c.telemetry.writeReadings({ batch: batch(5, { meter: readings }) }))).toEqual({
        code: 'InvalidArgument',
        message: 'batch must hold at most 5000 readings (got 5001)',
      });
      expect(
        (
          await c.readings.listMeterReadings({
            deviceIds: [meterId],
            range: { startTime: timestampFromMs(at - 60_000), endTime: timestampFromMs(at + 1) },
          })
        ).meterReadings,
      ).toEqual([]);
    },
  );
});
