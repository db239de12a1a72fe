/**
 * Relay mode's switchboard: which agent streams are open for which site, the setpoints
 * waiting to go down each stream, and where each agent's outcome goes back to.
 *
 * A stream joins a site with its `AgentHello` (an explicit site rather than one guessed
 * from the devices of its readings: an agent may relay before it has a reading to send,
 * and with authentication the site is checked against the caller's binding). Relayed
 * setpoints go to the site's most recently opened stream: after a reconnection that is the
 * new one, while the old stream may not have noticed its cut yet.
 *
 * Each stream's queue holds at most one setpoint per battery, latest wins: an older one not
 * yet sent is replaced, never sent late. Pushing never waits, so a stream whose client
 * reads slowly never holds up the control loop, and the queue never holds more than
 * `maxQueuedPerStream` setpoints (beyond that the oldest is dropped and counted). Acks and
 * setpoints share the response stream ({@link mergeRelayed}); the acks are all kept.
 *
 * The hub holds the agent streams of this process only. An agent may stream to any
 * replica: the replica tells the others which sites it holds streams of (its
 * {@link RelayMembership}, `agent-streams.ts`), and the owner of a site's shard
 * reaches a stream held elsewhere through that replica, which pushes the setpoint into its
 * own hub (`relay-channel.ts`). The queueing policy here applies either way.
 */
import { InvalidArgumentError } from '../errors.ts';
import type { Logger } from '../logger.ts';

/** A setpoint for an agent to write. */
export interface RelayedSetpoint {
  /** Unique per message; the agent's outcome names it. */
  readonly setpointId: string;
  readonly deviceId: string;
  /** kW, positive = discharge; 0 for a release. */
  readonly targetPowerKw: number;
  /** Hand the battery back to its own control instead of holding a power. */
  readonly release: boolean;
  /** After this the agent neither writes nor holds it. */
  readonly expireAt: Date;
  /**
   * The epoch of the lease on the site's shard it is sent under; the agent refuses one
   * lower than it has seen for the battery. 0 when sent without a lease (accepted).
   */
  readonly epoch: number;
}

/** An agent's report of one relayed setpoint. */
export interface RelayOutcome {
  readonly setpointId: string;
  readonly verified: boolean;
  /** Why it was not applied; empty when verified. */
  readonly reason: string;
}

/** One agent stream as the hub sees it; made by {@link RelayHub.open}, closed when the call ends. */
export interface RelayStream {
  /** Joins the stream to `site` (its AgentHello). The same site again is a no-op; another throws INVALID_ARGUMENT. */
  hello(site: string): void;
  /** The site, once the hello came. */
  readonly site: string | undefined;
  /** Takes every waiting setpoint, oldest first. */
  take(): RelayedSetpoint[];
  /** Takes the oldest waiting setpoint, if any. */
  takeOne(): RelayedSetpoint | undefined;
  /** Resolves once a setpoint waits (at once if one does); never after the stream closed. */
  ready(): Promise<void>;
  /** Hands an outcome the agent reported on this stream to the sender of the setpoint. */
  outcome(outcome: RelayOutcome): void;
  /** Leaves the site: later setpoints go to another stream of the site, or fail. Idempotent. */
  close(): void;
}

/** Counters of a hub, for tests and logs. */
export interface RelayHubStats {
  /** Streams joined to a site. */
  streams: number;
  /** Setpoints waiting in stream queues. */
  queued: number;
  /** Setpoints sent and not yet answered (swept after they expire). */
  awaitingOutcome: number;
  /** Setpoints replaced by a newer one for the same battery before they were sent. */
  replaced: number;
  /** Setpoints dropped because a queue was full. */
  dropped: number;
}

/** The relay switchboard of one process. */
export interface RelayHub {
  /** A new, not yet joined stream. */
  open(): RelayStream;
  /**
   * Queues `setpoint` on the site's newest stream and remembers `onOutcome` for its answer.
   * Returns false, queueing nothing, when no stream of the site is open. Never waits.
   */
  send(site: string, setpoint: RelayedSetpoint, onOutcome: (outcome: RelayOutcome) => void): boolean;
  /** Whether a stream of `site` is open. */
  connected(site: string): boolean;
  /** Calls `listener` whenever a stream of `site` closes; returns the unsubscribe. */
  watch(site: string, listener: () => void): () => void;
  stats(): RelayHubStats;
}

/**
 * Told when streams join and leave sites, so that other replicas can find the streams of
 * this hub. Called synchronously from {@link RelayStream.hello} and {@link RelayStream.close};
 * it must not throw or wait.
 */
export interface RelayMembership {
  /** A stream joined `site` (the site's first on this hub or not). */
  joined(site: string): void;
  /** A stream left `site`; `remaining` streams of the site are still open here. */
  left(site: string, remaining: number): void;
}

/** Options of {@link createRelayHub}. */
export interface RelayHubOptions {
  readonly log?: Logger;
  /** Told of every join and leave; default none (a single process). */
  readonly membership?: RelayMembership;
  /** Most setpoints waiting in one stream's queue; default 1024 (one per battery of a large site). */
  readonly maxQueuedPerStream?: number;
  /** How long past its expiry an unanswered setpoint's outcome is still routed, ms; default 10 000. */
  readonly outcomeGraceMs?: number;
  /** The clock, ms since the epoch; default Date.now. */
  readonly now?: () => number;
}

interface Awaiting {
  readonly site: string;
  readonly onOutcome: (outcome: RelayOutcome) => void;
  readonly expireAt: number;
}

interface StreamState extends RelayStream {
  push(setpoint: RelayedSetpoint): void;
}

/** Creates an empty hub. */
export function createRelayHub(options: RelayHubOptions = {}): RelayHub {
  const log = options.log;
  const now = options.now ?? Date.now;
  const maxQueued = options.maxQueuedPerStream ?? 1024;
  const graceMs = options.outcomeGraceMs ?? 10_000;
  const bySite = new Map<string, StreamState[]>();
  const watchers = new Map<string, Set<() => void>>();
  const awaiting = new Map<string, Awaiting>();
  const counters = { replaced: 0, dropped: 0 };
  let queuedTotal = 0;
  let lastSweep = 0;

  // Bounded without a timer: entries only come from `send`, which sweeps at most once a second.
  const sweep = (t: number): void => {
    if (t - lastSweep < 1000) return;
    lastSweep = t;
    for (const [id, entry] of awaiting) if (entry.expireAt + graceMs < t) awaiting.delete(id);
  };

  const open = (): RelayStream => {
    const queue = new Map<string, RelayedSetpoint>();
    let site: string | undefined;
    let closed = false;
    let wake: (() => void) | undefined;
    const signal = (): void => {
      const w = wake;
      wake = undefined;
      w?.();
    };
    const stream: StreamState = {
      get site() {
        return site;
      },
      hello(requested) {
        if (site === requested) return;
        if (site !== undefined)
          throw new InvalidArgumentError('hello.site', requested, `must not change within a stream (it is ${JSON.stringify(site)})`);
        if (requested.trim() === '') throw new InvalidArgumentError('hello.site', requested, 'is required');
        if (requested.length > 200) throw new InvalidArgumentError('hello.site', requested, 'must be at most 200 characters');
        if (closed) return;
        site = requested;
        const list = bySite.get(requested) ?? [];
        list.push(stream);
        bySite.set(requested, list);
        log?.info({ site: requested, streams: list.length }, 'agent stream joined its site for relay');
        options.membership?.joined(requested);
      },
      push(setpoint) {
        // Delete first so the replacement queues behind the others: oldest first stays true.
        if (queue.delete(setpoint.deviceId)) {
          counters.replaced++;
          queuedTotal--;
        } else if (queue.size >= maxQueued) {
          const oldest = queue.keys().next().value!;
          queue.delete(oldest);
          queuedTotal--;
          counters.dropped++;
          log?.warn({ site, deviceId: oldest, maxQueued }, 'relay queue full: oldest setpoint dropped');
        }
        queue.set(setpoint.deviceId, setpoint);
        queuedTotal++;
        signal();
      },
      take() {
        const out = [...queue.values()];
        queuedTotal -= queue.size;
        queue.clear();
        return out;
      },
      takeOne() {
        const first = queue.entries().next();
        if (first.done) return undefined;
        queue.delete(first.value[0]);
        queuedTotal--;
        return first.value[1];
      },
      ready() {
        if (queue.size > 0) return Promise.resolve();
        // A closed stream gets nothing more: never ready, so a merge waits on its acks alone.
        if (closed) return new Promise<void>(() => undefined);
        // A fresh promise each call, and only the newest is woken. Handing out one shared
        // promise made every ack's race add a reaction to it (holding that ack) until the
        // next setpoint: an idle relay stream grew by every ack it carried.
        return new Promise<void>((resolve) => (wake = resolve));
      },
      outcome(outcome) {
        const entry = awaiting.get(outcome.setpointId);
        if (!entry) {
          log?.debug({ site, setpointId: outcome.setpointId }, 'outcome of an unknown or expired relayed setpoint ignored');
          return;
        }
        // An agent answers only for setpoints of its own site.
        if (entry.site !== site) {
          log?.warn({ site, setpointId: outcome.setpointId, setpointSite: entry.site }, 'outcome of another site ignored');
          return;
        }
        awaiting.delete(outcome.setpointId);
        entry.onOutcome(outcome);
      },
      close() {
        if (closed) return;
        closed = true;
        queuedTotal -= queue.size;
        queue.clear();
        signal();
        if (site === undefined) return;
        const list = (bySite.get(site) ?? []).filter((s) => s !== stream);
        if (list.length > 0) bySite.set(site, list);
        else bySite.delete(site);
        log?.info({ site, streams: list.length }, 'agent stream left its site');
        options.membership?.left(site, list.length);
        for (const listener of [...(watchers.get(site) ?? [])]) listener();
      },
    };
    return stream;
  };

  return {
    open,
    send(site, setpoint, onOutcome) {
      const stream = bySite.get(site)?.at(-1);
      if (!stream) return false;
      const t = now();
      sweep(t);
      awaiting.set(setpoint.setpointId, { site, onOutcome, expireAt: setpoint.expireAt.getTime() });
      stream.push(setpoint);
      return true;
    },
    connected: (site) => bySite.has(site),
    watch(site, listener) {
      const set = watchers.get(site) ?? new Set();
      set.add(listener);
      watchers.set(site, set);
      return () => {
        set.delete(listener);
        if (set.size === 0 && watchers.get(site) === set) watchers.delete(site);
      };
    },
    stats: () => ({
      streams: [...bySite.values()].reduce((n, list) => n + list.length, 0),
      queued: queuedTotal,
      awaitingOutcome: awaiting.size,
      ...counters,
    }),
  };
}

/**
 * The response stream of a relay-mode call: everything `responses` yields (the acks, in
 * their order, all of them) with the stream's waiting setpoints slipped in as they come.
 * It ends when `responses` ends, and closes `stream` however it ends.
 */
export async function* mergeRelayed<T>(
  responses: AsyncIterable<T>,
  stream: RelayStream,
  toResponse: (setpoint: RelayedSetpoint) => T,
): AsyncGenerator<T> {
  const iterator = responses[Symbol.asyncIterator]();
  let next: Promise<IteratorResult<T>> | undefined;
  let finished = false;
  try {
    for (;;) {
      // One at a time, taken just before it goes: while a yield waits on flow control a
      // newer setpoint for the same battery still replaces the queued one (latest wins).
      for (let setpoint = stream.takeOne(); setpoint; setpoint = stream.takeOne()) yield toResponse(setpoint);
      // One `next()` at a time: a pending one is kept across turns where a setpoint won.
      next ??= iterator.next();
      const result = await Promise.race([next, stream.ready().then(() => undefined)]);
      if (result === undefined) continue;
      next = undefined;
      if (result.done) {
        finished = true;
        return;
      }
      yield result.value;
    }
  } finally {
    stream.close();
    // Not awaited: a pending `next()` may wait on a silent client, and `return()` queues behind it.
    if (!finished) void iterator.return?.(undefined)?.catch(() => undefined);
  }
}
