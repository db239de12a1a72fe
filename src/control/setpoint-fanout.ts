/**
 * Setpoint events on every replica. The owner of a battery publishes its events on its own
 * bus directly; its recorder's insert NOTIFYs `{k:'events', from, min, max}` in the same
 * statement, and every other replica, on that message, fetches the batch from
 * `powerplane.setpoint_events` (`id between min and max and replica = from`, in id order)
 * and publishes it on its local bus. WatchSetpoints on any replica so sees every event of
 * the fleet, with the bus's own filters and slow-watcher policy. Notices sent while its
 * listening connection was down are lost; after it listens again the fan-out reads what it
 * missed: each origin's events above the highest id it published of that origin.
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

/**
 * Origins (replicas) whose highest published id is kept, at most: a replica's id is new at
 * every start, so the oldest are let go (their ids then count as seen, see `floor`).
 */
export const FANOUT_MAX_ORIGINS = 1_000;

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
   * The listening connection was re-established: once the ranges queued before it are
   * published, the events other replicas recorded since (each origin's above the highest id
   * published of it; an origin never seen, above the highest id stored when the fan-out
   * started) are fetched and published in id order, at most {@link FANOUT_MAX_RANGE_ROWS}
   * (beyond that the loss is logged). A later message's range is published only above
   * what that read published.
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
  /** Origins whose highest published id is kept; default {@link FANOUT_MAX_ORIGINS}. */
  readonly maxOrigins?: number;
}

type EventsMessage = Extract<ClusterMessage, { k: 'events' }>;
/** What the fan-out does, one at a time in arrival order: a batch's range, or the read after a resync. */
type Job = EventsMessage | { readonly k: 'resync' };

/**
 * Creates the fan-out. Wire it to the cluster notifications: `subscribe(fanout.onMessage)`
 * and `onResync(fanout.onResync)`; stop it before the database closes.
 */
export function createSetpointFanout(deps: SetpointFanoutDeps): SetpointFanout {
  const db = deps.db.withTables<DispatchTables>();
  const log = deps.log;
  let pending: Job[] = [];
  let running: Promise<void> | undefined;
  let stopped = false;
  /** The highest id published of each origin, least recently moved first. */
  const seen = new Map<string, number>();
  /** Every event of an origin not in `seen` up to this id counts as seen: those stored before the start, or of origins let go. */
  let floor: number | undefined;
  const started = repo.latestSetpointEventId(db).then(
    (id) => void (floor = Math.max(floor ?? 0, id)),
    (err: Error) => log.warn({ err: err.message }, 'latest setpoint event id not read: a resync reads only origins already seen'),
  );

  function published(origin: string, id: number): void {
    seen.delete(origin);
    seen.set(origin, id);
    if (seen.size <= (deps.maxOrigins ?? FANOUT_MAX_ORIGINS)) return;
    const [oldest, upTo] = seen.entries().next().value as [string, number];
    seen.delete(oldest);
    floor = Math.max(floor ?? 0, upTo);
  }

  function publish(page: readonly repo.StoredSetpointRecord[]): void {
    for (const { id, ...record } of page) {
      const origin = record.replica!;
      if (id <= (seen.get(origin) ?? 0)) continue;
      deps.bus.publish(record);
      published(origin, id);
    }
  }

  /**
   * Publishes the pages `page(after, limit)` gives, from `after` on, until one is short or
   * {@link FANOUT_MAX_RANGE_ROWS} rows were fetched in all (then `cut` is told, as more may
   * remain). Returns the rows fetched.
   */
  async function publishPages(
    page: (after: number, limit: number) => Promise<repo.StoredSetpointRecord[]>,
    after: number,
    cut: (fetched: number) => void,
  ): Promise<number> {
    let fetched = 0;
    while (!stopped) {
      const limit = Math.min(FANOUT_PAGE_ROWS, FANOUT_MAX_RANGE_ROWS - fetched);
      if (limit <= 0) {
        cut(fetched);
        break;
      }
      const rows = await page(after, limit);
      if (stopped) break;
      publish(rows);
      fetched += rows.length;
      if (rows.length < limit) break;
      after = rows[rows.length - 1]!.id;
    }
    return fetched;
  }

  /** A batch's range, above what was already published of its origin. */
  async function fetchAndPublish(m: EventsMessage): Promise<void> {
    await publishPages(
      (after, limit) => (after >= m.max ? Promise.resolve([]) : repo.findSetpointEventsOf(db, m.from, after + 1, m.max, limit)),
      Math.max(m.min - 1, seen.get(m.from) ?? 0),
      (fetched) =>
        log.warn({ from: m.from, min: m.min, max: m.max, fetched }, 'setpoint event range too large: the rest not published here'),
    );
  }

  /** Other replicas' events recorded while notices were missed. */
  async function catchUp(): Promise<void> {
    await started;
    if (floor === undefined && seen.size === 0) {
      log.warn('cluster notifications reconnected: setpoint events of other replicas sent meanwhile are not published here');
      return;
    }
    const fetched = await publishPages(
      (after, limit) => repo.findSetpointEventsSince(db, deps.replicaId, seen, floor ?? Number.MAX_SAFE_INTEGER, after, limit),
      0,
      (n) => log.warn({ fetched: n }, 'setpoint events missed while not listening exceed the bound: the rest not published here'),
    );
    if (fetched > 0) log.info({ events: fetched }, 'setpoint events missed while not listening published');
  }

  async function drain(): Promise<void> {
    while (!stopped && pending.length > 0) {
      const job = pending.shift()!;
      const work = job.k === 'resync' ? catchUp() : fetchAndPublish(job);
      await work.catch((err: Error) =>
        log.error(
          job.k === 'resync' ? { err: err.message } : { err: err.message, from: job.from, min: job.min, max: job.max },
          "another replica's setpoint events not published here",
        ),
      );
    }
    running = undefined;
  }

  function queue(job: Job): void {
    pending.push(job);
    if (pending.length > FANOUT_MAX_PENDING) {
      const lost = pending.splice(0, pending.length - FANOUT_MAX_PENDING);
      log.error({ ranges: lost.length }, 'setpoint event fan-out backlog full: oldest ranges not published here');
    }
    running ??= drain();
  }

  return {
    onMessage(message) {
      if (stopped || message.k !== 'events' || message.from === deps.replicaId) return;
      const { min, max } = message;
      if (!Number.isSafeInteger(min) || !Number.isSafeInteger(max) || min > max || min < 1) {
        log.warn({ from: message.from, min, max }, 'setpoint event range malformed: ignored');
        return;
      }
      queue(message);
    },
    onResync() {
      if (!stopped) queue({ k: 'resync' });
    },
    async idle() {
      await started;
      while (running) await running;
    },
    async stop() {
      stopped = true;
      pending = [];
      await started;
      while (running) await running;
    },
  };
}
