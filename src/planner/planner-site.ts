/**
 * The site meter as the planner uses it: the site's load without its batteries, the
 * import/export limit clamp, and the power that avoids import or export.
 */
import type { BatteryPlanInput, SitePlanInput } from './planner.types.ts';

/** The site's load in kW without its batteries, or why it is unknown. */
export type SiteLoad = { loadKw: number } | { unknown: string };

/** Describes how old a reading is, in whole seconds, e.g. `stale 12 s`. */
export function staleness(time: Date | undefined, now: Date, maxAgeMs: number): string | undefined {
  if (time === undefined) return 'missing';
  const ageMs = now.getTime() - time.getTime();
  return ageMs > maxAgeMs ? `stale ${Math.floor(ageMs / 1000)} s` : undefined;
}

/**
 * Reads the site's load: metered power (+ import) plus every battery's previous setpoint,
 * taken as what the batteries are doing now (a discharge lowers the metered import).
 * `batteries` must be sorted so the sum does not depend on the input's order.
 */
export function readSiteLoad(input: SitePlanInput, batteries: readonly BatteryPlanInput[]): SiteLoad {
  const stale = staleness(input.sitePowerTime, input.now, input.maxTelemetryAgeMs);
  if (input.sitePowerKw === undefined || stale !== undefined) {
    return { unknown: `site meter ${input.sitePowerKw === undefined ? 'missing' : stale}` };
  }
  let load = input.sitePowerKw;
  for (const b of batteries) load += b.previousSetpointKw;
  return { loadKw: load };
}

/** A request after the site limits, and the limit that changed it. */
export interface SiteClamp {
  /** The allowed power in kW: the request moved toward zero, never past it. */
  kw: number;
  /** The limit that bound it, if any. */
  reason?: string;
}

/**
 * Limits a request so the site stays within its import and export limits, given the
 * setpoints already planned for other batteries (`plannedKw`). It only shrinks a request
 * toward zero: it never creates power to cure an existing breach (that is avoidance's
 * job). Without a usable meter reading a limited direction is blocked altogether.
 */
export function clampToSiteLimits(
  requestKw: number,
  plannedKw: number,
  load: SiteLoad,
  limits: Pick<SitePlanInput, 'importLimitKw' | 'exportLimitKw'>,
): SiteClamp {
  if (requestKw > 0 && limits.exportLimitKw !== undefined) {
    if ('unknown' in load) return { kw: 0, reason: `site export limit (${load.unknown})` };
    const room = Math.max(0, load.loadKw + limits.exportLimitKw - plannedKw);
    if (requestKw > room) return { kw: room, reason: 'site export limit' };
  }
  if (requestKw < 0 && limits.importLimitKw !== undefined) {
    if ('unknown' in load) return { kw: 0, reason: `site import limit (${load.unknown})` };
    const room = Math.min(0, load.loadKw - limits.importLimitKw - plannedKw);
    if (requestKw < room) return { kw: room, reason: 'site import limit' };
  }
  return { kw: requestKw };
}

/**
 * The battery power that brings the site's import (`avoid: 'import'`, a discharge ≥ 0) or
 * export (`'export'`, a charge ≤ 0) to zero, given the setpoints already planned.
 */
export function avoidanceKw(avoid: 'import' | 'export', plannedKw: number, load: { loadKw: number }): number {
  const net = load.loadKw - plannedKw;
  return avoid === 'import' ? Math.max(0, net) : Math.min(0, net);
}
