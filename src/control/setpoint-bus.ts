import type { Logger } from '../logger.ts';
import { SYSTEM_CLOCK, type Clock, type ClockTimer } from '../clock.ts';
import type { SetpointBus, SetpointRecord } from '../dispatch/setpoint-events.ts';

/**
 * Creates the in-process fan-out of setpoint events to WatchSetpoints streams. Memory is
 * bounded per watcher: a watcher that cannot keep up loses its oldest events (counted in
 * `dropped`), the writer never waits for it.
 */
export function createSetpointBus(): SetpointBus {
  const watchers = new Set<{ filter: (r: SetpointRecord) => boolean; push: (r: SetpointRecord) => void }>();
  return {
    get subscribers() {
      return watchers.size;
    },
    publish(record) {
      for (const watcher of watchers) if (watcher.filter(record)) watcher.push(record);
    },
    // 10,000: a watcher of a 1000-battery site gets three events per battery in one burst
    // (planned, written, verified), faster than a stream drains; about 2 MB at most.
    subscribe(filter, signal, { maxQueued = 10_000, maxBatch = 500 } = {}) {
      return {
        async *[Symbol.asyncIterator]() {
          // A queue with a moving head: dropping the oldest of a full queue is O(1), so a
          // slow watcher never makes publish (and with it the control loop) slow.
          let queue: SetpointRecord[] = [];
          let head = 0;
          let wake: (() => void) | undefined;
          const watcher = {
            filter,
            push(record: SetpointRecord) {
              if (queue.length - head >= maxQueued) head++;
              queue.push(record);
              if (head >= 1024 && head * 2 >= queue.length) {
                queue = queue.slice(head);
                head = 0;
              }
              wake?.();
            },
          };
          // Unsubscribed at the abort itself, not when the consumer next resumes: a stream
          // whose client vanished may never pull again, and must not keep queueing.
          const onAbort = () => {
            watchers.delete(watcher);
            queue = [];
            head = 0;
            wake?.();
          };
          watchers.add(watcher);
          signal.addEventListener('abort', onAbort);
          try {
            while (!signal.aborted) {
              if (queue.length > head) {
                // One message per burst, not per event: per-message costs (encoding,
                // framing, a write each) made a 3000-event burst take longer to deliver
                // than the batteries took to verify.
                const batch = queue.slice(head, head + maxBatch);
                head += batch.length;
                if (head === queue.length) {
                  queue = [];
                  head = 0;
                }
                yield batch;
                continue;
              }
              await new Promise<void>((resolve) => (wake = resolve));
              wake = undefined;
            }
          } finally {
            watchers.delete(watcher);
            signal.removeEventListener('abort', onAbort);
          }
        },
      };
    },
  };
}

/**
 * How long the recorder gathers events before inserting them, ms. Other replicas' watchers
 * see an event once its insert commits and they fetch it, so this delay is most of their
 * lag behind the owner's own watchers: 20 ms keeps it short while a burst of a large site
 * (three events per battery) still goes in a few inserts, not one per event.
 */
export const EVENT_FLUSH_DELAY_MS = 20;

/** Events inserted at once, without waiting for the delay, when this many wait. */
export const EVENT_BATCH_SIZE = 500;

/** Options of {@link createEventRecorder}. */
export interface EventRecorderOptions {
  /**
   * This replica's id. When given, events that carry no replica are stamped with it, and
   * `insert` is asked to NOTIFY the other replicas of each batch's id range (its
   * `notifyFrom` argument), so their watchers see the events too (`setpoint-fanout.ts`).
   */
  readonly replicaId?: string;
}

/**
 * Appends setpoint events to the audit table in batches (every {@link EVENT_FLUSH_DELAY_MS}
 * or {@link EVENT_BATCH_SIZE} events), so a fleet-wide dispatch costs a few inserts, not
 * one per battery and phase. `insert` stores a batch (and, given `notifyFrom`, NOTIFYs its
 * id range in the same statement: `insertSetpointEvents` with `{ notifyFrom }`). Bounded:
 * beyond 20 000 waiting events (a database outage) the oldest are dropped and the loss is
 * logged. `clock` times the batches; default the system's.
 */
export function createEventRecorder(
  insert: (records: SetpointRecord[], notifyFrom: string | undefined) => Promise<unknown>,
  log: Logger,
  clock: Clock = SYSTEM_CLOCK,
  options: EventRecorderOptions = {},
) {
  const MAX_WAITING = 20_000;
  const { replicaId } = options;
  let waiting: SetpointRecord[] = [];
  let chain: Promise<void> = Promise.resolve();
  let timer: ClockTimer | undefined;
  // Flushes run one after another on `chain`, so stop() awaiting it awaits every insert.
  const flush = (): Promise<void> => {
    clock.clearTimeout(timer);
    timer = undefined;
    chain = chain.then(async () => {
      if (waiting.length === 0) return;
      const batch = waiting;
      waiting = [];
      await insert(batch, replicaId).catch((err: Error) =>
        log.error({ err: err.message, events: batch.length }, 'setpoint events not recorded'),
      );
    });
    return chain;
  };
  return {
    add(record: SetpointRecord) {
      waiting.push(replicaId !== undefined && record.replica === undefined ? { ...record, replica: replicaId } : record);
      if (waiting.length > MAX_WAITING) {
        const lost = waiting.splice(0, waiting.length - MAX_WAITING);
        log.error({ lost: lost.length }, 'setpoint event backlog full: oldest events dropped from the audit table');
      }
      if (waiting.length >= EVENT_BATCH_SIZE) void flush();
      else timer ??= clock.setTimeout(() => void flush(), EVENT_FLUSH_DELAY_MS);
    },
    stop: flush,
  };
}
