import { Code, ConnectError, type Interceptor } from '@connectrpc/connect';
import { Counter, Histogram, Registry as MetricsRegistry, collectDefaultMetrics } from 'prom-client';
import { authenticationKey } from '../auth/authenticate.ts';

/** The process's Prometheus registry and the RPC metrics every call updates. */
export interface Metrics {
  readonly metricsRegistry: MetricsRegistry;
  readonly interceptor: Interceptor;
  /**
   * Counts a call refused before its body was read (authentication), which the
   * interceptor then leaves uncounted: most such calls never reach interceptors.
   */
  countRefused(service: string, method: string, code: Code): void;
}

/**
 * Creates a registry (one per server, not prom-client's global, so tests can run several
 * servers in one process) with Node's default metrics and per-RPC counts and latencies.
 */
export function createMetrics(): Metrics {
  const metricsRegistry = new MetricsRegistry();
  collectDefaultMetrics({ register: metricsRegistry, prefix: 'powerplane_' });
  const calls = new Counter({
    name: 'powerplane_rpc_calls_total',
    help: 'RPCs handled, by method and status code.',
    labelNames: ['service', 'method', 'code'],
    registers: [metricsRegistry],
  });
  const duration = new Histogram({
    name: 'powerplane_rpc_duration_seconds',
    help: 'Time to the response (first message for streams), by method.',
    labelNames: ['service', 'method'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [metricsRegistry],
  });
  const codeLabel = (code: Code | undefined) =>
    code === undefined ? 'unknown' : Code[code]!.replace(/(?<=[a-z])(?=[A-Z])/g, '_').toLowerCase();
  const interceptor: Interceptor = (next) => async (req) => {
    const earlier = req.contextValues.get(authenticationKey);
    if (earlier && 'refusal' in earlier) return next(req);
    const labels = { service: req.service.typeName, method: req.method.name };
    const stop = duration.startTimer(labels);
    try {
      const res = await next(req);
      calls.inc({ ...labels, code: 'ok' });
      return res;
    } catch (err) {
      calls.inc({ ...labels, code: codeLabel(err instanceof ConnectError ? err.code : undefined) });
      throw err;
    } finally {
      stop();
    }
  };
  return {
    metricsRegistry,
    interceptor,
    countRefused(service, method, code) {
      calls.inc({ service, method, code: codeLabel(code) });
    },
  };
}
