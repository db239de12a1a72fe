/**
 * State-of-energy target: when nothing higher is active, move the site's batteries toward
 * a configured SoE.
 */
import type { ReadyBattery } from './planner-envelope.ts';

/**
 * Proposes a site power (positive = discharge) that moves the batteries' combined energy to
 * `percent` (kept within each battery's min/max) within one control period, capped at
 * `maxPowerKw`. Returns undefined when the batteries are within 0.0005 kW of the target.
 */
export function proposeSoeTarget(
  target: { percent: number; maxPowerKw: number } | undefined,
  batteries: readonly ReadyBattery[],
  controlPeriodMs: number,
): number | undefined {
  if (target === undefined) return undefined;
  let energyKwh = 0;
  for (const b of batteries) {
    const goal = Math.min(b.maxSoePercent, Math.max(b.minSoePercent, target.percent));
    energyKwh += (b.capacityKwh * (b.soePercent - goal)) / 100;
  }
  const kw = Math.min(target.maxPowerKw, Math.max(-target.maxPowerKw, energyKwh / (controlPeriodMs / 3_600_000)));
  return Math.abs(kw) < 0.0005 ? undefined : kw;
}
