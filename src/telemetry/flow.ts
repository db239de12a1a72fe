/**
 * Flow control for ingest streams: a counting semaphore, and a pump that reads a request
 * stream only while it holds capacity, so a client faster than the database is slowed by
 * HTTP/2 flow control instead of filling the server's memory.
 */

/** A counting semaphore. */
export interface Semaphore {
  /** Waits for a permit; returns the function that gives it back (call once). */
  acquire(): Promise<() => void>;
  /** Permits held now. */
  readonly inUse: number;
  /** The most permits held at once so far. */
  readonly peak: number;
}

/** Creates a semaphore of `permits`. */
export function createSemaphore(permits: number): Semaphore {
  let inUse = 0;
  let peak = 0;
  const waiters: (() => void)[] = [];
  const release = () => {
    const next = waiters.shift();
    if (next) next();
    else inUse--;
  };
  const grant = () => {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      release();
    };
  };
  return {
    acquire() {
      if (inUse < permits) {
        inUse++;
        peak = Math.max(peak, inUse);
        return Promise.resolve(grant());
      }
      return new Promise((resolve) => waiters.push(() => resolve(grant())));
    },
    get inUse() {
      return inUse;
    },
    get peak() {
      return peak;
    },
  };
}

/** Limits of {@link pumpStream}. */
export interface PumpLimits {
  /** Messages of this stream being handled at once. */
  readonly perStream: number;
  /** Shared by every stream: messages being handled at once in total. */
  readonly global: Semaphore;
}

/**
 * Reads `requests` one message at a time, only when this stream holds fewer than
 * `perStream` messages in hand and a global permit is free, hands each to `handle`
 * (which may resolve out of order) and yields the results as they resolve. A message
 * read waits for its global permit in hand, so a stream holds at most `perStream`
 * messages. The first failure (of `handle` or of the request stream) ends the output
 * with that error once the messages in hand have settled.
 */
export async function* pumpStream<In, Out>(
  requests: AsyncIterable<In>,
  handle: (message: In) => Promise<Out | undefined>,
  limits: PumpLimits,
): AsyncGenerator<Out> {
  const local = createSemaphore(limits.perStream);
  const ready: Out[] = [];
  let failure: { err: unknown } | undefined;
  let readerDone = false;
  let inHand = 0;
  let wake: (() => void) | undefined;
  const notify = () => {
    wake?.();
    wake = undefined;
  };

  const reader = (async () => {
    const iterator = requests[Symbol.asyncIterator]();
    try {
      while (!failure) {
        const releaseLocal = await local.acquire();
        if (failure) {
          releaseLocal();
          break;
        }
        const next = await iterator.next();
        if (next.done) {
          releaseLocal();
          break;
        }
        inHand++;
        const releaseGlobal = await limits.global.acquire();
        handle(next.value)
          .then(
            (out) => {
              if (out !== undefined) ready.push(out);
            },
            (err: unknown) => {
              failure ??= { err };
            },
          )
          .finally(() => {
            inHand--;
            releaseGlobal();
            releaseLocal();
            notify();
          });
      }
    } catch (err) {
      failure ??= { err };
    } finally {
      readerDone = true;
      notify();
      if (failure) await iterator.return?.().catch(() => undefined);
    }
  })();

  try {
    for (;;) {
      while (ready.length > 0) yield ready.shift()!;
      if (failure && inHand === 0) throw failure.err;
      if (readerDone && inHand === 0) break;
      await new Promise<void>((resolve) => (wake = resolve));
    }
  } finally {
    // The reader stops at its next step; it is not awaited, as it may wait on a silent client.
    failure ??= { err: new Error('stream closed') };
    void reader;
  }
}
