/**
 * A first-come, first-served lock. PGlite is one connection, so every session that may
 * span several statements (a transaction, a migration under its advisory lock) holds this
 * for its whole length; otherwise two callers' statements would interleave.
 */
export interface Mutex {
  /** Waits for the lock and returns the function that releases it (call it once). */
  acquire(): Promise<() => void>;
}

/** Creates an unlocked {@link Mutex}. */
export function createMutex(): Mutex {
  let tail: Promise<void> = Promise.resolve();
  return {
    acquire() {
      let release!: () => void;
      const held = new Promise<void>((resolve) => (release = resolve));
      const ready = tail.then(() => release);
      tail = tail.then(() => held);
      return ready;
    },
  };
}
