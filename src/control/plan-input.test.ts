import { describe, expect, it } from 'vitest';
import type { Device } from '../registry/registered-device.ts';
import type { BatteryState } from './battery-state.repository.ts';
import type { Instruction } from '../dispatch/instruction.ts';
import type { MarketPoint } from '../dispatch/market-data.ts';
import { marketSignalTypes, planInput, sitePower, type PeriodReads } from './plan-input.ts';
import { ago, NOW } from '../planner/planner.fixtures.ts';
import type { SitePlanInput } from '../planner/planner.types.ts';
import type { SiteConfig } from '../dispatch/site-settings.ts';

const later = new Date(NOW.getTime() + 600_000);

function device(id: string, over: Partial<NonNullable<Device['bess']>> = {}): Device {
  return {
    id,
    name: id,
    type: 'bess',
    site: 's1',
    active: true,
    createdAt: ago(3600),
    metadata: {},
    bess: {
      ratedChargePowerKw: 100,
      ratedDischargePowerKw: 120,
      capacityKwh: 200,
      minSoePercent: 10,
      maxSoePercent: 90,
      inverterBlockCount: 2,
      rampRateKwPerS: 5,
      reversionTimeoutS: 30,
      modbus: { host: '127.0.0.1', port: 502, unitId: 1, registerProfile: 'sunspec', pollingIntervalMs: 1000 },
      ...over,
    },
  };
}

const state = (id: string, over: Partial<BatteryState> = {}): BatteryState => ({ device: device(id), ...over });
const reading = (id: string, over: Partial<NonNullable<BatteryState['reading']>> = {}): NonNullable<BatteryState['reading']> => ({
  device_id: id,
  time: ago(2),
  soe: 55,
  target_power: 0,
  available_inverter_blocks: 1,
  command_source: 1,
  ...over,
});

function instruction(id: string, target: Instruction['target'], over: Partial<Instruction> = {}): Instruction {
  return {
    id,
    requestId: id,
    target,
    startTime: ago(60),
    endTime: later,
    command: { powerKw: 50 },
    priority: 0,
    principal: 'trader',
    createdAt: ago(60),
    ...over,
  };
}

const idle: SiteConfig = { site: 's1', avoidImport: false, avoidExport: false };
const niv = (over: Partial<NonNullable<SiteConfig['nivChase']>> = {}): SiteConfig => ({
  ...idle,
  nivChase: { enabled: true, nivThresholdMw: 100, shortPriceThreshold: 150, longPriceThreshold: 20, ...over },
});
const signal = (type: string, value: number): [string, MarketPoint] => [type, { time: ago(60), type, value }];

function reads(over: Partial<PeriodReads> = {}): PeriodReads {
  return { site: 's1', at: NOW, batteries: [state('b1')], instructions: [], meters: [], config: idle, deliveredKw: () => 0, ...over };
}

const timing = { controlPeriodMs: 4000, maxTelemetryAgeMs: 30_000 };

interface Case {
  name: string;
  reads: PeriodReads;
  expected: Partial<SitePlanInput>;
}

const cases: Case[] = [
  {
    name: "copies the period timing and a battery's ratings, with no reading, override or instruction",
    reads: reads(),
    expected: {
      site: 's1',
      now: NOW,
      controlPeriodMs: 4000,
      maxTelemetryAgeMs: 30_000,
      batteryInstructions: [],
      batteries: [
        {
          deviceId: 'b1',
          ratedChargePowerKw: 100,
          ratedDischargePowerKw: 120,
          capacityKwh: 200,
          minSoePercent: 10,
          maxSoePercent: 90,
          inverterBlockCount: 2,
          rampRateKwPerS: 5,
          previousSetpointKw: 0,
        },
      ],
    },
  },
  {
    name: 'takes SoE, available blocks and telemetry time from the latest reading, and the ramp start from the verified power',
    reads: reads({ batteries: [state('b1', { reading: reading('b1') })], deliveredKw: (id) => (id === 'b1' ? 30 : 0) }),
    expected: {
      batteries: [expect.objectContaining({ soePercent: 55, availableInverterBlocks: 1, telemetryTime: ago(2), previousSetpointKw: 30 })],
    },
  },
  {
    name: 'leaves out reading values the battery did not report',
    reads: reads({ batteries: [state('b1', { reading: reading('b1', { soe: null, available_inverter_blocks: null }) })] }),
    expected: { batteries: [expect.not.objectContaining({ soePercent: expect.anything(), availableInverterBlocks: expect.anything() })] },
  },
  {
    name: 'gives a battery its override in force',
    reads: reads({ batteries: [state('b1', { override: { powerKw: -20, expireTime: later, reason: 'test', principal: 'ops' } })] }),
    expected: { batteries: [expect.objectContaining({ manual: { powerKw: -20, expireTime: later } })] },
  },
  {
    name: 'ignores an override that expired or was released',
    reads: reads({
      batteries: [
        state('b1', { override: { powerKw: -20, expireTime: NOW, reason: 'test', principal: 'ops' } }),
        state('b2', {
          override: { powerKw: -20, expireTime: later, reason: 'test', principal: 'ops', releasedAt: ago(1), releasedBy: 'ops' },
        }),
      ],
    }),
    expected: {
      batteries: [expect.not.objectContaining({ manual: expect.anything() }), expect.not.objectContaining({ manual: expect.anything() })],
    },
  },
  {
    name: "passes the governing site instruction and the governing instructions of the site's own batteries only",
    reads: reads({
      batteries: [state('b1'), state('b2')],
      instructions: [
        instruction('low', { site: 's1' }),
        instruction('high', { site: 's1' }, { priority: 5, command: { action: 'CHARGE_MAX' } }),
        instruction('future', { site: 's1' }, { priority: 9, startTime: later, endTime: new Date(later.getTime() + 1) }),
        instruction('mine', { deviceId: 'b2' }),
        instruction('moved', { deviceId: 'b9' }),
      ],
    }),
    expected: {
      instruction: { id: 'high', target: { site: 's1' }, command: { action: 'CHARGE_MAX' } },
      batteryInstructions: [{ id: 'mine', target: { deviceId: 'b2' }, command: { powerKw: 50 } }],
    },
  },
  {
    name: 'sums the site meters, timed by the oldest reading, skipping meters without power',
    reads: reads({
      meters: [
        { device_id: 'm1', time: ago(3), power_total_active: 40 },
        { device_id: 'm2', time: ago(8), power_total_active: -15 },
        { device_id: 'm3', time: ago(20), power_total_active: null },
      ],
    }),
    expected: { sitePowerKw: 25, sitePowerTime: ago(8) },
  },
  {
    name: 'passes the site limits, avoidance and SoE target',
    reads: reads({
      config: {
        ...idle,
        importLimitKw: 300,
        exportLimitKw: 0,
        avoidImport: true,
        soeTarget: { enabled: true, soePercent: 80, maxPowerKw: 40 },
      },
    }),
    expected: {
      importLimitKw: 300,
      exportLimitKw: 0,
      avoidance: { avoidImport: true, avoidExport: false },
      soeTarget: { percent: 80, maxPowerKw: 40 },
    },
  },
  {
    name: 'leaves out a disabled SoE target and NIV chase',
    reads: reads({
      config: { ...idle, soeTarget: { enabled: false, soePercent: 80, maxPowerKw: 40 }, nivChase: { ...niv().nivChase!, enabled: false } },
    }),
    expected: { soeTarget: undefined, nivChase: undefined, avoidance: undefined },
  },
  {
    name: 'gives NIV chase the market signals read, and its target SoE with the default of the side not set',
    reads: reads({
      config: niv({ shortTargetSoePercent: 30 }),
      signals: new Map([signal('imbalance_price', 210), signal('niv_estimate', 450)]),
    }),
    expected: {
      nivChase: {
        enabled: true,
        nivThresholdMw: 100,
        shortPriceThreshold: 150,
        longPriceThreshold: 20,
        imbalancePrice: 210,
        nivEstimateMw: 450,
        targetSoePercent: { short: 30, long: 100 },
      },
    },
  },
  {
    name: 'gives NIV chase no signal it could not read (too old or never published)',
    reads: reads({ config: niv(), signals: new Map([signal('niv_estimate', -300)]) }),
    expected: { nivChase: { enabled: true, nivThresholdMw: 100, shortPriceThreshold: 150, longPriceThreshold: 20, nivEstimateMw: -300 } },
  },
];

describe('planInput', () => {
  it.each(cases)('$name', ({ reads: r, expected }) => {
    const input = planInput(r, timing);
    for (const [key, value] of Object.entries(expected)) {
      if (value === undefined) expect(input).not.toHaveProperty(key);
      else expect(input).toHaveProperty(key, value);
    }
  });

  it('has no site power without a meter power reading', () => {
    expect(sitePower([])).toBeUndefined();
    expect(sitePower([{ device_id: 'm1', time: ago(1), power_total_active: null }])).toBeUndefined();
  });

  it('reads market signals only for NIV chase', () => {
    expect(marketSignalTypes(idle)).toEqual([]);
    expect(marketSignalTypes({ ...idle, nivChase: { ...niv().nivChase!, enabled: false } })).toEqual([]);
    expect(marketSignalTypes(niv())).toEqual(['imbalance_price', 'niv_estimate']);
  });
});
