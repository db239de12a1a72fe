/**
 * Where each site's agent streams are, across the replicas of one database.
 *
 * This replica's side: the relay hub tells it when a stream joins or leaves a site
 * ({@link RelayMembership}); it keeps one `powerplane.agent_streams(site, replica)` row
 * per site it holds a stream of, `opened_at` moved to now at every join (so the newest
 * stream of a site wins across replicas, as it does within a hub), and deletes the row when
 * the site's last stream here closes. Changes are written in batches, one transaction and
 * one `{k:'streams'}` NOTIFY per batch, in the order they happened; a failed batch is
 * retried after `retryMs` with whatever the hub said since.
 *
 * Everyone's side: a map site → replicas holding a stream of it, newest first, loaded at
 * start, on every `{k:'streams'}`, after a resync and every `refreshMs` (which also notices
 * replicas that died: their rows are ignored once their `powerplane.replicas` row has
 * expired; the lease manager deletes them). Reloads are coalesced: at most one runs, and
 * one more follows if anything asked meanwhile. The periodic refresh also re-inserts this
 * replica's rows should another replica have removed them while it was taken for dead.
 */
import { sql, type Kysely } from 'kysely';
import { SYSTEM_CLOCK, type Clock, type ClockTimer } from '../clock.ts';
import type { Logger } from '../logger.ts';
import type { RelayMembership } from '../telemetry/relay-hub.ts';
import type { ClusterMessage, Notifications } from '../cluster/cluster.types.ts';

/** A replica holding an agent stream of a site. */
export interface StreamHolder {
  readonly replica: string;
  /** When its newest stream of the site joined, ms since the Unix epoch by the database's clock. */
  readonly openedAt: number;
}

/** How the holders of one site changed in a reload. */
export interface StreamHoldersChange {
  readonly site: string;
  /** Replicas that hold a stream of the site now and did not before. */
  readonly added: readonly string[];
  /** Replicas that held a stream of the site and no longer do (or are no longer live). */
  readonly removed: readonly string[];
}

/** The agent streams of every replica, as this replica knows them. */
export interface AgentStreams extends RelayMembership {
  /** The live replicas holding a stream of `site`, newest stream first; this replica too once its row is loaded. */
  holders(site: string): readonly StreamHolder[];
  /** Calls `listener` for every site whose holders a reload changed; returns the unsubscribe. */
  onChange(listener: (change: StreamHoldersChange) => void): () => void;
  /** Deletes this replica's rows left by an earlier run under the same id, loads the map and starts listening. */
  start(): Promise<void>;
  /** Reloads the map; resolves once a load begun after the call has finished (a failed load is logged). */
  reload(): Promise<void>;
  /** Writes what the hub said and is not written yet; resolves when nothing is left (or a batch failed). */
  flushed(): Promise<void>;
  /** Stops listening and the timers, deletes this replica's rows and tells the others. Idempotent. */
  stop(): Promise<void>;
}

/** Dependencies of {@link createAgentStreams}. */
export interface AgentStreamsDeps {
  readonly db: Kysely<object>;
  readonly notifications: Notifications;
  readonly replicaId: string;
  readonly log: Logger;
  /** How often the map is reloaded and this replica's rows are restored, ms; default 5000. */
  readonly refreshMs?: number;
  /** How long after a failed write it is tried again, ms; default 1000. */
  readonly retryMs?: number;
  /** The timers of the refresh and the retry; default the system clock. */
  readonly clock?: Clock;
}

type Pending = 'joined' | 'left';

/** Creates the agent streams' bookkeeping; nothing is read or written before {@link AgentStreams.start}. */
export function createAgentStreams(deps: AgentStreamsDeps): AgentStreams {
  const { db, notifications, replicaId: me, log } = deps;
  const refreshMs = deps.refreshMs ?? 5000;
  const retryMs = deps.retryMs ?? 1000;
  const clock = deps.clock ?? SYSTEM_CLOCK;
  /** What the hub said per site and is not written yet; the last word per site wins. */
  const pending = new Map<string, Pending>();
  /** Sites with a stream open on this replica. */
  const local = new Set<string>();
  const listeners = new Set<(change: StreamHoldersChange) => void>();
  let holders = new Map<string, StreamHolder[]>();
  let started = false;
  let stopped = false;
  let writing: Promise<void> | undefined;
  let loading: Promise<void> | undefined;
  let loadAgain = false;
  let retryTimer: ClockTimer | undefined;
  let refreshTimer: ClockTimer | undefined;
  const unsubscribes: (() => void)[] = [];
  const streamsMessage: ClusterMessage = { k: 'streams', from: me };

  const loadOnce = async (): Promise<void> => {
    const { rows } = await sql<{ site: string; replica: string; opened_ms: number }>`
      select s.site, s.replica, (extract(epoch from s.opened_at) * 1000)::float8 as opened_ms
      from powerplane.agent_streams s left join powerplane.replicas r on r.id = s.replica
      where s.replica = ${me} or r.expires_at > now()
      order by s.site, s.opened_at desc, s.replica`.execute(db);
    const next = new Map<string, StreamHolder[]>();
    for (const row of rows) {
      const list = next.get(row.site) ?? [];
      list.push({ replica: row.replica, openedAt: Number(row.opened_ms) });
      next.set(row.site, list);
    }
    const previous = holders;
    holders = next;
    for (const site of new Set([...previous.keys(), ...next.keys()])) {
      const before = new Set((previous.get(site) ?? []).map((h) => h.replica));
      const after = new Set((next.get(site) ?? []).map((h) => h.replica));
      const added = [...after].filter((r) => !before.has(r));
      const removed = [...before].filter((r) => !after.has(r));
      if (added.length === 0 && removed.length === 0) continue;
      for (const listener of [...listeners]) {
        try {
          listener({ site, added, removed });
        } catch (err) {
          log.error({ err, site }, 'agent streams listener threw');
        }
      }
    }
  };

  const reload = (): Promise<void> => {
    loadAgain = true;
    loading ??= (async () => {
      try {
        while (loadAgain && !stopped) {
          loadAgain = false;
          await loadOnce().catch((err: unknown) => log.warn({ err }, 'agent streams not reloaded; kept the last map'));
        }
      } finally {
        loading = undefined;
      }
    })();
    return loading;
  };

  /** Writes every pending change in one transaction with one NOTIFY; puts the batch back if it fails. */
  const writeOnce = async (): Promise<boolean> => {
    const batch = new Map(pending);
    pending.clear();
    const joined = [...batch].filter(([, p]) => p === 'joined').map(([site]) => site);
    const left = [...batch].filter(([, p]) => p === 'left').map(([site]) => site);
    try {
      await db.transaction().execute(async (trx) => {
        if (joined.length > 0)
          await sql`insert into powerplane.agent_streams (site, replica, opened_at)
            select site, ${me}, now() from unnest(${joined}::text[]) as site
            on conflict (site, replica) do update set opened_at = excluded.opened_at`.execute(trx);
        if (left.length > 0)
          await sql`delete from powerplane.agent_streams where replica = ${me} and site = any(${left}::text[])`.execute(trx);
        await notifications.notify(streamsMessage, trx);
      });
      log.debug({ joined: joined.length, left: left.length }, 'agent streams registered');
      return true;
    } catch (err) {
      // A later word from the hub about a site replaces the one that failed.
      for (const [site, p] of batch) if (!pending.has(site)) pending.set(site, p);
      log.warn({ err, sites: batch.size, retryMs }, 'agent streams not registered; trying again');
      return false;
    }
  };

  const write = (): Promise<void> => {
    if (!started || pending.size === 0) return writing ?? Promise.resolve();
    writing ??= (async () => {
      try {
        let ok = true;
        while (ok && pending.size > 0) {
          ok = await writeOnce();
          if (ok) void reload();
        }
        if (!ok && !stopped && !retryTimer) {
          retryTimer = clock.setTimeout(() => {
            retryTimer = undefined;
            void write();
          }, retryMs);
        }
      } finally {
        writing = undefined;
      }
    })();
    return writing;
  };

  /** Restores this replica's rows that someone removed, then reloads. */
  const refresh = async (): Promise<void> => {
    const sites = [...local].filter((site) => !pending.has(site));
    if (sites.length > 0) {
      try {
        const { rows } = await sql<{ site: string }>`insert into powerplane.agent_streams (site, replica)
          select site, ${me} from unnest(${sites}::text[]) as site
          on conflict (site, replica) do nothing returning site`.execute(db);
        if (rows.length > 0) {
          log.warn({ sites: rows.length }, 'agent streams of this replica were missing; registered again');
          await notifications.notify(streamsMessage);
        }
      } catch (err) {
        log.warn({ err }, 'agent streams of this replica not checked');
      }
    }
    await reload();
  };

  const schedule = (): void => {
    refreshTimer = clock.setTimeout(() => {
      void refresh().finally(() => {
        if (!stopped) schedule();
      });
    }, refreshMs);
  };

  return {
    joined(site) {
      local.add(site);
      if (stopped) return;
      pending.set(site, 'joined');
      void write();
    },
    left(site, remaining) {
      if (remaining > 0) return;
      local.delete(site);
      if (stopped) return;
      pending.set(site, 'left');
      void write();
    },
    holders: (site) => holders.get(site) ?? [],
    onChange(listener) {
      listeners.add(listener);
      return () => void listeners.delete(listener);
    },
    async start() {
      if (started) return;
      // Rows under this id from an earlier run name streams that are gone; this run's hub
      // starts empty, and streams that joined before start are in `pending`.
      await sql`delete from powerplane.agent_streams where replica = ${me}`.execute(db);
      unsubscribes.push(
        notifications.subscribe((message) => {
          if (message.k === 'streams' && message.from !== me) void reload();
        }),
        notifications.onResync(() => void reload()),
      );
      started = true;
      await write();
      await reload();
      if (!stopped) schedule();
    },
    reload,
    async flushed() {
      while (writing) await writing;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      clock.clearTimeout(retryTimer);
      clock.clearTimeout(refreshTimer);
      for (const unsubscribe of unsubscribes) unsubscribe();
      await writing;
      await loading;
      if (!started) return;
      try {
        await db.transaction().execute(async (trx) => {
          await sql`delete from powerplane.agent_streams where replica = ${me}`.execute(trx);
          await notifications.notify(streamsMessage, trx);
        });
      } catch (err) {
        // The rows are ignored once this replica's row expires, and deleted by the lease manager.
        log.warn({ err }, 'agent streams of this replica not removed at stop');
      }
    },
  };
}
