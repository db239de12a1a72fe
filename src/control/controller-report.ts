import { Gauge, type Registry as MetricsRegistry } from 'prom-client';
import type { Logger } from '../logger.ts';
import type { SitePlan } from '../planner/planner.types.ts';

/** A site's undelivered power is logged again when it moves by at least this, kW (or its reasons change). */
const UNDELIVERED_LOG_STEP_KW = 1;

/** What the control loop tells operators about each site's plan, as metrics and logs. */
export interface PlanReport {
  /** Exports how many of a site's batteries report a control other than the one intended. */
  mismatches(site: string, count: number): void;
  /**
   * Exports what a site's plan asks for, plans and cannot deliver, and logs the shortfall
   * with its reasons and the planner's notes when they change (the amount by at least
   * {@link UNDELIVERED_LOG_STEP_KW}), not every period.
   */
  plan(plan: SitePlan): void;
}

/** Creates the report; its gauges are registered in `metricsRegistry` (reused when started again). */
export function createPlanReport(metricsRegistry: MetricsRegistry | undefined, log: Logger): PlanReport {
  const siteGauge = (name: string, help: string): Gauge<'site'> =>
    // A controller started again in the same process reuses the gauges it registered before.
    (metricsRegistry?.getSingleMetric(name) as Gauge<'site'> | undefined) ??
    new Gauge({ name, help, labelNames: ['site'], registers: metricsRegistry ? [metricsRegistry] : [] });
  const mismatchGauge = siteGauge(
    'powerplane_command_source_mismatch',
    'Batteries per site whose reported control (remote or own) differs from the source Powerplane intends.',
  );
  const requestedGauge = siteGauge(
    'powerplane_dispatch_requested_kw',
    "Power the components of a site's plan ask for, kW (+ discharge, 0 when idle).",
  );
  const plannedGauge = siteGauge('powerplane_dispatch_planned_kw', 'Sum of the setpoints planned for a site, kW (+ discharge).');
  const undeliveredGauge = siteGauge(
    'powerplane_dispatch_undelivered_kw',
    'Requested minus planned power of a site, kW, signed like the request: what its batteries cannot deliver now.',
  );
  /** The last logged shortfall per site, so a change is logged once, not every period. */
  const shortfalls = new Map<string, { kw: number; key: string }>();

  return {
    mismatches: (site, count) => mismatchGauge.set({ site }, count),
    plan(plan) {
      const site = plan.site;
      requestedGauge.set({ site }, plan.requestedKw ?? 0);
      plannedGauge.set({ site }, plan.deliveredKw);
      undeliveredGauge.set({ site }, plan.undeliveredKw);
      const key = JSON.stringify([
        plan.targets.map((t) => [t.component, t.scope, t.instructionId, t.undelivered.map((p) => p.reason)]),
        plan.notes,
      ]);
      const last = shortfalls.get(site);
      if (
        last &&
        last.key === key &&
        Math.abs(last.kw - plan.undeliveredKw) < UNDELIVERED_LOG_STEP_KW &&
        (last.kw === 0) === (plan.undeliveredKw === 0)
      )
        return;
      shortfalls.set(site, { kw: plan.undeliveredKw, key });
      if (!last && plan.undeliveredKw === 0 && plan.notes.length === 0) return;
      const fields = {
        site,
        component: plan.component,
        requestedKw: plan.requestedKw ?? 0,
        plannedKw: plan.deliveredKw,
        undeliveredKw: plan.undeliveredKw,
        undelivered: plan.undeliveredReasons,
        notes: plan.notes,
      };
      log.info(
        fields,
        plan.undeliveredKw === 0 ? 'site plan delivers what is requested' : 'site plan cannot deliver all that is requested',
      );
    },
  };
}
