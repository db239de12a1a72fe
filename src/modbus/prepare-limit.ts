/**
 * How many setpoint writers of this process may connect and prepare a device (discovery,
 * scale factors, arming) at once. A fleet's writers are made together — a replica's first
 * plan, shards taken over after a failover — and thousands of connections and discoveries
 * at the same moment time out on a busy device server and hold the event loop; past the
 * limit a writer waits its turn, and a setpoint superseded meanwhile is never written.
 */

/** Writers connecting and preparing at once, per process. */
export const MAX_PREPARING = 100;

let active = 0;
const waiting: Array<() => void> = [];

/**
 * Runs `work` once fewer than {@link MAX_PREPARING} others run; the turn passes on however
 * it ends. A writer that stops while it waits (`signal` aborted) leaves the queue at once
 * without running `work` (undefined), so a stop is never held up behind other writers'
 * connections to unreachable devices.
 */
export async function withPrepareTurn<T>(work: () => Promise<T>, signal?: AbortSignal): Promise<T | undefined> {
  if (signal?.aborted) return undefined;
  if (active >= MAX_PREPARING) {
    const turn = await new Promise<boolean>((resolve) => {
      const take = () => {
        signal?.removeEventListener('abort', leave);
        resolve(true);
      };
      const leave = () => {
        const at = waiting.indexOf(take);
        if (at >= 0) waiting.splice(at, 1);
        resolve(false);
      };
      waiting.push(take);
      signal?.addEventListener('abort', leave, { once: true });
    });
    if (!turn) return undefined;
  } else active++;
  try {
    return await work();
  } finally {
    const next = waiting.shift();
    if (next) next();
    else active--;
  }
}

/** Writers waiting for a turn now. */
export const preparingQueue = (): number => waiting.length;
