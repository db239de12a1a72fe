import { create } from '@bufbuild/protobuf';
import { Code, ConnectError, type ServiceImpl } from '@connectrpc/connect';
import { Health, HealthCheckResponse_ServingStatus as Status, HealthCheckResponseSchema } from '../../gen/grpc/health/v1/health_pb.ts';
import type { Logger } from '../logger.ts';
import type { Database } from '../storage/database.ts';

export { Status as ServingStatus };

/** The serving status of the server ("") and of each service, with change notification. */
export interface HealthState {
  get(service: string): Status | undefined;
  /** Sets every known service (and the server) to `status`. */
  setAll(status: Status): void;
  /** Calls `listener` on every change until the returned function is called. */
  subscribe(listener: () => void): () => void;
  readonly services: readonly string[];
}

/** Creates the health state for `services`, all NOT_SERVING until the server is ready. */
export function createHealthState(services: readonly string[]): HealthState {
  const statuses = new Map<string, Status>([['', Status.NOT_SERVING], ...services.map((s) => [s, Status.NOT_SERVING] as const)]);
  const listeners = new Set<() => void>();
  return {
    services: ['', ...services],
    get: (service) => statuses.get(service),
    setAll(status) {
      let changed = false;
      for (const key of statuses.keys()) {
        if (statuses.get(key) !== status) changed = true;
        statuses.set(key, status);
      }
      if (changed) for (const listener of listeners) listener();
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}

/** `grpc.health.v1.Health`: Check, Watch and List over a {@link HealthState}. */
export function createHealthService(state: HealthState, shutdown: AbortSignal): ServiceImpl<typeof Health> {
  const response = (status: Status) => create(HealthCheckResponseSchema, { status });
  return {
    check(req) {
      const status = state.get(req.service);
      if (status === undefined) throw new ConnectError(`service ${JSON.stringify(req.service)} is not known`, Code.NotFound);
      return response(status);
    },
    async *watch(req, context) {
      let wake: (() => void) | undefined;
      let version = 0;
      const unsubscribe = state.subscribe(() => {
        version++;
        wake?.();
      });
      const stop = () => wake?.();
      context.signal.addEventListener('abort', stop);
      shutdown.addEventListener('abort', stop);
      try {
        let last: Status | undefined;
        let seen = -1;
        // The status is sent before the stop checks, so a watcher learns NOT_SERVING
        // even when the change and the shutdown come together.
        for (;;) {
          const status = state.get(req.service) ?? Status.SERVICE_UNKNOWN;
          if (status !== last) {
            last = status;
            yield response(status);
          }
          if (context.signal.aborted || shutdown.aborted) return;
          // A change while this generator waited at `yield` bumped the version: look again
          // instead of sleeping through it.
          if (seen !== version) {
            seen = version;
            continue;
          }
          await new Promise<void>((resolve) => (wake = resolve));
        }
      } finally {
        unsubscribe();
        context.signal.removeEventListener('abort', stop);
        shutdown.removeEventListener('abort', stop);
      }
    },
    list() {
      return { statuses: Object.fromEntries(state.services.map((s) => [s, response(state.get(s) ?? Status.UNKNOWN)])) };
    },
  };
}

/** Pings the database now and every `intervalMs`; health follows the answer. */
export function startHealthProbe(database: Database, health: HealthState, intervalMs: number, log: Logger): { stop(): void } {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const tick = async () => {
    try {
      await database.ping(Math.min(intervalMs, 2_000));
      if (!stopped) health.setAll(Status.SERVING);
    } catch (err) {
      if (!stopped && health.get('') !== Status.NOT_SERVING) log.warn({ err: (err as Error).message }, 'database unreachable: NOT_SERVING');
      if (!stopped) health.setAll(Status.NOT_SERVING);
    }
    if (!stopped) timer = setTimeout(() => void tick(), intervalMs);
  };
  // Migrations have just run, so the database answered: a started server is SERVING.
  health.setAll(Status.SERVING);
  timer = setTimeout(() => void tick(), intervalMs);
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
