import { describe, expect, it } from 'vitest';
import { toMeterColumns, type RawBatch, type RawReading } from './reading-batch.ts';
import { METER_QUANTITIES } from '../storage/reading-columns.ts';
import { validateBatch, type DeviceFacts, type WritableSites } from './validation.ts';

const METER = '11111111-1111-4111-8111-111111111111';
const BESS = '22222222-2222-4222-8222-222222222222';
const OFF = '33333333-3333-4333-8333-333333333333';
const NOW_S = 1_700_000_000n;
const devices = new Map<string, DeviceFacts>([
  [METER, { type: 'meter', active: true, site: 'site-a' }],
  [BESS, { type: 'bess', active: true, site: 'site-b' }],
  [OFF, { type: 'meter', active: false, site: 'site-a' }],
]);
const limits = { nowMicros: Number(NOW_S) * 1e6, backfillMicros: 7 * 86_400e6, aheadMicros: 300e6 };
const at = (offsetS: number) => ({ seconds: NOW_S + BigInt(offsetS), nanos: 0 });
const values = (patch: Record<number, number> = {}) => METER_QUANTITIES.map((_, i) => patch[i] ?? (i === 0 ? 50 : undefined));
const bess = (v: Partial<{ soe: number; targetPower: number; availableInverterBlocks: number; commandSource: number }>) => ({
  soe: undefined,
  targetPower: undefined,
  availableInverterBlocks: undefined,
  commandSource: 0,
  ...v,
});

type MeterInput = RawReading<readonly (number | undefined)[]>;

function one(batch: { meter?: MeterInput[]; bess?: RawBatch['bess']; datum?: RawBatch['datum'] }, sites?: WritableSites) {
  return validateBatch(
    { sequence: 1n, meter: toMeterColumns(batch.meter ?? []), bess: batch.bess ?? [], datum: batch.datum ?? [] },
    devices,
    limits,
    sites,
  );
}

describe('validateBatch', () => {
  it.each([
    ['a good reading', { deviceId: METER, time: at(0), values: values() }, undefined],
    ['an upper-case id', { deviceId: METER.toUpperCase(), time: at(0), values: values() }, undefined],
    ['a malformed id', { deviceId: 'x', time: at(0), values: values() }, ['device_id', 'x', 'must be a UUID']],
    ['an inactive meter', { deviceId: OFF, time: at(0), values: values() }, ['device_id', OFF, 'names an inactive device']],
    ['a battery id', { deviceId: BESS, time: at(0), values: values() }, ['device_id', BESS, 'names a bess device, not a meter']],
    ['NaN', { deviceId: METER, time: at(0), values: values({ 3: Number.NaN }) }, ['current_phase_b_a', 'NaN', 'must be a finite number']],
    [
      '-Infinity',
      { deviceId: METER, time: at(0), values: values({ 24: -Infinity }) },
      ['energy_exported_apparent_kvah', '-Infinity', 'must be a finite number'],
    ],
    [
      '6 minutes ahead',
      { deviceId: METER, time: at(360), values: values() },
      ['time', '2023-11-14T22:19:20.000Z', 'is more than 5 minutes ahead of the server clock'],
    ],
    ['5 minutes ahead exactly', { deviceId: METER, time: at(300), values: values() }, undefined],
    [
      '8 days old',
      { deviceId: METER, time: at(-8 * 86_400), values: values() },
      ['time', '2023-11-06T22:13:20.000Z', 'is older than the backfill window of 7 days'],
    ],
    ['no time', { deviceId: METER, time: undefined, values: values() }, ['time', '', 'is required']],
    [
      'bad nanos',
      { deviceId: METER, time: { seconds: NOW_S, nanos: 1e9 }, values: values() },
      ['time', '1700000000s 1000000000ns', 'must have nanos from 0 to 999999999'],
    ],
  ])('meter reading with %s', (_name, reading, expected) => {
    const out = one({ meter: [reading] });
    if (!expected) {
      expect(out.rejections).toEqual([]);
      expect(out.meter[0]!.deviceId).toBe(METER);
      expect(out.meter[0]!.values[1]).toBeNull();
    } else {
      expect(out.meter).toEqual([]);
      expect(out.rejections).toEqual([
        { kind: 'meter', index: 0, deviceId: reading.deviceId, field: expected[0], value: expected[1], reason: expected[2] },
      ]);
    }
  });

  const datum = (
    patch: Partial<{
      sourceId: string;
      instantaneous: Record<string, number>;
      accumulating: Record<string, number>;
      status: Record<string, string>;
    }>,
  ) => ({
    deviceId: BESS,
    sourceId: 'inverter/1',
    time: at(0),
    values: undefined,
    instantaneous: { watts: 1 },
    accumulating: {},
    status: {},
    ...patch,
  });
  it.each([
    ['a good datum', {}, undefined],
    ['a 200-character source id', { sourceId: 's'.repeat(200) }, undefined],
    ['an empty source id', { sourceId: '' }, ['source_id', '', 'must be 1 to 200 characters']],
    ['a 201-character source id', { sourceId: 's'.repeat(201) }, ['source_id', 's'.repeat(201), 'must be 1 to 200 characters']],
    ['a 64-character property name', { instantaneous: { ['n'.repeat(64)]: 1 } }, undefined],
    [
      'a 65-character property name',
      { accumulating: { ['n'.repeat(65)]: 1 } },
      ['accumulating', 'n'.repeat(65), 'has a property name that is not 1 to 64 characters'],
    ],
    ['an empty property name', { status: { '': 'ok' } }, ['status', '', 'has a property name that is not 1 to 64 characters']],
    ['an infinite value', { instantaneous: { watts: Infinity } }, ['instantaneous.watts', 'Infinity', 'must be a finite number']],
    [
      'no properties at all',
      { instantaneous: {} },
      ['instantaneous', '', 'must hold at least one property (with accumulating and status)'],
    ],
    ['a NUL in the source id', { sourceId: 'inv\u0000erter' }, ['source_id', 'inv\u0000erter', 'must not contain a NUL character']],
    [
      'a lone surrogate in the source id',
      { sourceId: 'inv\ud800' },
      ['source_id', 'inv\ud800', 'must be well-formed Unicode (it holds a lone surrogate)'],
    ],
    [
      'a NUL in a property name',
      { instantaneous: { 'w\u0000': 1 } },
      ['instantaneous', 'w\u0000', 'has a property name that must not contain a NUL character'],
    ],
    ['a NUL in a status value', { status: { alarm: 'hot\u0000' } }, ['status.alarm', 'hot\u0000', 'must not contain a NUL character']],
    [
      'a lone surrogate in a status name',
      { status: { '\udc00': 'ok' } },
      ['status', '\udc00', 'has a property name that must be well-formed Unicode (it holds a lone surrogate)'],
    ],
    ['a 1000-character status value', { status: { note: 'x'.repeat(1_000) } }, undefined],
    [
      'a 1001-character status value',
      { status: { note: 'x'.repeat(1_001) } },
      ['status.note', 'x'.repeat(1_001), 'must be at most 1000 characters'],
    ],
    ['an emoji in a status value', { status: { mood: 'ok \u{1F50B}' } }, undefined],
  ] as const)('datum reading with %s', (_name, patch, expected) => {
    const out = one({ datum: [datum(patch)] });
    if (!expected) {
      expect(out.rejections).toEqual([]);
      expect(out.datum).toHaveLength(1);
    } else {
      expect(out.datum).toEqual([]);
      expect(out.rejections).toEqual([
        { kind: 'datum', index: 0, deviceId: BESS, field: expected[0], value: expected[1], reason: expected[2] },
      ]);
    }
  });

  it.each([
    [{ soe: 0 }, undefined],
    [{ soe: 100 }, undefined],
    [{ soe: 100.01 }, ['soe_percent', '100.01']],
    [{ soe: -1 }, ['soe_percent', '-1']],
    [{ targetPower: Number.NaN }, ['target_power_kw', 'NaN']],
    [{ availableInverterBlocks: 32_768 }, ['available_inverter_blocks', '32768']],
    [{ commandSource: 5 }, ['command_source', '5']],
  ])('battery reading %j', (v, expected) => {
    const out = one({ bess: [{ deviceId: BESS, time: at(0), values: bess(v) }] });
    if (!expected) expect(out.bess).toHaveLength(1);
    else expect(out.rejections[0]).toMatchObject({ kind: 'bess', field: expected[0], value: expected[1] });
  });

  it('stores an unspecified command source as null and keeps the others', () => {
    const out = one({
      bess: [
        { deviceId: BESS, time: at(0), values: bess({ commandSource: 0 }) },
        { deviceId: BESS, time: at(1), values: bess({ commandSource: 3 }) },
      ],
    });
    expect(out.bess.map((b) => b.commandSource)).toEqual([null, 3]);
  });

  it('keeps the good readings of a batch and says where the bad ones were', () => {
    const out = one({
      meter: [
        { deviceId: 'nope', time: at(0), values: values() },
        { deviceId: METER, time: at(0), values: values() },
      ],
    });
    expect(out.meterIndex).toEqual([1]);
    expect(out.rejections.map((r) => r.index)).toEqual([0]);
  });

  it('rejects readings of devices at sites the caller may not write, before their state or type, and keeps the others', () => {
    const out = one(
      {
        meter: [
          { deviceId: METER, time: at(0), values: values() },
          { deviceId: BESS, time: at(0), values: values() },
          { deviceId: OFF, time: at(0), values: values() },
        ],
        bess: [{ deviceId: BESS, time: at(0), values: bess({ soe: 50 }) }],
        datum: [{ deviceId: BESS, sourceId: '/x', time: at(0), values: undefined, instantaneous: { t: 1 }, accumulating: {}, status: {} }],
      },
      new Set(['site-a']),
    );
    expect(out.meterIndex).toEqual([0]);
    const reason = 'names no registered device at the sites this caller may write';
    expect(out.rejections).toEqual([
      { kind: 'meter', index: 1, deviceId: BESS, field: 'device_id', value: BESS, reason },
      { kind: 'meter', index: 2, deviceId: OFF, field: 'device_id', value: OFF, reason: 'names an inactive device' },
      { kind: 'bess', index: 0, deviceId: BESS, field: 'device_id', value: BESS, reason },
      { kind: 'datum', index: 0, deviceId: BESS, field: 'device_id', value: BESS, reason },
    ]);
    expect(one({ bess: [{ deviceId: BESS, time: at(0), values: bess({}) }] }, '*').bess).toHaveLength(1);
    expect(one({ bess: [{ deviceId: BESS, time: at(0), values: bess({}) }] }, new Set()).bess).toHaveLength(0);
  });

  it.each([
    ['seconds beyond 2^53', { seconds: 2n ** 60n + 1n, nanos: 0 }, '1152921504606846977s 0ns', 'is out of range'],
    ['negative seconds', { seconds: -5n, nanos: 0 }, '1969-12-31T23:59:55.000Z', 'is older than the backfill window of 7 days'],
    ['negative nanos', { seconds: NOW_S, nanos: -1 }, '1700000000s -1ns', 'must have nanos from 0 to 999999999'],
  ])('rejects a meter time with %s, naming the time exactly as sent', (_name, time, value, reason) => {
    const out = one({ meter: [{ deviceId: METER, time, values: values() }] });
    expect(out.rejections).toEqual([{ kind: 'meter', index: 0, deviceId: METER, field: 'time', value, reason }]);
  });

  it('stores a meter time with microseconds and drops the nanoseconds below them', () => {
    const out = one({ meter: [{ deviceId: METER, time: { seconds: NOW_S, nanos: 123_456_789 }, values: values() }] });
    expect(out.meter[0]!.timeMicros).toBe(Number(NOW_S) * 1e6 + 123_456);
  });
});
