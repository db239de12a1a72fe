import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { planSite } from './planner.ts';
import { NOW } from './planner.fixtures.ts';
import type { BatteryPlanInput, SitePlan, SitePlanInput } from './planner.types.ts';

const TOLERANCE = 1e-6;
const kw = (max: number) => fc.double({ min: -max, max, noNaN: true, noDefaultInfinity: true });
const nonNegative = (max: number) => fc.double({ min: 0, max, noNaN: true, noDefaultInfinity: true });
const secondsAgo = (s: number) => new Date(NOW.getTime() - s * 1000);

const batteryArb = (deviceId: string): fc.Arbitrary<BatteryPlanInput> =>
  fc.record({
    deviceId: fc.constant(deviceId),
    ratedChargePowerKw: nonNegative(5000),
    ratedDischargePowerKw: nonNegative(5000),
    capacityKwh: nonNegative(20_000),
    minSoePercent: nonNegative(50),
    maxSoePercent: fc.double({ min: 50, max: 100, noNaN: true }),
    inverterBlockCount: fc.integer({ min: 1, max: 8 }),
    availableInverterBlocks: fc.integer({ min: 0, max: 8 }),
    rampRateKwPerS: fc.oneof(fc.constant(0), nonNegative(200)),
    soePercent: fc.double({ min: -5, max: 105, noNaN: true }),
    telemetryTime: fc.integer({ min: 0, max: 60 }).map(secondsAgo),
    previousSetpointKw: kw(5000),
    manual: fc.option(fc.record({ powerKw: kw(6000), expireTime: fc.integer({ min: -10, max: 600 }).map(secondsAgo) }), { nil: undefined }),
  }, { requiredKeys: ['deviceId', 'ratedChargePowerKw', 'ratedDischargePowerKw', 'capacityKwh', 'minSoePercent',
    'maxSoePercent', 'inverterBlockCount', 'rampRateKwPerS', 'previousSetpointKw'] });

const instructionArb = (ids: string[]): fc.Arbitrary<SitePlanInput['instruction']> =>
  fc.record({
    id: fc.constant('i1'),
    target: fc.oneof(fc.constant({ site: 's1' }), fc.constantFrom(...ids).map((deviceId) => ({ deviceId }))),
    command: fc.oneof(
      kw(20_000).map((powerKw) => ({ powerKw })),
      fc.constantFrom('CHARGE_MAX', 'DISCHARGE_MAX', 'AVOID_IMPORT', 'AVOID_EXPORT' as const).map((action) => ({ action })),
    ),
  });

const siteArb: fc.Arbitrary<SitePlanInput> = fc
  .integer({ min: 1, max: 6 })
  .chain((n) => {
    const ids = Array.from({ length: n }, (_, i) => `b${i}`);
    return fc.record({
      site: fc.constant('s1'),
      now: fc.integer({ min: 0, max: 3600 }).map((s) => secondsAgo(-s)),
      controlPeriodMs: fc.integer({ min: 500, max: 60_000 }),
      maxTelemetryAgeMs: fc.constant(30_000),
      batteries: fc.tuple(...ids.map(batteryArb)),
      sitePowerKw: fc.option(kw(5000), { nil: undefined }),
      sitePowerTime: fc.option(fc.integer({ min: 0, max: 60 }).map(secondsAgo), { nil: undefined }),
      importLimitKw: fc.option(nonNegative(5000), { nil: undefined }),
      exportLimitKw: fc.option(nonNegative(5000), { nil: undefined }),
      instruction: fc.option(instructionArb(ids), { nil: undefined }),
      nivChase: fc.option(fc.record({
        enabled: fc.boolean(), nivThresholdMw: nonNegative(200), shortPriceThreshold: kw(500), longPriceThreshold: kw(500),
        imbalancePrice: kw(1000), nivEstimateMw: kw(1000),
      }), { nil: undefined }),
      soeTarget: fc.option(fc.record({ percent: nonNegative(100), maxPowerKw: nonNegative(5000) }), { nil: undefined }),
      avoidance: fc.option(fc.record({ avoidImport: fc.boolean(), avoidExport: fc.boolean() }), { nil: undefined }),
    });
  })
  .map((s) => ({ ...s, batteries: [...s.batteries] }));

const withoutRamp = siteArb.map((s) => ({ ...s, batteries: s.batteries.map((b) => ({ ...b, rampRateKwPerS: 0 })) }));

/** Pairs each setpoint with its battery input. */
function pairs(input: SitePlanInput, plan: SitePlan) {
  return plan.setpoints.map((s) => ({ s, b: input.batteries.find((b) => b.deviceId === s.deviceId)! }));
}

const ageS = (b: BatteryPlanInput, now: Date) => (now.getTime() - b.telemetryTime!.getTime()) / 1000;

describe('planSite properties', () => {
  it('never delivers more than a target requested, nor in the other direction, when no ramp applies', () => {
    fc.assert(fc.property(withoutRamp, (input) => {
      const plan = planSite(input);
      for (const t of plan.targets) {
        const delivered = plan.setpoints.filter((s) => t.deviceIds.includes(s.deviceId)).reduce((a, s) => a + s.targetPowerKw, 0);
        const requested = t.requestedKw ?? 0;
        expect(Math.abs(delivered)).toBeLessThanOrEqual(Math.abs(requested) + TOLERANCE);
        expect(delivered * requested).toBeGreaterThanOrEqual(0);
      }
    }), { numRuns: 500 });
  });

  it('moves a battery against its target only when the ramp rate forces it', () => {
    fc.assert(fc.property(siteArb, (input) => {
      const plan = planSite(input);
      for (const t of plan.targets) {
        for (const s of plan.setpoints.filter((x) => t.deviceIds.includes(x.deviceId))) {
          const against = s.targetPowerKw * (t.requestedKw ?? 0) < 0 || (t.requestedKw === undefined && s.targetPowerKw !== 0);
          if (against) expect(s.reasons.some((r) => r.includes('ramp rate'))).toBe(true);
        }
      }
    }), { numRuns: 500 });
  });

  it('keeps every setpoint within rated power scaled by the available inverter blocks', () => {
    fc.assert(fc.property(siteArb, (input) => {
      for (const { s, b } of pairs(input, planSite(input))) {
        const share = Math.min(b.availableInverterBlocks ?? b.inverterBlockCount, b.inverterBlockCount) / b.inverterBlockCount;
        expect(s.targetPowerKw).toBeLessThanOrEqual(b.ratedDischargePowerKw * share + TOLERANCE);
        expect(-s.targetPowerKw).toBeLessThanOrEqual(b.ratedChargePowerKw * share + TOLERANCE);
        if (share === 0) expect(s.targetPowerKw).toBe(0);
      }
    }), { numRuns: 500 });
  });

  it('never drives a battery past its SoE limits within one control period', () => {
    fc.assert(fc.property(siteArb, (input) => {
      const hours = input.controlPeriodMs / 3_600_000;
      for (const { s, b } of pairs(input, planSite(input))) {
        if (s.held) continue;
        const soe = b.soePercent!;
        if (soe <= b.minSoePercent) expect(s.targetPowerKw).toBeLessThanOrEqual(0);
        if (soe >= b.maxSoePercent) expect(s.targetPowerKw).toBeGreaterThanOrEqual(0);
        const toMin = (b.capacityKwh * Math.max(0, soe - b.minSoePercent)) / 100;
        const toMax = (b.capacityKwh * Math.max(0, b.maxSoePercent - soe)) / 100;
        expect(Math.max(0, s.targetPowerKw) * hours).toBeLessThanOrEqual(toMin * (1 + 1e-9) + 1e-9);
        expect(Math.max(0, -s.targetPowerKw) * hours).toBeLessThanOrEqual(toMax * (1 + 1e-9) + 1e-9);
      }
    }), { numRuns: 500 });
  });

  it('holds a battery with stale or missing telemetry at 0 kW as FAILSAFE and says why', () => {
    fc.assert(fc.property(siteArb, (input) => {
      for (const { s, b } of pairs(input, planSite(input))) {
        const why = b.telemetryTime === undefined ? 'telemetry missing'
          : ageS(b, input.now) * 1000 > input.maxTelemetryAgeMs ? `telemetry stale ${Math.floor(ageS(b, input.now))} s`
            : b.soePercent === undefined ? 'telemetry missing SoE' : undefined;
        expect(s.held).toBe(why !== undefined);
        if (why !== undefined) expect(s).toMatchObject({ targetPowerKw: 0, source: 'FAILSAFE', reasons: [why] });
      }
    }), { numRuns: 300 });
  });

  it('changes a setpoint by at most the ramp rate per period unless an SoE or rated limit overrides it', () => {
    fc.assert(fc.property(siteArb, (input) => {
      for (const { s, b } of pairs(input, planSite(input))) {
        if (s.held || b.rampRateKwPerS === 0 || s.reasons.some((r) => r.includes('overrides ramp rate'))) continue;
        const step = (b.rampRateKwPerS * input.controlPeriodMs) / 1000;
        // Rounding toward zero to 0.001 kW may move a setpoint by under one watt.
        expect(Math.abs(s.targetPowerKw - b.previousSetpointKw)).toBeLessThanOrEqual(step + 0.001 + TOLERANCE);
      }
    }), { numRuns: 500 });
  });

  it('rounds every setpoint to 0.001 kW and accounts for every undelivered kW', () => {
    fc.assert(fc.property(siteArb, (input) => {
      const plan = planSite(input);
      for (const s of plan.setpoints) expect(Math.abs(s.targetPowerKw * 1000 - Math.round(s.targetPowerKw * 1000))).toBeLessThan(TOLERANCE);
      for (const t of plan.targets) {
        const parts = t.undelivered.reduce((a, p) => a + p.kw, 0);
        expect(Math.abs(parts - t.undeliveredKw)).toBeLessThanOrEqual(0.001 * (t.undelivered.length + 1) + TOLERANCE);
      }
    }), { numRuns: 300 });
  });

  it('plans the same input the same way whatever the order of its batteries', () => {
    fc.assert(fc.property(siteArb, (input) => {
      const plan = planSite(input);
      expect(planSite(input)).toEqual(plan);
      expect(planSite({ ...input, batteries: [...input.batteries].reverse() })).toEqual(plan);
    }), { numRuns: 300 });
  });
});
