/**
 * Builders for planner tests: a 100 kW / 200 kWh battery with two inverter blocks at 50 %
 * SoE (limits 10–90 %), and a site of such batteries planned at 12:10 UTC, 20 minutes
 * before the end of its settlement period, with a 4 s control period.
 */
import type { BatteryPlanInput, SitePlan, SitePlanInput } from './planner.types.ts';

/** The planning instant of every fixture. */
export const NOW = new Date('2025-03-01T12:10:00Z');

/** A time `seconds` before {@link NOW}. */
export function ago(seconds: number): Date {
  return new Date(NOW.getTime() - seconds * 1000);
}

/** A battery with fresh telemetry, overridable field by field. */
export function battery(deviceId: string, over: Partial<BatteryPlanInput> = {}): BatteryPlanInput {
  return {
    deviceId,
    ratedChargePowerKw: 100,
    ratedDischargePowerKw: 100,
    capacityKwh: 200,
    minSoePercent: 10,
    maxSoePercent: 90,
    inverterBlockCount: 2,
    availableInverterBlocks: 2,
    rampRateKwPerS: 0,
    soePercent: 50,
    telemetryTime: ago(1),
    previousSetpointKw: 0,
    ...over,
  };
}

/** Site `s1` with batteries `b1` and `b2` unless given, overridable field by field. */
export function site(over: Partial<SitePlanInput> = {}): SitePlanInput {
  return {
    site: 's1',
    now: NOW,
    controlPeriodMs: 4000,
    maxTelemetryAgeMs: 30_000,
    batteries: [battery('b1'), battery('b2')],
    ...over,
  };
}

/** A site-level instruction `i1` for a power in kW. */
export function sitePower(powerKw: number): SitePlanInput['instruction'] {
  return { id: 'i1', target: { site: 's1' }, command: { powerKw } };
}

/** Setpoints as `deviceId → kW`, for compact assertions. */
export function kwById(plan: SitePlan): Record<string, number> {
  return Object.fromEntries(plan.setpoints.map((s) => [s.deviceId, s.targetPowerKw]));
}
