/**
 * The energy model shared by simulated batteries: state of energy follows power over time
 * from the capacity; power is limited by the charge/discharge ratings and stops at the SoE
 * limits. Pure state plus a step function, no I/O.
 */

/** Ratings and limits of one simulated battery. */
export interface BatteryRatings {
  /** Discharge and charge rating, W; default 100 kW. */
  ratedPowerW: number;
  /** Usable capacity, Wh; default 200 kWh. */
  capacityWh: number;
  /** Lowest SoE the battery discharges to, %; default 5. */
  soeMinPercent: number;
  /** Highest SoE the battery charges to, %; default 95. */
  soeMaxPercent: number;
}

/** Defaults of {@link BatteryRatings}. */
export const DEFAULT_RATINGS: BatteryRatings = Object.freeze({
  ratedPowerW: 100_000,
  capacityWh: 200_000,
  soeMinPercent: 5,
  soeMaxPercent: 95,
});

/** Mutable energy state of one battery. */
export interface BatteryEnergy {
  soePercent: number;
  /** Cumulative energy discharged (injected), Wh. */
  dischargedWh: number;
  /** Cumulative energy charged (absorbed), Wh. */
  chargedWh: number;
}

/** The power (W, positive = discharge) a battery actually delivers for a commanded power. */
export function limitPower(commandW: number, soePercent: number, r: BatteryRatings): number {
  let w = Math.max(-r.ratedPowerW, Math.min(r.ratedPowerW, commandW));
  if (w > 0 && soePercent <= r.soeMinPercent) w = 0;
  if (w < 0 && soePercent >= r.soeMaxPercent) w = 0;
  return w;
}

/**
 * Advances `energy` by `dtMs` at commanded power `commandW`, clamping SoE at the limits
 * (the battery stops there). Returns the power actually delivered at the end of the step.
 */
export function stepEnergy(energy: BatteryEnergy, commandW: number, dtMs: number, r: BatteryRatings): number {
  const w = limitPower(commandW, energy.soePercent, r);
  if (dtMs <= 0 || w === 0) return w;
  const wh = (w * dtMs) / 3_600_000;
  const next = energy.soePercent - (wh / r.capacityWh) * 100;
  const bounded = w > 0 ? Math.max(r.soeMinPercent, next) : Math.min(r.soeMaxPercent, next);
  const deliveredWh = ((energy.soePercent - bounded) / 100) * r.capacityWh;
  if (deliveredWh > 0) energy.dischargedWh += deliveredWh;
  else energy.chargedWh -= deliveredWh;
  energy.soePercent = bounded;
  return limitPower(commandW, energy.soePercent, r);
}

/** The smallest non-negative power-of-ten exponent that fits `maxAbs` into an int16 register. */
export function fitScaleFactor(maxAbs: number, limit = 32767): number {
  let sf = 0;
  while (maxAbs / 10 ** sf > limit && sf < 10) sf++;
  return sf;
}
