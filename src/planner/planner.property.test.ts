import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { planSite } from './planner.ts';
import { NOW } from './planner.fixtures.ts';
import type { BatteryPlanInput, SitePlan, SitePlanInput } from './planner.types.ts';

const TOLERANCE = 1e-6;
/**
 * A number in [min, max], mostly whole thousandths spread evenly. fc.double draws evenly over
 * the doubles' bit patterns, so alone it gives mostly tiny values (1e-200 kW) that round
 * every setpoint to 0 and test nothing; it stays in for one draw in five, for edge cases.
 */
const between = (min: number, max: number) =>
  fc.oneof(
    { weight: 4, arbitrary: fc.integer({ min: Math.round(min * 1000), max: Math.round(max * 1000) }).map((n) => n / 1000) },
    { weight: 1, arbitrary: fc.double({ min, max, noNaN: true, noDefaultInfinity: true }) },
  );
const kw = (max: number) => between(-max, max);
const nonNegative = (max: number) => between(0, max);
const secondsAgo = (s: number) => new Date(NOW.getTime() - s * 1000);

const batteryArb = (deviceId: string): fc.Arbitrary<BatteryPlanInput> =>
  fc.record(
    {
      deviceId: fc.constant(deviceId),
      ratedChargePowerKw: nonNegative(5000),
      ratedDischargePowerKw: nonNegative(5000),
      capacityKwh: nonNegative(20_000),
      minSoePercent: nonNegative(50),
      maxSoePercent: between(50, 100),
      inverterBlockCount: fc.integer({ min: 1, max: 8 }),
      availableInverterBlocks: fc.integer({ min: 0, max: 8 }),
      rampRateKwPerS: fc.oneof(fc.constant(0), nonNegative(200)),
      soePercent: between(-5, 105),
      telemetryTime: fc.integer({ min: 0, max: 60 }).map(secondsAgo),
      previousSetpointKw: kw(5000),
      manual: fc.option(fc.record({ powerKw: kw(6000), expireTime: fc.integer({ min: -10, max: 600 }).map(secondsAgo) }), {
        nil: undefined,
      }),
    },
    {
      requiredKeys: [
        'deviceId',
        'ratedChargePowerKw',
        'ratedDischargePowerKw',
        'capacityKwh',
        'minSoePercent',
        'maxSoePercent',
        'inverterBlockCount',
        'rampRateKwPerS',
        'previousSetpointKw',
      ],
    },
  );

const instructionArb = (ids: string[]): fc.Arbitrary<SitePlanInput['instruction']> =>
  fc.record({
    id: fc.constant('i1'),
    target: fc.oneof(
      fc.constant({ site: 's1' }),
      fc.constantFrom(...ids).map((deviceId) => ({ deviceId })),
    ),
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
      nivChase: fc.option(
        fc.record({
          enabled: fc.boolean(),
          nivThresholdMw: nonNegative(200),
          shortPriceThreshold: kw(500),
          longPriceThreshold: kw(500),
          imbalancePrice: kw(1000),
          nivEstimateMw: kw(1000),
        }),
        { nil: undefined },
      ),
      soeTarget: fc.option(fc.record({ percent: nonNegative(100), maxPowerKw: nonNegative(5000) }), { nil: undefined }),
      avoidance: fc.option(fc.record({ avoidImport: fc.boolean(), avoidExport: fc.boolean() }), { nil: undefined }),
    });
  })
  // Times are drawn relative to NOW; move them with `now` so about half the readings are fresh.
  .map((s) => {
    const shift = (t: Date | undefined) => (t === undefined ? undefined : new Date(t.getTime() + s.now.getTime() - NOW.getTime()));
    return {
      ...s,
      sitePowerTime: shift(s.sitePowerTime),
      batteries: s.batteries.map((b) => ({
        ...b,
        telemetryTime: shift(b.telemetryTime),
        ...(b.manual === undefined ? {} : { manual: { ...b.manual, expireTime: shift(b.manual.expireTime)! } }),
      })),
    };
  });

/** Sites with a fresh meter reading and limits small enough to bind often. */
const meteredArb: fc.Arbitrary<SitePlanInput> = fc
  .tuple(
    siteArb,
    kw(5000),
    fc.integer({ min: 0, max: 30 }),
    fc.option(nonNegative(2000), { nil: undefined }),
    fc.option(nonNegative(2000), { nil: undefined }),
  )
  .map(([s, sitePowerKw, ageS, importLimitKw, exportLimitKw]) => ({
    ...s,
    sitePowerKw,
    sitePowerTime: new Date(s.now.getTime() - ageS * 1000),
    importLimitKw,
    exportLimitKw,
  }));

const sum = (values: number[]) => values.reduce((a, v) => a + v, 0);

/** Pairs each setpoint with its battery input. */
function pairs(input: SitePlanInput, plan: SitePlan) {
  return plan.setpoints.map((s) => ({ s, b: input.batteries.find((b) => b.deviceId === s.deviceId)! }));
}

const ageS = (b: BatteryPlanInput, now: Date) => (now.getTime() - b.telemetryTime!.getTime()) / 1000;

describe('planSite properties', () => {
  it('never delivers more than a target requested, nor in the other direction, whatever the ramp rates and previous setpoints', () => {
    fc.assert(
      fc.property(siteArb, (input) => {
        const plan = planSite(input);
        for (const t of plan.targets) {
          const delivered = sum(plan.setpoints.filter((s) => t.deviceIds.includes(s.deviceId)).map((s) => s.targetPowerKw));
          const requested = t.requestedKw ?? 0;
          expect(Math.abs(delivered)).toBeLessThanOrEqual(Math.abs(requested) + TOLERANCE);
          expect(delivered * requested).toBeGreaterThanOrEqual(0);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('never moves a battery against its target, and leaves every battery of an idle target at 0 kW', () => {
    fc.assert(
      fc.property(siteArb, (input) => {
        const plan = planSite(input);
        for (const t of plan.targets) {
          for (const s of plan.setpoints.filter((x) => t.deviceIds.includes(x.deviceId))) {
            if (t.requestedKw === undefined) expect(s.targetPowerKw).toBe(0);
            else expect(s.targetPowerKw * t.requestedKw).toBeGreaterThanOrEqual(0);
          }
        }
      }),
      { numRuns: 500 },
    );
  });

  // The model of planner-site.ts: the site's load without its batteries is the metered power
  // (+ import) plus every battery's previous setpoint (+ discharge); after the plan the site
  // draws that load minus the new setpoints. A limit the load alone already breaches may
  // stay breached, but the batteries must not make it worse.
  it('never pushes the site past its import or export limit, nor further past one its load already breaches', () => {
    fc.assert(
      fc.property(meteredArb, (input) => {
        const plan = planSite(input);
        const loadKw = input.sitePowerKw! + sum(input.batteries.map((b) => b.previousSetpointKw));
        const afterKw = loadKw - sum(plan.setpoints.map((s) => s.targetPowerKw));
        if (input.importLimitKw !== undefined) expect(afterKw).toBeLessThanOrEqual(Math.max(input.importLimitKw, loadKw) + TOLERANCE);
        if (input.exportLimitKw !== undefined) expect(afterKw).toBeGreaterThanOrEqual(Math.min(-input.exportLimitKw, loadKw) - TOLERANCE);
      }),
      { numRuns: 1000 },
    );
  });

  it('never discharges under an export limit, nor charges under an import limit, without a usable meter reading', () => {
    const unmetered = fc.tuple(siteArb, fc.boolean()).map(([s, missing]) => ({
      ...s,
      sitePowerTime: missing ? undefined : new Date(s.now.getTime() - 31_000),
    }));
    fc.assert(
      fc.property(unmetered, (input) => {
        for (const s of planSite(input).setpoints) {
          if (input.exportLimitKw !== undefined) expect(s.targetPowerKw).toBeLessThanOrEqual(0);
          if (input.importLimitKw !== undefined) expect(s.targetPowerKw).toBeGreaterThanOrEqual(0);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('gives more to the battery with more SoE room when two batteries differ only in SoE, unless it is at a limit', () => {
    const pair = fc
      .tuple(batteryArb('b0'), between(0, 100), between(0, 100), kw(12_000))
      .map(([b, soe0, soe1, powerKw]): SitePlanInput => ({
        site: 's1',
        now: NOW,
        controlPeriodMs: 4000,
        maxTelemetryAgeMs: 30_000,
        batteries: [0, 1].map((i) => ({
          ...b,
          deviceId: `b${i}`,
          soePercent: i === 0 ? soe0 : soe1,
          telemetryTime: NOW,
          manual: undefined,
        })),
        instruction: { id: 'i1', target: { site: 's1' }, command: { powerKw } },
      }));
    fc.assert(
      fc.property(pair, (input) => {
        const [s0, s1] = planSite(input).setpoints;
        const [b0, b1] = input.batteries;
        const discharging = (input.instruction!.command as { powerKw: number }).powerKw > 0;
        // Points of SoE open in the direction of travel; both the weight's SoE share (room up to
        // the span, as SoE may lie outside it) and the per-period SoE cap grow with it.
        const room = (b: BatteryPlanInput) => Math.max(0, discharging ? b.soePercent! - b.minSoePercent : b.maxSoePercent - b.soePercent!);
        const share = (b: BatteryPlanInput) => Math.min(b.maxSoePercent - b.minSoePercent, room(b));
        const [more, less] = room(b0!) >= room(b1!) ? [s0!, s1!] : [s1!, s0!];
        expect(Math.abs(more.targetPowerKw)).toBeGreaterThanOrEqual(Math.abs(less.targetPowerKw) - 0.001);
        // A point more of the span weighs at least 1 % more (spans are at most 100 points): ≥ 0.01 kW on 1 kW.
        const clear = Math.abs(share(b0!) - share(b1!)) >= 1 && Math.abs(less.targetPowerKw) >= 1 && more.reasons.length === 0;
        if (clear) expect(Math.abs(more.targetPowerKw)).toBeGreaterThan(Math.abs(less.targetPowerKw));
      }),
      { numRuns: 500 },
    );
  });

  it('keeps every setpoint within rated power scaled by the available inverter blocks', () => {
    fc.assert(
      fc.property(siteArb, (input) => {
        for (const { s, b } of pairs(input, planSite(input))) {
          const share = Math.min(b.availableInverterBlocks ?? b.inverterBlockCount, b.inverterBlockCount) / b.inverterBlockCount;
          expect(s.targetPowerKw).toBeLessThanOrEqual(b.ratedDischargePowerKw * share + TOLERANCE);
          expect(-s.targetPowerKw).toBeLessThanOrEqual(b.ratedChargePowerKw * share + TOLERANCE);
          if (share === 0) expect(s.targetPowerKw).toBe(0);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('never drives a battery past its SoE limits within one control period', () => {
    fc.assert(
      fc.property(siteArb, (input) => {
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
      }),
      { numRuns: 500 },
    );
  });

  it('holds a battery with stale or missing telemetry at 0 kW as FAILSAFE and says why', () => {
    fc.assert(
      fc.property(siteArb, (input) => {
        for (const { s, b } of pairs(input, planSite(input))) {
          const why =
            b.telemetryTime === undefined
              ? 'telemetry missing'
              : ageS(b, input.now) * 1000 > input.maxTelemetryAgeMs
                ? `telemetry stale ${Math.floor(ageS(b, input.now))} s`
                : b.soePercent === undefined
                  ? 'telemetry missing SoE'
                  : undefined;
          expect(s.held).toBe(why !== undefined);
          if (why !== undefined) expect(s).toMatchObject({ targetPowerKw: 0, source: 'FAILSAFE', reasons: [why] });
        }
      }),
      { numRuns: 300 },
    );
  });

  it('grows a setpoint away from 0 kW by at most the ramp rate per period, from 0 kW when it changes direction', () => {
    fc.assert(
      fc.property(siteArb, (input) => {
        for (const { s, b } of pairs(input, planSite(input))) {
          if (s.held || b.rampRateKwPerS === 0) continue;
          const step = (b.rampRateKwPerS * input.controlPeriodMs) / 1000;
          // A move toward 0 kW is immediate; rounding toward zero only shrinks a setpoint.
          expect(s.targetPowerKw).toBeLessThanOrEqual(Math.max(0, b.previousSetpointKw) + step + TOLERANCE);
          expect(s.targetPowerKw).toBeGreaterThanOrEqual(Math.min(0, b.previousSetpointKw) - step - TOLERANCE);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('rounds every setpoint to 0.001 kW and accounts for every undelivered kW', () => {
    fc.assert(
      fc.property(siteArb, (input) => {
        const plan = planSite(input);
        for (const s of plan.setpoints)
          expect(Math.abs(s.targetPowerKw * 1000 - Math.round(s.targetPowerKw * 1000))).toBeLessThan(TOLERANCE);
        for (const t of plan.targets) {
          const parts = t.undelivered.reduce((a, p) => a + p.kw, 0);
          expect(Math.abs(parts - t.undeliveredKw)).toBeLessThanOrEqual(0.001 * (t.undelivered.length + 1) + TOLERANCE);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('plans the same input the same way whatever the order of its batteries', () => {
    fc.assert(
      fc.property(siteArb, (input) => {
        const plan = planSite(input);
        expect(planSite(input)).toEqual(plan);
        expect(planSite({ ...input, batteries: [...input.batteries].reverse() })).toEqual(plan);
      }),
      { numRuns: 300 },
    );
  });
});
