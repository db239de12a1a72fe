/**
 * Setpoint events on every replica. The owner of a battery publishes its events on its own
 * bus directly; its recorder's insert NOTIFYs `{k:'events', from, min, max}` in the same
 * statement, and every other replica, on that message, fetches the batch from
 * `powerplane.setpoint_events` (`id between min and max and replica = from`, in id order)
 * and publishes it on its local bus. WatchSetpoints on any replica so sees every event of
 * the fleet, with the bus's own filters and slow-watcher policy.
 */
import type { Kysely } from 'kysely';
import * as repo from '../dispatch/dispatch.repository.ts';
import type { DispatchTables } from '../dispatch/dispatch.table.ts';
import type { SetpointBus } from '../dispatch/setpoint-events.ts';
import type { Logger } from '../logger.ts';
import type { ClusterMessage } from '../cluster/cluster.types.ts';

/** Rows fetched per query: a batch of a large site's burst is read in a few pages, never all at once. */
export const FANOUT_PAGE_ROWS = 2_000;

/**
 * Most rows fetched for one message. The recorder inserts at most its backlog bound
 * (20 000 events) at once, so a larger range is not one of its batches; the rest is not
 * fetched, and the loss is logged.
 */
export const FANOUT_MAX_RANGE_ROWS = 20_000;

/** Ranges waiting to be fetched, at most; beyond it the oldest are dropped (logged). */
export const FANOUT_MAX_PENDING = 1_000;

/** Fetches other replicas' setpoint events and publishes them on the local bus. */
export interface SetpointFanout {
  /**
   * Takes a cluster message: `{k:'events'}` from another replica queues its range; every
   * other message, and this replica's own events, are ignored. Ranges are fetched one at a
   * time, in the order their messages arrived, so each replica's events reach the bus in id
   * order.
   */
  onMessage(message: ClusterMessage): void;
  /**
   * The listening connection was re-established. Events whose messages were missed while it
   * was down are not fetched: they are lost to live watchers of this replica (they are in
   * `powerplane.setpoint_events`, where a watcher can read the history). Nothing else
   * changes; later messages are handled as usual.
   */
  onResync(): void;
  /** Resolves once every range queued so far has been published (or given up). */
  idle(): Promise<void>;
  /** Stops: ranges not yet fetched are dropped; resolves once the fetch in flight ended. Idempotent. */
  stop(): Promise<void>;
}

/** Dependencies of {@link createSetpointFanout}. */
export interface SetpointFanoutDeps {
  readonly db: Kysely<object>;
  /** This replica's bus, the one its WatchSetpoints streams read. */
  readonly bus: SetpointBus;
  /** This replica's id: its own events are on its bus already. */
  readonly replicaId: string;
  readonly log: Logger;
}

type EventsMessage = Extract<ClusterMessage, { k: 'events' }>;

/**
 * Creates the fan-out. Wire it to the cluster notifications: `subscribe(fanout.onMessage)`
 * and `onResync(fanout.onResync)`; stop it before the database closes.
 */
export function createSetpointFanout(deps: SetpointFanoutDeps): SetpointFanout {
  const db = deps.db.withTables<DispatchTables>();
  const log = deps.log;
  let pending: EventsMessage[] = [];
  let running: Promise<void> | undefined;
  let stopped = false;

  async function fetchAndPublish(m: EventsMessage): Promise<void> {
    let from = m.min;
    let fetched = 0;
    while (!stopped && from <= m.max) {
      const limit = Math.min(FANOUT_PAGE_ROWS, FANOUT_MAX_RANGE_ROWS - fetched);
      if (limit <= 0) {
        log.warn({ from: m.from, min: m.min, max: m.max, fetched }, 'setpoint event range too large: the rest not published here');
        return;
      }
      const page = await repo.findSetpointEventsOf(db, m.from, from, m.max, limit);
      if (stopped) return;
      for (const { id: _id, ...record } of page) deps.bus.publish(record);
      fetched += page.length;
      if (page.length < limit) return;
      from = page[page.length - 1]!.id + 1;
    }
  }

  async function drain(): Promise<void> {
    while (!stopped && pending.length > 0) {
      const m = pending.shift()!;
      await fetchAndPublish(m).catch((err: Error) =>
        log.error({ err: err.message, from: m.from, min: m.min, max: m.max }, "another replica's setpoint events not published here"),
      );
    }
    running = undefined;
  }

  return {
    onMessage(message) {
      if (stopped || message.k !== 'events' || message.from === deps.replicaId) return;
      const { min, max } = message;
      if (!Number.isSafeInteger(min) || !Number.isSafeInteger(max) || min > max || min < 1) {
        log.warn({ from: message.from, min, max }, 'setpoint event range malformed: ignored');
        return;
      }
      pending.push(message);
      if (pending.length > FANOUT_MAX_PENDING) {
        const lost = pending.splice(0, pending.length - FANOUT_MAX_PENDING);
        log.error({ ranges: lost.length }, 'setpoint event fan-out backlog full: oldest ranges not published here');
      }
      running ??= drain();
    },
    onResync() {
      log.warn('cluster notifications reconnected: setpoint events of other replicas sent meanwhile are not published here');
    },
    async idle() {
      while (running) await running;
    },
    async stop() {
      stopped = true;
      pending = [];
      while (running) await running;
    },
  };
}
