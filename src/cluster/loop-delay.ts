import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Gauge, Histogram, type Registry } from 'prom-client';

/** How late this process's event loop has been running. */
export interface LoopDelay {
  /** The longest event-loop delay seen over the current and the previous window, ms. */
  recentMaxMs(): number;
  /** The 99th percentile of the event-loop delay over the previous window, ms. */
  lastP99Ms(): number;
  /** Stops watching. Idempotent. */
  stop(): void;
}

/** Width of one window of event-loop delay. */
export const LOOP_DELAY_WINDOW_MS = 1_000;

/**
 * Watches this process's event-loop delay (`perf_hooks.monitorEventLoopDelay`, 10 ms
 * resolution) in windows of {@link LOOP_DELAY_WINDOW_MS}: each window's longest delay is
 * observed in `powerplane_event_loop_delay_seconds` (a histogram: how many windows had a
 * stall of that size) and its 99th percentile is `powerplane_event_loop_delay_p99_seconds`.
 * A long synchronous task shows as a window whose longest delay is that task's length. The
 * metrics go to `registry` when given; the figures are kept either way for the logs.
 */
export function watchLoopDelay(registry: Registry | undefined): LoopDelay {
  const registers = registry ? [registry] : [];
  const windows = new Histogram({
    name: 'powerplane_event_loop_delay_seconds',
    help: 'Longest event-loop delay of each 1 s window: a window above the lease renewal interval (default 0.5 s) delays renewals.',
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers,
  });
  let p99Ms = 0;
  new Gauge({
    name: 'powerplane_event_loop_delay_p99_seconds',
    help: '99th percentile of the event-loop delay over the last 1 s window.',
    registers,
    collect() {
      this.set(p99Ms / 1_000);
    },
  });
  const delays = monitorEventLoopDelay({ resolution: 10 });
  delays.enable();
  let previousMaxMs = 0;
  const sample = (): void => {
    const maxMs = delays.count > 0 ? delays.max / 1e6 : 0;
    p99Ms = delays.count > 0 ? delays.percentile(99) / 1e6 : 0;
    windows.observe(maxMs / 1_000);
    previousMaxMs = maxMs;
    delays.reset();
  };
  const timer = setInterval(sample, LOOP_DELAY_WINDOW_MS).unref();
  let stopped = false;
  return {
    recentMaxMs: () => Math.max(previousMaxMs, delays.count > 0 ? delays.max / 1e6 : 0),
    lastP99Ms: () => p99Ms,
    stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      delays.disable();
    },
  };
}
