/**
 * The soak's trading desk: a site dispatch every few seconds, submitted through a fault
 * proxy and retried with the same request id until it is answered (the API makes a retry
 * return the original instructions), and timed from the first attempt until every battery
 * of the site reports the instruction's setpoint VERIFIED. Setpoint events are watched
 * over a direct connection, so the figure is the dispatch path, not the watcher's link.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { DispatchService, SetpointPhase } from '../../gen/powerplane/v1/dispatch_pb.ts';
import { bearer } from '../../src/auth/bearer.ts';
import type { SoakSite } from './agents.ts';

/** What the feed did. */
export interface DispatchFeedStats {
  /** Distinct request ids submitted. */
  readonly submitted: number;
  /** Submit attempts that failed (and were retried). */
  readonly retries: number;
  /** Dispatches whose every battery verified the instruction's setpoint. */
  readonly verified: number;
  /** Dispatches never answered, or not verified within their window. */
  readonly failed: number;
  /** VERIFIED setpoint events seen, all batteries. */
  readonly setpointsVerified: number;
  /** First attempt to the last battery verified, ms, per verified dispatch. */
  readonly latenciesMs: readonly number[];
  /** The request ids submitted (to check the database holds each once). */
  readonly requestIds: readonly string[];
}

interface Pending {
  readonly startedAt: number;
  readonly expected: ReadonlySet<string>;
  readonly deadline: number;
}

/** Options of {@link startDispatchFeed}. */
export interface DispatchFeedOptions {
  readonly sites: readonly SoakSite[];
  /** Where submits go: through the fault proxy. */
  readonly submitUrl: string;
  /** Where setpoints are watched: the server itself. */
  readonly watchUrl: string;
  /** The desk's bearer token (dispatch:write, readings:read). */
  readonly token: string;
  readonly everyMs: number;
  /** How long each instruction lasts; shorter than a site's turn, so they do not overlap. */
  readonly windowMs: number;
}

/** Starts the feed; `stop()` ends it and resolves with its figures once everything in flight settled. */
export function startDispatchFeed(options: DispatchFeedOptions): { stop(): Promise<DispatchFeedStats> } {
  const interceptors = [bearer(options.token)];
  const submit = createClient(DispatchService, createGrpcTransport({ baseUrl: options.submitUrl, interceptors }));
  const watcher = createClient(DispatchService, createGrpcTransport({ baseUrl: options.watchUrl, interceptors }));
  // Feeding stops first; the watch only once what was submitted has settled.
  const stopFeeding = new AbortController();
  const stop = new AbortController();
  const verifiedBy = new Map<string, { devices: Set<string>; lastAt: number }>();
  const pending = new Map<string, Pending>();
  const latenciesMs: number[] = [];
  const requestIds: string[] = [];
  const counts = { retries: 0, verified: 0, failed: 0, setpointsVerified: 0 };

  const settle = (instructionId: string) => {
    const p = pending.get(instructionId);
    const seen = verifiedBy.get(instructionId);
    if (!p || !seen || [...p.expected].some((id) => !seen.devices.has(id))) return;
    pending.delete(instructionId);
    verifiedBy.delete(instructionId);
    counts.verified++;
    latenciesMs.push(seen.lastAt - p.startedAt);
  };

  const watching = (async () => {
    while (!stop.signal.aborted) {
      try {
        for await (const { events } of watcher.watchSetpoints({}, { signal: stop.signal })) {
          for (const event of events) {
            if (event.phase !== SetpointPhase.VERIFIED) continue;
            counts.setpointsVerified++;
            if (!event.instructionId) continue;
            const seen = verifiedBy.get(event.instructionId) ?? { devices: new Set<string>(), lastAt: 0 };
            seen.devices.add(event.deviceId);
            seen.lastAt = performance.now();
            verifiedBy.set(event.instructionId, seen);
            settle(event.instructionId);
          }
        }
      } catch {
        // The watch ended (the server restarted a stream, or the stop): watch again.
      }
      if (!stop.signal.aborted) await delay(200);
    }
  })();

  const dispatchOnce = async (n: number): Promise<void> => {
    const site = options.sites[n % options.sites.length]!;
    const requestId = `soak-${n}`;
    requestIds.push(requestId);
    const startedAt = performance.now();
    const from = Date.now();
    const request = {
      requestId,
      target: { case: 'site' as const, value: site.site },
      intervals: [
        {
          startTime: timestampFromMs(from - 1_000),
          endTime: timestampFromMs(from + options.windowMs),
          command: { case: 'powerKw' as const, value: n % 2 === 0 ? 60 : -60 },
        },
      ],
    };
    const deadline = startedAt + options.windowMs;
    while (performance.now() < deadline) {
      try {
        const { instructions } = await submit.submitDispatch(request, { timeoutMs: 3_000 });
        const id = instructions[0]!.id;
        pending.set(id, { startedAt, expected: new Set(site.batteries.map((b) => b.id)), deadline });
        settle(id);
        return;
      } catch {
        counts.retries++;
        await delay(250);
      }
    }
    counts.failed++;
  };

  const submitting: Promise<void>[] = [];
  const feeding = (async () => {
    for (let n = 0; !stopFeeding.signal.aborted; n++) {
      submitting.push(dispatchOnce(n));
      await delay(options.everyMs, undefined, { signal: stopFeeding.signal }).catch(() => undefined);
    }
  })();
  const sweeper = setInterval(() => {
    for (const [id, p] of pending) {
      if (performance.now() > p.deadline) {
        pending.delete(id);
        verifiedBy.delete(id);
        counts.failed++;
      }
    }
  }, 1_000);

  return {
    async stop() {
      stopFeeding.abort();
      await feeding;
      await Promise.all(submitting);
      for (const until = performance.now() + options.windowMs; pending.size > 0 && performance.now() < until;) await delay(100);
      stop.abort();
      await watching;
      clearInterval(sweeper);
      // What is still pending now was not verified in time.
      counts.failed += pending.size;
      return { submitted: requestIds.length, ...counts, latenciesMs, requestIds };
    },
  };
}
