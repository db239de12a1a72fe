/**
 * How a site's planned setpoints reach the writers: in chunks of batteries, each chunk's
 * changes of intended source stored before any of its setpoints is handed over (the audit
 * never lags a battery), and the next chunk's changes stored while this chunk's batteries
 * are written. A 1000-battery site then starts writing after a quarter of its changes are
 * stored rather than all of them, and no site, however large, holds the event loop (and
 * every other battery's heartbeat) for the whole of its hand-over.
 */

/** Batteries per chunk: a site this size or smaller is stored and handed over at once. */
export const HAND_OVER_CHUNK = 250;

/** What {@link handOver} does with each chunk. */
export interface HandOverSteps<S, C> {
  /**
   * Stores a chunk's changes of intended source; resolves once they are stored: true, or
   * false when they were refused (the site's lease no longer holds).
   */
  record(changes: readonly C[]): Promise<boolean>;
  /** Whether the site's setpoints may still be handed over (its lease still holds); asked before each chunk. */
  mayApply(): boolean;
  /** Hands one setpoint to its battery's writer. */
  apply(setpoint: S): void;
}

/**
 * Stores `changes` and hands `setpoints` over chunk by chunk, in order. Resolves true once
 * every setpoint is handed over, false when a chunk's changes were refused or
 * {@link HandOverSteps.mayApply} said no: the setpoints of that chunk and later ones are
 * not handed over (a store already in flight is still awaited). A failed store rejects,
 * and no later setpoint is handed over.
 */
export async function handOver<S extends { readonly deviceId: string }, C extends { readonly deviceId: string }>(
  setpoints: readonly S[],
  changes: readonly C[],
  steps: HandOverSteps<S, C>,
  chunk = HAND_OVER_CHUNK,
): Promise<boolean> {
  if (setpoints.length === 0) return changes.length === 0 || steps.record(changes);
  const changeOf = new Map(changes.map((c) => [c.deviceId, c]));
  const chunks: S[][] = [];
  for (let i = 0; i < setpoints.length; i += chunk) chunks.push(setpoints.slice(i, i + chunk));
  // Changes of batteries without a setpoint (none today) are stored with the first chunk.
  const planned = new Set(setpoints.map((s) => s.deviceId));
  const unplanned = changes.filter((c) => !planned.has(c.deviceId));
  const changesOf = (k: number) => [...(k === 0 ? unplanned : []), ...chunks[k]!.flatMap((s) => changeOf.get(s.deviceId) ?? [])];
  const store = (k: number) => {
    const of = changesOf(k);
    return of.length > 0 ? steps.record(of) : Promise.resolve(true);
  };
  let stored = store(0);
  for (let k = 0; k < chunks.length; k++) {
    if (!(await stored)) return false;
    if (k + 1 < chunks.length) stored = store(k + 1);
    if (!steps.mayApply()) {
      await stored;
      return false;
    }
    for (const setpoint of chunks[k]!) steps.apply(setpoint);
  }
  return true;
}
