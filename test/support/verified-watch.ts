import { timestampMs } from '@bufbuild/protobuf/wkt';
import { SetpointPhase } from '../../gen/powerplane/v1/dispatch_pb.ts';
import type { Api } from './api-clients.ts';

/** A VERIFIED event as a watcher saw it. */
export interface SeenVerified {
  readonly kw: number;
  /** The event's own time (the writing replica's clock), ms since the Unix epoch. */
  readonly eventMs: number;
  /** When each watched api received it (`performance.now()`), by the api's index; absent where not (yet) seen. */
  readonly arrivals: Map<number, number>;
}

/** VERIFIED setpoint events watched on one or more replicas at once, kept per battery. */
export interface VerifiedWatch {
  /**
   * Resolves, per battery of `deviceIds`, with the arrival (`performance.now()`) of its first
   * VERIFIED event at `kwOf(id)` kW whose own time is at or after `sinceMs` and which
   * arrived at or after `arrivedAfter`, on the api of index `via` or (without it) on
   * whichever received it first; rejects after `timeoutMs` naming how many are missing.
   */
  verified(
    deviceIds: readonly string[],
    kwOf: (deviceId: string) => number,
    since: { readonly sinceMs?: number; readonly arrivedAfter?: number; readonly via?: number },
    timeoutMs: number,
  ): Promise<Map<string, number>>;
  /** Ends every stream. */
  close(): void;
}

/** Events kept per battery: enough to cover a few rounds, bounded for a long run. */
const KEPT = 16;

/**
 * Opens `WatchSetpoints` (phase VERIFIED, filtered by `filter`) on every api of `apis`; an
 * event seen by several counts from its first arrival. A stream that ends (its replica
 * stopped) is not reopened.
 */
export function watchVerified(apis: readonly Api[], filter: { site?: string; deviceId?: string } = {}): VerifiedWatch {
  const abort = new AbortController();
  const seen = new Map<string, SeenVerified[]>();
  const waiters = new Set<() => void>();
  for (const [source, api] of apis.entries()) {
    void (async () => {
      for await (const res of api.dispatch.watchSetpoints({ ...filter, phases: [SetpointPhase.VERIFIED] }, { signal: abort.signal })) {
        const now = performance.now();
        for (const e of res.events) {
          if (e.phase !== SetpointPhase.VERIFIED) continue;
          const list = seen.get(e.deviceId) ?? [];
          const eventMs = e.time ? timestampMs(e.time) : 0;
          const known = list.find((s) => s.eventMs === eventMs && s.kw === e.targetPowerKw);
          if (known) {
            if (!known.arrivals.has(source)) known.arrivals.set(source, now);
            continue;
          }
          list.push({ kw: e.targetPowerKw, eventMs, arrivals: new Map([[source, now]]) });
          if (list.length > KEPT) list.shift();
          seen.set(e.deviceId, list);
        }
        for (const waiter of [...waiters]) waiter();
      }
    })().catch(() => undefined);
  }
  return {
    verified(deviceIds, kwOf, since, timeoutMs) {
      const found = new Map<string, number>();
      const arrival = (s: SeenVerified) => (since.via === undefined ? Math.min(...s.arrivals.values()) : s.arrivals.get(since.via));
      const check = () => {
        for (const id of deviceIds) {
          if (found.has(id)) continue;
          for (const s of seen.get(id) ?? []) {
            const at = arrival(s);
            if (at === undefined || Math.abs(s.kw - kwOf(id)) >= 1e-6) continue;
            if (s.eventMs < (since.sinceMs ?? 0) || at < (since.arrivedAfter ?? -Infinity)) continue;
            found.set(id, at);
            break;
          }
        }
        return found.size === deviceIds.length;
      };
      return new Promise((resolve, reject) => {
        const waiter = () => {
          if (!check()) return;
          waiters.delete(waiter);
          clearTimeout(timer);
          resolve(found);
        };
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new Error(`${deviceIds.length - found.size} of ${deviceIds.length} batteries not verified within ${timeoutMs} ms`));
        }, timeoutMs);
        waiters.add(waiter);
        waiter();
      });
    },
    close: () => abort.abort(),
  };
}
