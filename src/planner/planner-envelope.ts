/**
 * The power window a battery may be given this control period: its rated power scaled by
 * the inverter blocks available, the room left to its SoE limits within one period, and
 * its ramp rate. Each edge says which limit set it. The window always contains 0 kW, so
 * every limit can only shrink a setpoint toward zero, never push one past a request.
 */
import type { BatteryPlanInput } from './planner.types.ts';

/** A battery with fresh telemetry, ready to be planned with. */
export interface ReadyBattery extends BatteryPlanInput {
  /** Latest state of energy in percent. */
  soePercent: number;
}

/** Magnitudes (≥ 0) per direction of travel. */
export interface DirectionKw {
  /** For a discharge. */
  discharge: number;
  /** For a charge, as a magnitude. */
  charge: number;
}

/** A battery's window for one period, and the capacities it was derived from. */
export interface BatteryEnvelope {
  /** The battery's UUID. */
  deviceId: string;
  /** Nameplate power in kW with every block available. */
  rated: DirectionKw;
  /** Rated power × available blocks ÷ block count, in kW. */
  blocks: DirectionKw;
  /** `blocks` further limited so one period cannot cross the SoE limits, in kW. */
  soe: DirectionKw;
  /**
   * Share (0–1) of the battery's SoE span (max − min) still open in each direction: to
   * min SoE for a discharge, to max SoE for a charge. Weighs the split across batteries.
   */
  soeRoom: DirectionKw;
  /** Lowest setpoint in kW, ≤ 0. */
  lo: number;
  /** Highest setpoint in kW, ≥ 0. */
  hi: number;
  /** The limit that sets `lo`, e.g. `max SoE`. */
  loReason: string;
  /** The limit that sets `hi`, e.g. `min SoE`. */
  hiReason: string;
}

/** Share of the SoE span left in one direction, given the room in percentage points. */
function spanShare(roomPercent: number, spanPercent: number): number {
  if (roomPercent <= 0) return 0;
  // With min = max, any room at all is the whole span.
  return spanPercent > 0 ? Math.min(1, roomPercent / spanPercent) : 1;
}

/** Computes a battery's window for one control period of `controlPeriodMs`. */
export function batteryEnvelope(b: ReadyBattery, controlPeriodMs: number): BatteryEnvelope {
  const hours = controlPeriodMs / 3_600_000;
  const count = b.inverterBlockCount;
  const available = Math.min(count, Math.max(0, b.availableInverterBlocks ?? count));
  const share = available / count;
  const rated = { discharge: b.ratedDischargePowerKw, charge: b.ratedChargePowerKw };
  const blocks = { discharge: rated.discharge * share, charge: rated.charge * share };
  const toMinPercent = Math.max(0, b.soePercent - b.minSoePercent);
  const toMaxPercent = Math.max(0, b.maxSoePercent - b.soePercent);
  const soe = {
    discharge: Math.min(blocks.discharge, (b.capacityKwh * toMinPercent) / 100 / hours),
    charge: Math.min(blocks.charge, (b.capacityKwh * toMaxPercent) / 100 / hours),
  };
  const span = b.maxSoePercent - b.minSoePercent;
  const soeRoom = { discharge: spanShare(toMinPercent, span), charge: spanShare(toMaxPercent, span) };
  const blockLabel = `inverter blocks (${available} of ${count} available)`;
  const hiSafety = soe.discharge < blocks.discharge ? 'min SoE' : available < count ? blockLabel : 'rated discharge power';
  const loSafety = soe.charge < blocks.charge ? 'max SoE' : available < count ? blockLabel : 'rated charge power';
  const window = { deviceId: b.deviceId, rated, blocks, soe, soeRoom };
  if (b.rampRateKwPerS <= 0) return { ...window, lo: -soe.charge, hi: soe.discharge, loReason: loSafety, hiReason: hiSafety };
  // The ramp rate limits only growth away from 0 kW: a move toward zero is immediate,
  // because less power is always the safe direction (a site or SoE limit reached, an
  // instruction ended). Crossing zero drops to 0 kW at once and then grows by at most one
  // step on the other side. So the window keeps 0 kW and never holds more than asked.
  const step = (b.rampRateKwPerS * controlPeriodMs) / 1000;
  const rampHi = Math.max(0, b.previousSetpointKw) + step;
  const rampLo = Math.min(0, b.previousSetpointKw) - step;
  return {
    ...window,
    lo: Math.max(-soe.charge, rampLo),
    hi: Math.min(soe.discharge, rampHi),
    loReason: rampLo > -soe.charge ? 'ramp rate' : loSafety,
    hiReason: rampHi < soe.discharge ? 'ramp rate' : hiSafety,
  };
}
