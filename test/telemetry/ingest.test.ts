import { create, toBinary, type MessageInitShape } from '@bufbuild/protobuf';
import { TimestampSchema } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError } from '@connectrpc/connect';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ReadingBatchSchema, StreamReadingsRequestSchema, WriteReadingsRequestSchema } from '../../gen/powerplane/v1/telemetry_pb.ts';
import { toConfig } from '../../src/config.ts';
import { renameDatumSource } from '../../src/telemetry/datum.repository.ts';
import { createTelemetry } from '../../src/telemetry/telemetry.ts';
import { decodeReadingBatch } from '../../src/telemetry/wire-decode.ts';
import { errorOf } from '../support/api.ts';
import { ENGINES, silentLog } from '../support/databases.ts';
import { startTestServer, type TestServer } from '../support/server.ts';
import { batch, bessReading, clients, countRows, datumReading, meterReading, recentMinute, registerDevice } from './helpers.ts';

describe.each(ENGINES)('telemetry ingest on %s', (engine) => {
  let t: TestServer;
  let api: ReturnType<typeof clients>;
  let meterId: string;
  let bessId: string;

  beforeAll(async () => {
    t = await startTestServer(engine, {});
    api = clients(t.baseUrl);
    meterId = await registerDevice(t.server.database, 'meter');
    bessId = await registerDevice(t.server.database, 'bess');
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('stores a batch and acknowledges it with its sequence after the commit', async () => {
    const at = recentMinute(60);
    const { ack } = await api.telemetry.writeReadings({
      batch: batch(7, { meter: [meterReading(meterId, at), meterReading(meterId, at + 1_000)], bess: [bessReading(bessId, at)] }),
    });
    expect(ack).toMatchObject({ sequence: 7n, storedCount: 3, duplicateCount: 0, conflictCount: 0, rejectedCount: 0 });
    const rows = await t.server.database.withSession((s) =>
      s.query<{ soe: number; target_power: number; command_source: number; available_inverter_blocks: number }>(
        `select soe, target_power, command_source, available_inverter_blocks from flux.mg_bess_readings where device_id = $1`,
        [bessId],
      ),
    );
    expect(rows).toEqual([{ soe: 55, target_power: -100, command_source: 2, available_inverter_blocks: 4 }]);
  });

  it('counts an identical re-send as duplicates and stores no second row', async () => {
    const at = recentMinute(70);
    const sent = batch(1, {
      meter: [meterReading(meterId, at, { powerTotalActiveKw: 558.49 })],
      bess: [bessReading(bessId, at, { soePercent: 33.3 })],
    });
    const first = await api.telemetry.writeReadings({ batch: sent });
    const again = await api.telemetry.writeReadings({ batch: sent });
    expect(first.ack).toMatchObject({ storedCount: 2, duplicateCount: 0 });
    expect(again.ack).toMatchObject({ storedCount: 0, duplicateCount: 2, conflictCount: 0 });
    const n = await t.server.database.withSession((s) =>
      s.query<{ n: number }>(`select count(*)::int as n from flux.mg_meter_readings where device_id = $1 and "time" = $2`, [
        meterId,
        new Date(at),
      ]),
    );
    expect(n[0]!.n).toBe(1);
  });

  it('counts a repeated key inside one batch as a duplicate when identical and a conflict when not', async () => {
    const at = recentMinute(75);
    const { ack } = await api.telemetry.writeReadings({
      batch: batch(2, { meter: [meterReading(meterId, at), meterReading(meterId, at), meterReading(meterId, at, { frequencyHz: 49.9 })] }),
    });
    expect(ack).toMatchObject({ storedCount: 1, duplicateCount: 1, conflictCount: 1 });
  });

  it('refuses a conflicting re-send, keeps the stored values and exports the conflict metric', async () => {
    const at = recentMinute(80);
    await api.telemetry.writeReadings({ batch: batch(1, { meter: [meterReading(meterId, at, { frequencyHz: 50.01 })] }) });
    const { ack } = await api.telemetry.writeReadings({
      batch: batch(2, { meter: [meterReading(meterId, at, { frequencyHz: 49.99 }), meterReading(meterId, at + 1_000)] }),
    });
    expect(ack).toMatchObject({ storedCount: 1, duplicateCount: 0, conflictCount: 1, rejectedCount: 0 });
    const rows = await t.server.database.withSession((s) =>
      s.query<{ frequency: number }>(`select frequency from flux.mg_meter_readings where device_id = $1 and "time" = $2`, [
        meterId,
        new Date(at),
      ]),
    );
    expect(rows.map((r) => Math.fround(r.frequency))).toEqual([Math.fround(50.01)]);
    const metrics = await (await fetch(`${t.baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/powerplane_telemetry_conflicts_total\{kind="meter"\} [1-9]/);
  });

  it.each([
    [
      'an unknown device',
      (ids: Ids, at: number) => meterReading('9b2a4a55-0000-4000-8000-000000000000', at),
      'device_id',
      '9b2a4a55-0000-4000-8000-000000000000',
      'names no registered device',
    ],
    ['a malformed device id', (ids: Ids, at: number) => meterReading('meter-7', at), 'device_id', 'meter-7', 'must be a UUID'],
    ['an inactive device', (ids: Ids, at: number) => meterReading(ids.inactive, at), 'device_id', '', 'names an inactive device'],
    [
      'a device of the wrong type',
      (ids: Ids, at: number) => meterReading(ids.bess, at),
      'device_id',
      '',
      'names a bess device, not a meter',
    ],
    [
      'NaN',
      (ids: Ids, at: number) => meterReading(ids.meter, at, { frequencyHz: Number.NaN }),
      'frequency_hz',
      'NaN',
      'must be a finite number',
    ],
    [
      '+Infinity',
      (ids: Ids, at: number) => meterReading(ids.meter, at, { powerTotalActiveKw: Infinity }),
      'power_total_active_kw',
      'Infinity',
      'must be a finite number',
    ],
    [
      '-Infinity',
      (ids: Ids, at: number) => meterReading(ids.meter, at, { energyExportedActiveKwh: -Infinity }),
      'energy_exported_active_kwh',
      '-Infinity',
      'must be a finite number',
    ],
    ['a time far in the future', (ids: Ids) => meterReading(ids.meter, Date.now() + 10 * 60_000), 'time', '', 'ahead of the server clock'],
    [
      'a time older than the backfill window',
      (ids: Ids) => meterReading(ids.meter, Date.now() - 8 * 86_400_000),
      'time',
      '',
      'older than the backfill window of 7 days',
    ],
    ['a missing time', (ids: Ids) => ({ ...meterReading(ids.meter, 0), time: undefined }), 'time', '', 'is required'],
  ])(
    'rejects a meter reading with %s, naming field, value and reason, and stores the good one',
    async (_name, make, field, value, reason) => {
      const ids = await idsOf();
      const at = recentMinute(90) + nextSlot() * 1_000;
      const good = meterReading(ids.meter, at - 600_000);
      const { ack } = await api.telemetry.writeReadings({ batch: batch(3, { meter: [good, make(ids, at)] }) });
      expect(ack).toMatchObject({ storedCount: 1, rejectedCount: 1 });
      const rejection = ack!.rejections[0]!;
      expect(rejection).toMatchObject({ index: 1, field });
      expect(rejection.reason).toContain(reason);
      if (value) expect(rejection.value).toBe(value);
      else expect(rejection.value).not.toBe(undefined);
      expect(await countRowsAt(ids.meter, at - 600_000)).toBe(1);
    },
  );

  it.each([
    ['soe below 0', { soePercent: -0.5 }, 'soe_percent', '-0.5', 'must be between 0 and 100'],
    ['soe above 100', { soePercent: 100.5 }, 'soe_percent', '100.5', 'must be between 0 and 100'],
    ['soe NaN', { soePercent: Number.NaN }, 'soe_percent', 'NaN', 'must be a finite number'],
    ['target power Infinity', { targetPowerKw: Infinity }, 'target_power_kw', 'Infinity', 'must be a finite number'],
    ['too many inverter blocks', { availableInverterBlocks: 40_000 }, 'available_inverter_blocks', '40000', 'must be from 0 to 32767'],
    ['an unknown command source', { commandSource: 9 }, 'command_source', '9', 'is not a known CommandSource'],
  ])('rejects a battery reading with %s and stores the good one', async (_name, fields, field, value, reason) => {
    const ids = await idsOf();
    const at = recentMinute(100) + nextSlot() * 1_000;
    const { ack } = await api.telemetry.writeReadings({
      batch: batch(4, { bess: [bessReading(ids.bess, at, fields as never), bessReading(ids.bess, at - 600_000)] }),
    });
    expect(ack).toMatchObject({ storedCount: 1, rejectedCount: 1 });
    expect(ack!.rejections[0]).toMatchObject({ index: 0, field, value, reason, deviceId: ids.bess });
  });

  it('refuses a batch over the configured size as a whole with INVALID_ARGUMENT', async () => {
    const at = recentMinute(120);
    const readings = Array.from({ length: 5_001 }, (_, i) => meterReading(meterId, at - i * 10));
    const err = await api.telemetry.writeReadings({ batch: batch(5, { meter: readings }) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.InvalidArgument);
    expect((err as ConnectError).rawMessage).toBe('batch must hold at most 5000 readings (got 5001)');
  });

  it('stores datum readings as streams, extends names, answers maps and treats re-sends idempotently', async () => {
    const at = recentMinute(130);
    const first = datumReading(bessId, '/bess/1/cells', at, {
      instantaneous: { cell_temp_max_c: 31.5, cell_temp_min_c: 24.25 },
      status: { alarm: 'none' },
    });
    const second = datumReading(bessId, '/bess/1/cells', at + 60_000, {
      instantaneous: { cell_temp_max_c: 32 },
      accumulating: { cycle_count: 1204 },
      status: { alarm: 'fan' },
    });
    const { ack } = await api.telemetry.writeReadings({ batch: batch(6, { datum: [first, second] }) });
    expect(ack).toMatchObject({ storedCount: 2, rejectedCount: 0 });
    const again = await api.telemetry.writeReadings({
      batch: batch(7, { datum: [first, datumReading(bessId, '/bess/1/cells', at + 60_000, { instantaneous: { cell_temp_max_c: 33 } })] }),
    });
    expect(again.ack).toMatchObject({ storedCount: 0, duplicateCount: 1, conflictCount: 1 });
    const streams = await t.server.database.withSession((s) =>
      s.query(`select names_i, names_a, names_s from powerplane.datum_streams where device_id = $1`, [bessId]),
    );
    expect(streams).toEqual([{ names_i: ['cell_temp_max_c', 'cell_temp_min_c'], names_a: ['cycle_count'], names_s: ['alarm'] }]);
    const listed = await api.readings.listDatumReadings({
      deviceId: bessId,
      sourceId: '/bess/1/cells',
      range: { startTime: { seconds: BigInt(at / 1000 - 1) }, endTime: { seconds: BigInt(at / 1000 + 3600) } },
    });
    expect(listed.datumReadings.map((d) => ({ i: d.instantaneous, a: d.accumulating, s: d.status }))).toEqual([
      { i: { cell_temp_max_c: 31.5, cell_temp_min_c: 24.25 }, a: {}, s: { alarm: 'none' } },
      { i: { cell_temp_max_c: 32 }, a: { cycle_count: 1204 }, s: { alarm: 'fan' } },
    ]);

    const renamed = await t.server.database.withSession((s) =>
      renameDatumSource({ ...s, staged: false }, bessId, '/bess/1/cells', '/bess/one/cells'),
    );
    expect(renamed).toBe(true);
    const moved = await api.readings.listDatumReadings({
      deviceId: bessId,
      sourceId: '/bess/one/cells',
      range: { startTime: { seconds: BigInt(at / 1000 - 1) }, endTime: { seconds: BigInt(at / 1000 + 3600) } },
    });
    expect(moved.datumReadings).toHaveLength(2);
  });

  it('rejects datum readings without properties, with bad names or non-finite numbers', async () => {
    const at = recentMinute(140);
    const { ack } = await api.telemetry.writeReadings({
      batch: batch(8, {
        datum: [
          datumReading(meterId, '/meter/aux', at, {}),
          datumReading(meterId, '/meter/aux', at, { instantaneous: { ['x'.repeat(65)]: 1 } }),
          datumReading(meterId, '/meter/aux', at, { instantaneous: { t: Number.NaN } }),
          datumReading(meterId, '', at, { instantaneous: { t: 1 } }),
          datumReading(meterId, '/meter/aux', at, { instantaneous: { t: 1 } }),
        ],
      }),
    });
    expect(ack).toMatchObject({ storedCount: 1, rejectedCount: 4 });
    expect(ack!.rejections.map((r) => [r.index, r.field])).toEqual([
      [0, 'instantaneous'],
      [1, 'instantaneous'],
      [2, 'instantaneous.t'],
      [3, 'source_id'],
    ]);
  });

  it('rejects only the readings whose text or time PostgreSQL cannot store and stores the rest of the batch', async () => {
    const at = recentMinute(145);
    const { ack } = await api.telemetry.writeReadings({
      batch: batch(9, {
        meter: [meterReading(meterId, at)],
        datum: [
          datumReading(meterId, '/meter/nul\u0000', at, { instantaneous: { t: 1 } }),
          datumReading(meterId, '/meter/text', at, { instantaneous: { 't\u0000': 1 } }),
          datumReading(meterId, '/meter/text', at, { status: { alarm: 'hot\u0000' } }),
          datumReading(meterId, '/meter/text', at, { time: create(TimestampSchema, { seconds: 2n ** 62n }), instantaneous: { t: 1 } }),
          datumReading(meterId, '/meter/text', at, { instantaneous: { t: 2 }, status: { alarm: 'ok' } }),
        ],
      }),
    });
    expect(ack).toMatchObject({ storedCount: 2, rejectedCount: 4 });
    expect(ack!.rejections.map((r) => [r.index, r.field, r.value, r.reason])).toEqual([
      [0, 'source_id', '/meter/nul\u0000', 'must not contain a NUL character'],
      [1, 'instantaneous', 't\u0000', 'has a property name that must not contain a NUL character'],
      [2, 'status.alarm', 'hot\u0000', 'must not contain a NUL character'],
      [3, 'time', `${2n ** 62n}s 0ns`, 'is out of range'],
    ]);
    const stored = await api.readings.listDatumReadings({
      deviceId: meterId,
      sourceId: '/meter/text',
      range: { startTime: { seconds: BigInt(at / 1000 - 1) }, endTime: { seconds: BigInt(at / 1000 + 1) } },
    });
    expect(stored.datumReadings.map((d) => [d.instantaneous, d.status])).toEqual([[{ t: 2 }, { alarm: 'ok' }]]);
    expect(await countRows(t.server.database, 'flux.mg_meter_readings', meterId)).toBeGreaterThan(0);
  });

  it('ends a stream whose hello or relayed setpoint outcome holds a NUL with INVALID_ARGUMENT naming the field', async () => {
    const say = async (message: MessageInitShape<typeof StreamReadingsRequestSchema>['message']) => {
      const requests = (async function* () {
        yield create(StreamReadingsRequestSchema, { message });
      })();
      for await (const _ of api.telemetry.streamReadings(requests)) break;
    };
    expect(await errorOf(say({ case: 'hello', value: { site: 'site-t\u0000' } }))).toMatchObject({
      code: 'InvalidArgument',
      message: expect.stringMatching(/^hello\.site must not contain a NUL character/),
    });
    expect(await errorOf(say({ case: 'setpointOutcome', value: { setpointId: 'x', reason: 'fault\u0000' } }))).toMatchObject({
      code: 'InvalidArgument',
      message: expect.stringMatching(/^setpoint_outcome\.reason must not contain a NUL character/),
    });
  });

  it('rejects readings of devices at sites the caller may not write, naming the device and its site, and stores the others', async () => {
    const otherMeter = await registerDevice(t.server.database, 'meter', { site: 'site-other' });
    const otherBess = await registerDevice(t.server.database, 'bess', { site: 'site-other' });
    const at = recentMinute(150);
    const sent = batch(9, {
      meter: [meterReading(meterId, at), meterReading(otherMeter, at)],
      bess: [bessReading(otherBess, at), bessReading(bessId, at)],
      datum: [datumReading(otherMeter, '/aux', at, { instantaneous: { t: 1 } })],
    });
    // The domain as the service calls it, with the sites of a caller bound to site-t.
    const telemetry = createTelemetry({
      config: { ...toConfig({ listen: '127.0.0.1:0', auth: 'off' }), database: t.testDatabase.config },
      database: t.server.database,
      metricsRegistry: new Registry(),
      log: silentLog,
    });
    try {
      const outcome = await telemetry.ingest.writeBatch(decodeReadingBatch(toBinary(ReadingBatchSchema, sent)), {
        sites: new Set(['site-t']),
      });
      const reason = (_id: string) => 'names no registered device at the sites this caller may write';
      expect(outcome).toMatchObject({ sequence: 9n, stored: 2, duplicates: 0, conflicts: 0 });
      expect(outcome.rejections).toEqual([
        { kind: 'meter', index: 1, deviceId: otherMeter, field: 'device_id', value: otherMeter, reason: reason(otherMeter) },
        { kind: 'bess', index: 0, deviceId: otherBess, field: 'device_id', value: otherBess, reason: reason(otherBess) },
        { kind: 'datum', index: 0, deviceId: otherMeter, field: 'device_id', value: otherMeter, reason: reason(otherMeter) },
      ]);
      expect(await countRows(t.server.database, 'flux.mg_meter_readings', otherMeter)).toBe(0);
      expect(await countRows(t.server.database, 'flux.mg_bess_readings', otherBess)).toBe(0);
      expect(await countRowsAt(meterId, at)).toBe(1);
      // Without a restriction (the default) the same readings of the other site are stored.
      const unrestricted = await telemetry.ingest.writeBatch(decodeReadingBatch(toBinary(ReadingBatchSchema, sent)));
      expect(unrestricted).toMatchObject({ stored: 3, duplicates: 2, rejections: [] });
      expect(await countRows(t.server.database, 'flux.mg_meter_readings', otherMeter)).toBe(1);
    } finally {
      await telemetry.close();
    }
  });

  it('takes a batch as Connect JSON over HTTP/1.1 too', async () => {
    const at = recentMinute(160);
    const res = await fetch(`${t.baseUrl}/powerplane.v1.TelemetryService/WriteReadings`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        batch: {
          sequence: '12',
          meterReadings: [
            { deviceId: meterId, time: new Date(at).toISOString(), frequencyHz: 50.02, powerTotalActiveKw: 'NaN' },
            { deviceId: meterId, time: new Date(at + 1_000).toISOString(), frequencyHz: 49.98 },
          ],
        },
      }),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({
      ack: {
        sequence: '12',
        storedCount: 1,
        rejectedCount: 1,
        rejections: [{ kind: 'READING_KIND_METER', field: 'power_total_active_kw', value: 'NaN' }],
      },
    });
    const rows = await t.server.database.withSession((s) =>
      s.query<{ frequency: number }>(`select frequency from flux.mg_meter_readings where device_id = $1 and "time" = $2`, [
        meterId,
        new Date(at + 1_000),
      ]),
    );
    expect(rows.map((r) => Math.fround(r.frequency))).toEqual([Math.fround(49.98)]);
  });

  it('refuses a batch whose bytes are not a ReadingBatch with INVALID_ARGUMENT naming the batch', async () => {
    // WriteReadingsRequest field 1 holding a meter reading (field 2) whose length runs past the batch.
    const body = Uint8Array.from([0x0a, 0x04, 0x12, 0x09, 0x0a, 0x01]);
    const res = await fetch(`${t.baseUrl}/powerplane.v1.TelemetryService/WriteReadings`, {
      method: 'POST',
      headers: { 'content-type': 'application/proto' },
      body,
    });
    expect(res.status).toBe(400);
    const error = (await res.json()) as { code: string; message: string };
    expect(error.code).toBe('invalid_argument');
    expect(error.message).toMatch(/^batch is not a valid ReadingBatch - a length of 9 at byte 2 runs past its message/);
    // The same request with a valid batch is taken, so it was the batch that was refused.
    const good = toBinary(WriteReadingsRequestSchema, create(WriteReadingsRequestSchema, { batch: batch(13, {}) }));
    const ok = await fetch(`${t.baseUrl}/powerplane.v1.TelemetryService/WriteReadings`, {
      method: 'POST',
      headers: { 'content-type': 'application/proto' },
      body: good,
    });
    expect(ok.status).toBe(200);
  });

  let slot = 0;
  const nextSlot = () => ++slot;
  type Ids = { meter: string; bess: string; inactive: string };
  let cachedIds: Ids | undefined;
  async function idsOf(): Promise<Ids> {
    cachedIds ??= { meter: meterId, bess: bessId, inactive: await registerDevice(t.server.database, 'meter', { active: false }) };
    return cachedIds;
  }
  async function countRowsAt(deviceId: string, at: number): Promise<number> {
    const rows = await t.server.database.withSession((s) =>
      s.query<{ n: number }>(`select count(*)::int as n from flux.mg_meter_readings where device_id = $1 and "time" = $2`, [
        deviceId,
        new Date(at),
      ]),
    );
    return rows[0]!.n;
  }
});
