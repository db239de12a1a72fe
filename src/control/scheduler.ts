/**
 * When the control loop plans a site: every period (all sites with active batteries), at
 * once after a poke, and at the site's next instruction start or end or override expiry.
 * One planning of a site runs at a time; a request that comes while one runs marks the site
 * dirty, and it is planned once more right after, however many requests came.
 */
import type { Logger } from '../logger.ts';
import type { Clock, ClockTimer } from '../clock.ts';

/** Boundaries further away than this get no timer; the periods reach them first. */
export const MAX_BOUNDARY_DELAY_MS = 24 * 3_600_000;

/** Margin after a boundary before the site is planned, ms, so the planning's wall time is past it. */
export const BOUNDARY_MARGIN_MS = 5;

/** Dependencies of {@link startScheduler}. */
export interface SchedulerDeps {
  /** Plans one site; a rejection is logged and the next period tries again. */
  readonly plan: (site: string) => Promise<void>;
  /** The sites planned every period; a rejection is logged and the period is skipped. */
  readonly sites: () => Promise<Iterable<string>>;
  /** Runs at the start of every period before planning, on the timer alone (the writers' lease). */
  readonly onPeriod?: () => void;
  /** Time between periods, ms. */
  readonly periodMs: number;
  readonly clock: Clock;
  /** Wall time, which boundaries are given in. */
  readonly now: () => Date;
  readonly log: Logger;
}

/** A running schedule. */
export interface Scheduler {
  /** Plans `site` now, or right after the planning of it in flight; resolves when that run ends. */
  schedule(site: string): Promise<void>;
  /** Plans `site` again at `next` (the site's next boundary), replacing its earlier boundary; none when undefined. */
  boundary(site: string, next: Date | undefined): void;
  /** Stops the periods and boundaries and takes no more requests; planning in flight goes on. */
  stop(): void;
  /** Resolves when the period and every planning in flight have ended. */
  idle(): Promise<void>;
}

/** Starts the schedule: the first period runs at once, the next ones every `periodMs`. */
export function startScheduler(deps: SchedulerDeps): Scheduler {
  const { clock, log } = deps;
  const running = new Map<string, Promise<void>>();
  const dirty = new Set<string>();
  const boundaries = new Map<string, ClockTimer>();
  let stopped = false;

  function schedule(site: string): Promise<void> {
    if (stopped) return Promise.resolve();
    const inFlight = running.get(site);
    if (inFlight) {
      dirty.add(site);
      return inFlight;
    }
    const run = deps
      .plan(site)
      .catch((err: Error) => log.error({ site, err: err.message }, 'planning failed'))
      .finally(() => {
        running.delete(site);
        if (dirty.delete(site) && !stopped) void schedule(site);
      });
    running.set(site, run);
    return run;
  }

  async function tick(): Promise<void> {
    if (stopped) return;
    try {
      await Promise.all([...(await deps.sites())].map(schedule));
    } catch (err) {
      log.error({ err: (err as Error).message }, 'control period failed');
    }
  }

  // Periods never overlap: one whose planning outlasts the period waits for it.
  let ticking: Promise<void> = tick();
  const period = (): void => {
    periodic = clock.setTimeout(period, deps.periodMs);
    deps.onPeriod?.();
    ticking = ticking.then(tick);
  };
  let periodic = clock.setTimeout(period, deps.periodMs);

  return {
    schedule,
    boundary(site, next) {
      clock.clearTimeout(boundaries.get(site));
      boundaries.delete(site);
      if (!next || stopped) return;
      const delay = Math.max(0, next.getTime() - deps.now().getTime()) + BOUNDARY_MARGIN_MS;
      if (delay > MAX_BOUNDARY_DELAY_MS) return;
      boundaries.set(
        site,
        clock.setTimeout(() => {
          boundaries.delete(site);
          void schedule(site);
        }, delay),
      );
    },
    stop() {
      stopped = true;
      clock.clearTimeout(periodic);
      for (const timer of boundaries.values()) clock.clearTimeout(timer);
      boundaries.clear();
    },
    idle: () => Promise.allSettled([ticking, ...running.values()]).then(() => undefined),
  };
}
