/**
 * The power window a battery may be given this control period: its rated power scaled by
 * the inverter blocks available, the room left to its SoE limits within one period, and
 * its ramp rate around the previous setpoint. Each edge says which limit set it.
 */
import type { BatteryPlanInput } from './planner.types.ts';

/** A battery with fresh telemetry, ready to be planned with. */
export interface ReadyBattery extends BatteryPlanInput {
  /** Latest state of energy in percent. */
  soePercent: number;
}

/** Magnitudes in kW (≥ 0) per direction of travel. */
export interface DirectionKw {
  /** Most discharge power. */
  discharge: number;
  /** Most charge power, as a magnitude. */
  charge: number;
}

/** A battery's window for one period, and the capacities it was derived from. */
export interface BatteryEnvelope {
  /** The battery's UUID. */
  deviceId: string;
  /** Nameplate power with every block available. */
  rated: DirectionKw;
  /** Rated power × available blocks ÷ block count. */
  blocks: DirectionKw;
  /** `blocks` further limited so one period cannot cross the SoE limits. */
  soe: DirectionKw;
  /** Lowest setpoint in kW (≤ 0 unless the ramp forces a discharge). */
  lo: number;
  /** Highest setpoint in kW (≥ 0 unless the ramp forces a charge). */
  hi: number;
  /** The limit that sets `lo`, e.g. `max SoE`. */
  loReason: string;
  /** The limit that sets `hi`, e.g. `min SoE`. */
  hiReason: string;
  /** True when SoE or rated limits left no power the ramp allows, collapsing the window to one point. */
  overridesRamp: boolean;
}

/**
 * Computes a battery's window. SoE and rated limits win over the ramp: when the ramp
 * window around the previous setpoint lies outside them, the window collapses to the
 * nearest allowed power and the reason says the ramp was overridden.
 */
export function batteryEnvelope(b: ReadyBattery, controlPeriodMs: number): BatteryEnvelope {
  const hours = controlPeriodMs / 3_600_000;
  const count = b.inverterBlockCount;
  const available = Math.min(count, Math.max(0, b.availableInverterBlocks ?? count));
  const share = available / count;
  const rated = { discharge: b.ratedDischargePowerKw, charge: b.ratedChargePowerKw };
  const blocks = { discharge: rated.discharge * share, charge: rated.charge * share };
  const dischargeKwh = (b.capacityKwh * Math.max(0, b.soePercent - b.minSoePercent)) / 100;
  const chargeKwh = (b.capacityKwh * Math.max(0, b.maxSoePercent - b.soePercent)) / 100;
  const soe = {
    discharge: Math.min(blocks.discharge, dischargeKwh / hours),
    charge: Math.min(blocks.charge, chargeKwh / hours),
  };
  const blockLabel = `inverter blocks (${available} of ${count} available)`;
  const hiSafety =
    soe.discharge < blocks.discharge ? 'min SoE' : available < count ? blockLabel : 'rated discharge power';
  const loSafety = soe.charge < blocks.charge ? 'max SoE' : available < count ? blockLabel : 'rated charge power';
  const window = { deviceId: b.deviceId, rated, blocks, soe, overridesRamp: false };
  const lo0 = -soe.charge;
  const hi0 = soe.discharge;
  if (b.rampRateKwPerS <= 0) return { ...window, lo: lo0, hi: hi0, loReason: loSafety, hiReason: hiSafety };
  const step = (b.rampRateKwPerS * controlPeriodMs) / 1000;
  const rampLo = b.previousSetpointKw - step;
  const rampHi = b.previousSetpointKw + step;
  if (rampLo > hi0) {
    const reason = `${hiSafety} (overrides ramp rate)`;
    return { ...window, lo: hi0, hi: hi0, loReason: reason, hiReason: reason, overridesRamp: true };
  }
  if (rampHi < lo0) {
    const reason = `${loSafety} (overrides ramp rate)`;
    return { ...window, lo: lo0, hi: lo0, loReason: reason, hiReason: reason, overridesRamp: true };
  }
  return {
    ...window,
    lo: Math.max(lo0, rampLo),
    hi: Math.min(hi0, rampHi),
    loReason: rampLo > lo0 ? 'ramp rate' : loSafety,
    hiReason: rampHi < hi0 ? 'ramp rate' : hiSafety,
  };
}
