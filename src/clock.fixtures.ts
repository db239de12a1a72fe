/**
 * A fake {@link Clock} for the control loop's unit tests: time stands still until the test
 * moves it, and moving it fires the timers that fall due, in order.
 */
import type { Clock, ClockTimer } from './clock.ts';

/** A clock moved by hand. */
export interface FakeClock extends Clock {
  /**
   * Moves time forward by `ms`, firing every timer due on the way at its own time (a timer
   * set by a callback fires too if it falls due), and lets promise callbacks run after each.
   */
  advance(ms: number): Promise<void>;
  /** Timers set and not yet fired or cleared. */
  pending(): number;
}

interface Timer {
  at: number;
  order: number;
  callback: () => void;
}

/** Lets queued promise callbacks run (a few turns, for chains of awaits). */
export async function settle(turns = 20): Promise<void> {
  for (let i = 0; i < turns; i++) await Promise.resolve();
}

/** Creates a fake clock starting at `start` ms. */
export function createFakeClock(start = 1_000): FakeClock {
  let now = start;
  let order = 0;
  const timers = new Set<Timer>();
  const due = (until: number): Timer | undefined =>
    [...timers].filter((t) => t.at <= until).sort((a, b) => a.at - b.at || a.order - b.order)[0];
  return {
    now: () => now,
    setTimeout(callback, ms): ClockTimer {
      const timer: Timer = { at: now + Math.max(0, ms), order: order++, callback };
      timers.add(timer);
      return timer;
    },
    clearTimeout(timer) {
      timers.delete(timer as Timer);
    },
    async advance(ms) {
      const until = now + ms;
      // Bounded: a callback that sets a zero-delay timer each time would otherwise never end.
      for (let fired = 0; fired < 10_000; fired++) {
        const next = due(until);
        if (!next) break;
        timers.delete(next);
        now = next.at;
        next.callback();
        await settle();
      }
      now = until;
      await settle();
    },
    pending: () => timers.size,
  };
}
