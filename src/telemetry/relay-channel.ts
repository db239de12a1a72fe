/**
 * The relay channel of a replica among several: the owner of a site's shard reaches the
 * site's agent wherever its stream is.
 *
 * - A stream of the site on this replica, and none newer elsewhere: this replica's hub, as
 *   with one replica.
 * - Otherwise the replica holding the site's newest stream ({@link AgentStreams}): the
 *   setpoint goes to it as `{k:'relay', to: holder}` on the fleet's notification channel;
 *   the holder pushes it into its own hub (where latest-per-battery queueing applies) and
 *   sends the agent's outcome back as `{k:'relay-outcome', to: sender}`, which is handed
 *   to the sender's `onOutcome`. An outcome is accepted only from the replica the setpoint
 *   was sent to.
 *
 * Each channel plays both parts: it forwards its own writers' setpoints and delivers
 * those addressed to it. `watch` fires when a stream of the site closes here and when a
 * replica that held one no longer does (its stream closed, or the replica died), so a
 * writer moves to another stream or fails at once rather than at its answer deadline.
 */
import type { Logger } from '../logger.ts';
import type { RelayHub, RelayOutcome } from '../telemetry/relay-hub.ts';
import type { AgentStreams } from './agent-streams.ts';
import type { ClusterMessage, Notifications } from '../cluster/cluster.types.ts';

/**
 * What the writer needs of the relay switchboard: send a setpoint down a site's agent
 * stream, and hear when a stream of the site closes. `telemetry/relay-hub.ts` provides it
 * for the streams of this process; {@link createClusterRelayChannel} for streams on any replica.
 */
export interface RelayChannel {
  /**
   * Queues the setpoint for the site's agent; false when no agent stream of the site is
   * open. `onOutcome` is never called before `send` returns. `epoch` is the epoch of the
   * lease the setpoint is sent under (0: none), which the agent checks.
   */
  send(
    site: string,
    setpoint: { setpointId: string; deviceId: string; targetPowerKw: number; release: boolean; expireAt: Date; epoch: number },
    onOutcome: (outcome: { setpointId: string; verified: boolean; reason: string }) => void,
  ): boolean;
  /** Whether an agent stream of the site is open anywhere the channel reaches. */
  connected(site: string): boolean;
  /** Calls `listener` when a stream of the site closes; returns the unsubscribe. */
  watch(site: string, listener: () => void): () => void;
}

/** Dependencies of {@link createClusterRelayChannel}. */
export interface ClusterRelayChannelDeps {
  /** This replica's agent streams. */
  readonly hub: RelayHub;
  /** Where every replica's agent streams are. */
  readonly streams: AgentStreams;
  readonly notifications: Notifications;
  readonly replicaId: string;
  readonly log: Logger;
  /** How long past its expiry the outcome of a forwarded setpoint is still routed, ms; default 10 000. */
  readonly outcomeGraceMs?: number;
  /** The clock, ms since the Unix epoch; default Date.now. */
  readonly now?: () => number;
}

/** Counters of a channel, for tests and logs. */
export interface ClusterRelayStats {
  /** Setpoints sent to other replicas. */
  forwarded: number;
  /** Setpoints other replicas sent here for this replica's streams. */
  delivered: number;
  /** Forwarded setpoints whose outcome has not come back yet (swept after they expire). */
  awaitingOutcome: number;
}

/** A {@link RelayChannel} over every replica's agent streams. */
export interface ClusterRelayChannel extends RelayChannel {
  stats(): ClusterRelayStats;
  /** Stops delivering and forwarding answers; outcomes still awaited are dropped. Idempotent. */
  close(): void;
}

interface Awaiting {
  readonly holder: string;
  readonly onOutcome: (outcome: RelayOutcome) => void;
  readonly expireAt: number;
}

type RelayMessage = Extract<ClusterMessage, { k: 'relay' }>;

const LOCAL = Symbol('local');

/** Creates the channel and starts handling relay messages addressed to this replica. */
export function createClusterRelayChannel(deps: ClusterRelayChannelDeps): ClusterRelayChannel {
  const { hub, streams, notifications, replicaId: me, log } = deps;
  const now = deps.now ?? Date.now;
  const graceMs = deps.outcomeGraceMs ?? 10_000;
  const awaiting = new Map<string, Awaiting>();
  const watchers = new Map<string, Set<() => void>>();
  const counters = { forwarded: 0, delivered: 0 };
  let lastSweep = 0;
  let closed = false;

  // Bounded without a timer: entries only come from `send`, which sweeps at most once a second.
  const sweep = (t: number): void => {
    if (t - lastSweep < 1000) return;
    lastSweep = t;
    for (const [id, entry] of awaiting) if (entry.expireAt + graceMs < t) awaiting.delete(id);
  };

  /** Where a setpoint for `site` goes: this replica's hub, another replica, or nowhere. */
  const route = (site: string): typeof LOCAL | string | undefined => {
    const holders = streams.holders(site);
    const remote = holders.find((h) => h.replica !== me);
    if (!hub.connected(site)) return remote?.replica;
    if (!remote) return LOCAL;
    // A stream here that is not in the map yet has only just joined: it is the newest.
    const mine = holders.find((h) => h.replica === me);
    return mine && mine.openedAt < remote.openedAt ? remote.replica : LOCAL;
  };

  const reply = (to: string, outcome: RelayOutcome): void => {
    if (closed) return;
    const message: ClusterMessage = { k: 'relay-outcome', from: me, to, ...pick(outcome) };
    notifications.notify(message).catch((err: unknown) => {
      log.warn({ err, to, setpointId: outcome.setpointId }, 'relayed setpoint outcome not sent back');
    });
  };

  const deliver = (m: RelayMessage): void => {
    // The notifications checked each field's type; a negative epoch would not encode as uint64.
    if (m.epoch < 0) {
      log.warn({ from: m.from, setpointId: m.setpointId, epoch: m.epoch }, 'relay message with a negative epoch ignored');
      return;
    }
    counters.delivered++;
    const setpoint = {
      setpointId: m.setpointId,
      deviceId: m.deviceId,
      targetPowerKw: m.targetPowerKw,
      release: m.release,
      expireAt: new Date(m.expireAt),
      epoch: m.epoch,
    };
    if (!hub.send(m.site, setpoint, (outcome) => reply(m.from, outcome))) {
      reply(m.from, { setpointId: m.setpointId, verified: false, reason: `the agent stream of site ${m.site} on replica ${me} closed` });
    }
  };

  const answered = (m: Extract<ClusterMessage, { k: 'relay-outcome' }>): void => {
    const entry = awaiting.get(m.setpointId);
    if (!entry) {
      log.debug({ from: m.from, setpointId: m.setpointId }, 'outcome of an unknown or expired forwarded setpoint ignored');
      return;
    }
    if (entry.holder !== m.from) {
      log.warn({ from: m.from, holder: entry.holder, setpointId: m.setpointId }, 'outcome from a replica it was not sent to ignored');
      return;
    }
    awaiting.delete(m.setpointId);
    entry.onOutcome({ setpointId: m.setpointId, verified: m.verified, reason: m.reason });
  };

  const unsubscribe = notifications.subscribe((m) => {
    if (closed || !('to' in m) || m.to !== me) return;
    if (m.k === 'relay') deliver(m);
    else if (m.k === 'relay-outcome') answered(m);
  });
  const unwatchStreams = streams.onChange((change) => {
    if (!change.removed.some((r) => r !== me)) return;
    for (const listener of [...(watchers.get(change.site) ?? [])]) listener();
  });

  return {
    send(site, setpoint, onOutcome) {
      const target = route(site);
      if (target === undefined) return false;
      if (target === LOCAL) return hub.send(site, setpoint, onOutcome);
      const t = now();
      sweep(t);
      const { setpointId } = setpoint;
      awaiting.set(setpointId, { holder: target, onOutcome, expireAt: setpoint.expireAt.getTime() });
      counters.forwarded++;
      const message: ClusterMessage = {
        k: 'relay',
        from: me,
        to: target,
        site,
        setpointId,
        deviceId: setpoint.deviceId,
        targetPowerKw: setpoint.targetPowerKw,
        release: setpoint.release,
        expireAt: setpoint.expireAt.getTime(),
        epoch: setpoint.epoch,
      };
      notifications.notify(message).catch((err: unknown) => {
        const entry = awaiting.get(setpointId);
        if (!entry) return;
        awaiting.delete(setpointId);
        log.warn({ err, site, to: target, setpointId }, 'relayed setpoint not forwarded');
        entry.onOutcome({ setpointId, verified: false, reason: `not forwarded to replica ${target}, which holds the agent stream` });
      });
      return true;
    },
    connected: (site) => route(site) !== undefined,
    watch(site, listener) {
      const offHub = hub.watch(site, listener);
      const set = watchers.get(site) ?? new Set();
      set.add(listener);
      watchers.set(site, set);
      return () => {
        offHub();
        set.delete(listener);
        if (set.size === 0 && watchers.get(site) === set) watchers.delete(site);
      };
    },
    stats: () => ({ ...counters, awaitingOutcome: awaiting.size }),
    close() {
      if (closed) return;
      closed = true;
      unsubscribe();
      unwatchStreams();
      awaiting.clear();
    },
  };
}

/** The outcome's own fields, without anything else its object carries (a protobuf message's type name, a time). */
function pick(outcome: RelayOutcome): RelayOutcome {
  return { setpointId: outcome.setpointId, verified: outcome.verified, reason: outcome.reason };
}
