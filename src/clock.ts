/**
 * The control loop's clock: monotonic time and one-shot timers. The loop's parts take it as
 * a dependency, so their timing (periods, leases, instruction boundaries, the bounded stop)
 * is tested with a fake clock; {@link SYSTEM_CLOCK} is the process's own.
 */

/** A timer made by {@link Clock.setTimeout}; only its own clock can clear it. */
export type ClockTimer = unknown;

/** Monotonic time and one-shot timers. */
export interface Clock {
  /** Milliseconds on a monotonic scale: differences are elapsed time, never moved by a wall-clock change. */
  now(): number;
  /** Calls `callback` once, `ms` from now. */
  setTimeout(callback: () => void, ms: number): ClockTimer;
  /** Cancels a timer; an undefined, fired or cleared timer is left alone. */
  clearTimeout(timer: ClockTimer | undefined): void;
}

/**
 * `performance.now()` and Node's timers. Its timers are unref'd: a control loop's timer
 * never keeps a process alive on its own (the server's listener does while it serves).
 */
export const SYSTEM_CLOCK: Clock = Object.freeze({
  now: () => performance.now(),
  setTimeout: (callback: () => void, ms: number): ClockTimer => setTimeout(callback, ms).unref(),
  clearTimeout: (timer: ClockTimer | undefined): void => clearTimeout(timer as NodeJS.Timeout | undefined),
});
