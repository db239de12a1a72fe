import { describe, expect, it } from 'vitest';
import { planSite } from './planner.ts';
import { ago, battery, kwById, NOW, site, sitePower } from './planner.fixtures.ts';
import type { SitePlanInput } from './planner.types.ts';

interface Case {
  name: string;
  input: SitePlanInput;
  kw: Record<string, number>;
  reasons?: Record<string, string[]>;
  undelivered?: string[];
}

const later = new Date(NOW.getTime() + 60_000);
const ramped = (over: Parameters<typeof battery>[1]) => battery('b1', { rampRateKwPerS: 5, ...over });

// Fixture batteries: 100 kW each way, 2 blocks, 200 kWh at 50 % (10–90 %), 4 s period.
const cases: Case[] = [
  {
    name: 'caps each battery at its rated power and reports the excess',
    input: site({ instruction: sitePower(300) }),
    kw: { b1: 100, b2: 100 },
    reasons: { b1: ['clamped by rated discharge power'], b2: ['clamped by rated discharge power'] },
    undelivered: ['request beyond rated power: 100 kW'],
  },
  {
    name: 'gives a battery with no inverter blocks available nothing',
    input: site({ instruction: sitePower(80), batteries: [battery('b1', { availableInverterBlocks: 0 }), battery('b2')] }),
    kw: { b1: 0, b2: 80 },
    reasons: { b1: ['clamped by inverter blocks (0 of 2 available)'], b2: [] },
  },
  {
    name: 'reports the power lost to unavailable inverter blocks',
    input: site({ instruction: sitePower(-200), batteries: [battery('b1', { availableInverterBlocks: 1 }), battery('b2')] }),
    kw: { b1: -50, b2: -100 },
    undelivered: ['inverter blocks unavailable: -50 kW'],
  },
  {
    name: 'never discharges a battery at its min SoE',
    input: site({ instruction: sitePower(150), batteries: [battery('b1', { soePercent: 10 }), battery('b2')] }),
    kw: { b1: 0, b2: 100 },
    reasons: { b1: ['clamped by min SoE'], b2: ['clamped by rated discharge power'] },
    undelivered: ['min SoE: 50 kW'],
  },
  {
    name: 'never charges a battery at its max SoE',
    input: site({ instruction: sitePower(-50), batteries: [battery('b1', { soePercent: 95 }), battery('b2')] }),
    kw: { b1: 0, b2: -50 },
    reasons: { b1: ['clamped by max SoE'], b2: [] },
  },
  // 200 kWh × 0.01 % = 0.02 kWh, which 18 kW moves in 4 s.
  {
    name: 'limits a discharge so one period cannot cross min SoE',
    input: site({ instruction: sitePower(100), batteries: [battery('b1', { soePercent: 10.01 })] }),
    kw: { b1: 18 },
    reasons: { b1: ['clamped by min SoE'] },
    undelivered: ['min SoE: 82 kW'],
  },
  // 200 kWh × 0.005 % = 0.01 kWh, which 9 kW moves in 4 s.
  {
    name: 'limits a charge so one period cannot cross max SoE',
    input: site({ instruction: sitePower(-100), batteries: [battery('b1', { soePercent: 89.995 })] }),
    kw: { b1: -9 },
    reasons: { b1: ['clamped by max SoE'] },
    undelivered: ['max SoE: -91 kW'],
  },
  // 5 kW/s × 4 s = 20 kW per period.
  {
    name: 'ramps a setpoint up by at most the ramp rate per period',
    input: site({ instruction: sitePower(100), batteries: [ramped({ previousSetpointKw: 10 })] }),
    kw: { b1: 30 },
    reasons: { b1: ['clamped by ramp rate'] },
    undelivered: ['ramp rate: 70 kW'],
  },
  // The ramp limits growth only: a move toward 0 kW is immediate.
  {
    name: 'drops an idle battery to 0 kW at once whatever its ramp rate',
    input: site({ batteries: [ramped({ previousSetpointKw: 50 })] }),
    kw: { b1: 0 },
    reasons: { b1: [] },
    undelivered: [],
  },
  {
    name: 'cuts a discharge to a smaller request at once rather than ramping down past it',
    input: site({ instruction: sitePower(10), batteries: [ramped({ previousSetpointKw: 100, rampRateKwPerS: 1 })] }),
    kw: { b1: 10 },
    reasons: { b1: [] },
    undelivered: [],
  },
  {
    name: 'drops a charge to 0 kW and ramps the discharge from there when the request crosses zero',
    input: site({ instruction: sitePower(100), batteries: [ramped({ previousSetpointKw: -50 })] }),
    kw: { b1: 20 },
    reasons: { b1: ['clamped by ramp rate'] },
    undelivered: ['ramp rate: 80 kW'],
  },
  {
    name: 'stops a battery at its min SoE at once despite its ramp rate',
    input: site({ instruction: sitePower(100), batteries: [ramped({ previousSetpointKw: 50, soePercent: 10 })] }),
    kw: { b1: 0 },
    reasons: { b1: ['clamped by min SoE'] },
    undelivered: ['min SoE: 100 kW'],
  },
  // Load = −10 kW metered + 0 from the batteries; 50 kW of export allowed leaves 40 kW.
  {
    name: 'shrinks a discharge to keep the site within its export limit',
    input: site({ instruction: sitePower(100), sitePowerKw: -10, sitePowerTime: ago(2), exportLimitKw: 50 }),
    kw: { b1: 20, b2: 20 },
    undelivered: ['site export limit: 60 kW'],
  },
  {
    name: 'counts the discharge the batteries already make when checking the export limit',
    input: site({
      instruction: sitePower(100),
      sitePowerKw: -10,
      sitePowerTime: ago(2),
      exportLimitKw: 50,
      batteries: [battery('b1', { previousSetpointKw: 20 }), battery('b2')],
    }),
    kw: { b1: 30, b2: 30 },
    undelivered: ['site export limit: 40 kW'],
  },
  {
    name: 'shrinks a charge to keep the site within its import limit',
    input: site({ instruction: sitePower(-200), sitePowerKw: 30, sitePowerTime: ago(2), importLimitKw: 100 }),
    kw: { b1: -35, b2: -35 },
    undelivered: ['site import limit: -130 kW'],
  },
  {
    name: 'blocks a discharge under an export limit when the meter reading is stale',
    input: site({ instruction: sitePower(100), sitePowerKw: 0, sitePowerTime: ago(60), exportLimitKw: 50 }),
    kw: { b1: 0, b2: 0 },
    undelivered: ['site export limit (site meter stale 60 s): 100 kW'],
  },
  {
    name: 'allows a charge under an export limit when the meter reading is missing',
    input: site({ instruction: sitePower(-100), exportLimitKw: 50 }),
    kw: { b1: -50, b2: -50 },
  },
  {
    name: 'leaves room under the export limit for a manual override planned first',
    input: site({
      instruction: sitePower(100),
      sitePowerKw: 0,
      sitePowerTime: ago(2),
      exportLimitKw: 50,
      batteries: [battery('b1', { manual: { powerKw: 30, expireTime: later } }), battery('b2')],
    }),
    kw: { b1: 30, b2: 20 },
  },
  {
    name: 'clamps a manual override by the SoE limits',
    input: site({ batteries: [battery('b1', { soePercent: 10, manual: { powerKw: 30, expireTime: later } })] }),
    kw: { b1: 0 },
    reasons: { b1: [`manual override until ${later.toISOString()}`, 'clamped by min SoE'] },
  },
  {
    name: 'holds a battery with stale telemetry at 0 kW and gives the others its share',
    input: site({ instruction: sitePower(150), batteries: [battery('b1', { telemetryTime: ago(42) }), battery('b2')] }),
    kw: { b1: 0, b2: 100 },
    reasons: { b1: ['telemetry stale 42 s'], b2: ['clamped by rated discharge power'] },
    undelivered: ['telemetry stale or missing: 50 kW'],
  },
  {
    name: 'holds a battery that never reported telemetry',
    input: site({ batteries: [battery('b1', { telemetryTime: undefined })] }),
    kw: { b1: 0 },
    reasons: { b1: ['telemetry missing'] },
  },
  {
    name: 'holds a manually overridden battery whose telemetry is stale',
    input: site({ batteries: [battery('b1', { telemetryTime: ago(31), manual: { powerKw: 30, expireTime: later } })] }),
    kw: { b1: 0 },
    reasons: { b1: ['telemetry stale 31 s'] },
  },
  {
    name: 'rounds setpoints toward zero to the watt and reports the remainder',
    input: site({ instruction: sitePower(100), batteries: [battery('b1'), battery('b2'), battery('b3')] }),
    kw: { b1: 33.333, b2: 33.333, b3: 33.333 },
    undelivered: ['rounding: 0.001 kW'],
  },
];

// The split weighs each battery's power headroom by the share of its SoE span (10–90 % = 80
// points) still open in the direction of travel.
const soes = (b1: number, b2: number) => [battery('b1', { soePercent: b1 }), battery('b2', { soePercent: b2 })];
const splits: Case[] = [
  // 100 × 75/80 = 93.75 against 100 × 2/80 = 2.5: 100 kW × 93.75/96.25 and × 2.5/96.25.
  {
    name: 'gives most of a discharge to the battery furthest from min SoE',
    input: site({ instruction: sitePower(100), batteries: soes(85, 12) }),
    kw: { b1: 97.402, b2: 2.597 },
    reasons: { b1: [], b2: [] },
    undelivered: ['rounding: 0.001 kW'],
  },
  // 100 × 5/80 = 6.25 against 100 × 78/80 = 97.5.
  {
    name: 'gives most of a charge to the battery furthest from max SoE',
    input: site({ instruction: sitePower(-100), batteries: soes(85, 12) }),
    kw: { b1: -6.024, b2: -93.975 },
  },
  {
    name: 'splits equally between equal batteries',
    input: site({ instruction: sitePower(-120), batteries: soes(30, 30) }),
    kw: { b1: -60, b2: -60 },
  },
  {
    name: 'gives what a capped battery cannot take to the others, up to their total headroom',
    input: site({ instruction: sitePower(150), batteries: soes(85, 12) }),
    kw: { b1: 100, b2: 50 },
    reasons: { b1: ['clamped by rated discharge power'], b2: [] },
    undelivered: [],
  },
  {
    name: 'gives nothing to discharge to a battery at min SoE',
    input: site({ instruction: sitePower(90), batteries: soes(10, 50) }),
    kw: { b1: 0, b2: 90 },
    reasons: { b1: ['clamped by min SoE'], b2: [] },
  },
  // Charging, b1 has all 80 points open and b2 40: 90 kW × 2/3 and × 1/3.
  {
    name: 'lets a battery at min SoE take a charge, the larger share',
    input: site({ instruction: sitePower(-90), batteries: soes(10, 50) }),
    kw: { b1: -60, b2: -30 },
  },
  // Charging, b1 weighs 100 kW × 40/80 and b2 50 kW (one block of two) × 80/80: equal.
  {
    name: 'weighs power headroom and SoE room together',
    input: site({
      instruction: sitePower(-90),
      batteries: [battery('b1', { soePercent: 50 }), battery('b2', { soePercent: 10, availableInverterBlocks: 1 })],
    }),
    kw: { b1: -45, b2: -45 },
  },
];

describe('planSite split', () => {
  it.each(splits)('$name', ({ input, kw, reasons, undelivered }) => {
    const plan = planSite(input);
    expect(kwById(plan)).toEqual(kw);
    if (reasons) expect(Object.fromEntries(plan.setpoints.map((s) => [s.deviceId, s.reasons]))).toEqual(reasons);
    if (undelivered) expect(plan.undeliveredReasons).toEqual(undelivered);
  });
});

describe('planSite clamps', () => {
  it.each(cases)('$name', ({ input, kw, reasons, undelivered }) => {
    const plan = planSite(input);
    expect(kwById(plan)).toEqual(kw);
    if (reasons) expect(Object.fromEntries(plan.setpoints.map((s) => [s.deviceId, s.reasons]))).toEqual(reasons);
    if (undelivered) expect(plan.undeliveredReasons).toEqual(undelivered);
  });

  it('marks a held battery as FAILSAFE and held', () => {
    const plan = planSite(site({ instruction: sitePower(10), batteries: [battery('b1', { telemetryTime: ago(42) })] }));
    expect(plan.setpoints[0]).toMatchObject({ source: 'FAILSAFE', held: true, targetPowerKw: 0 });
  });

  it('reports requested minus delivered as undelivered', () => {
    const plan = planSite(site({ instruction: sitePower(150), batteries: [battery('b1', { soePercent: 10 }), battery('b2')] }));
    expect(plan).toMatchObject({ requestedKw: 150, deliveredKw: 100, undeliveredKw: 50 });
  });
});
