/**
 * NIV chase: when the system is short and the imbalance price high, discharge toward a
 * low SoE; when long and the price low, charge toward a high SoE; sized so the energy is
 * moved by the end of the current 30-minute settlement period.
 */
import type { ReadyBattery } from './planner-envelope.ts';
import type { NivChaseInput } from './planner.types.ts';

/** Length of a settlement period in ms; periods start on the UTC hour and half hour. */
export const SETTLEMENT_PERIOD_MS = 30 * 60 * 1000;

/** Milliseconds from `now` to the end of its settlement period, in (0, 30 min]. */
export function msLeftInSettlementPeriod(now: Date): number {
  const into = ((now.getTime() % SETTLEMENT_PERIOD_MS) + SETTLEMENT_PERIOD_MS) % SETTLEMENT_PERIOD_MS;
  return SETTLEMENT_PERIOD_MS - into;
}

/** NIV chase's proposal: active with a request, or inactive with the reason. */
export type NivChaseProposal =
  { active: true; side: 'short' | 'long'; requestKw: number; energyKwh: number } | { active: false; note: string };

/**
 * Proposes a site power from the NIV estimate and imbalance price. The size is the energy
 * between the batteries' SoE and the target SoE (default: each battery's min when short,
 * max when long, never past them) divided by the time left in the settlement period, at
 * least one control period. Limits are applied later by the planner.
 */
export function proposeNivChase(
  niv: NivChaseInput | undefined,
  batteries: readonly ReadyBattery[],
  now: Date,
  controlPeriodMs: number,
): NivChaseProposal {
  if (niv === undefined || !niv.enabled) return { active: false, note: 'niv chase: off' };
  if (niv.imbalancePrice === undefined) return { active: false, note: 'niv chase: no imbalance price' };
  if (niv.nivEstimateMw === undefined) return { active: false, note: 'niv chase: no NIV estimate' };
  const short = niv.nivEstimateMw > niv.nivThresholdMw && niv.imbalancePrice >= niv.shortPriceThreshold;
  const long = niv.nivEstimateMw < -niv.nivThresholdMw && niv.imbalancePrice <= niv.longPriceThreshold;
  if (!short && !long) {
    return {
      active: false,
      note: `niv chase: NIV ${niv.nivEstimateMw} MW at ${niv.imbalancePrice} £/MWh is within thresholds`,
    };
  }
  let energyKwh = 0;
  for (const b of batteries) {
    const target = short
      ? Math.max(b.minSoePercent, niv.targetSoePercent?.short ?? b.minSoePercent)
      : Math.min(b.maxSoePercent, niv.targetSoePercent?.long ?? b.maxSoePercent);
    const percent = short ? b.soePercent - target : target - b.soePercent;
    energyKwh += (b.capacityKwh * Math.max(0, percent)) / 100;
  }
  const hoursLeft = Math.max(msLeftInSettlementPeriod(now), controlPeriodMs) / 3_600_000;
  const sizeKw = energyKwh / hoursLeft;
  return { active: true, side: short ? 'short' : 'long', requestKw: short ? sizeKw : -sizeKw, energyKwh };
}
