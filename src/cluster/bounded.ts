import type { Clock } from '../clock.ts';

/** What {@link bounded} rejects with when its time is up. */
export class BoundedTimeoutError extends Error {
  override readonly name = 'BoundedTimeoutError';
}

/**
 * `work`, or a {@link BoundedTimeoutError} naming `what` once `ms` pass on `clock`: a statement on a
 * blackholed connection must fail, not hang. The statement itself is not cancelled; its
 * connection fails when the network does.
 */
export async function bounded<T>(work: Promise<T>, ms: number, clock: Clock, what: string): Promise<T> {
  let timer: unknown;
  try {
    return await Promise.race([
      work,
      new Promise<never>((_, reject) => {
        timer = clock.setTimeout(() => reject(new BoundedTimeoutError(`${what} took longer than ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clock.clearTimeout(timer);
  }
}
