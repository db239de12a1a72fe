import { Code, ConnectError } from '@connectrpc/connect';
import { Counter, type Registry as MetricsRegistry } from 'prom-client';
import { RetryInfoSchema } from '../../gen/google/rpc/error_details_pb.ts';

/**
 * Why a limit ended a call (or, for ingest, one batch): a caller's rate on a class of
 * methods, a deadline, or too many failed authentications from the caller's address.
 */
export type RefusalReason =
  'dispatch_rate' | 'marketdata_rate' | 'registry_rate' | 'tokens_rate' | 'ingest_rate' | 'deadline' | 'auth_failure_rate';

const NAME = 'powerplane_rpc_refused_total';

/**
 * The counter of calls a limit refused or cut short, by reason, on the server's registry.
 * Both limit interceptors and the ingest rate limit (a refused batch) count here, so the
 * one counter is created once per registry.
 */
export function refusalCounter(metricsRegistry: MetricsRegistry): Counter<'reason'> {
  const existing = metricsRegistry.getSingleMetric(NAME);
  if (existing) return existing as Counter<'reason'>;
  return new Counter({
    name: NAME,
    help:
      'Calls refused or cut short by a limit, by reason ' +
      '(dispatch_rate, marketdata_rate, registry_rate, tokens_rate, ingest_rate, deadline, auth_failure_rate).',
    labelNames: ['reason'],
    registers: [metricsRegistry],
  });
}

/**
 * The refusal: RESOURCE_EXHAUSTED with the limit and the wait in words, the exact wait as
 * RetryInfo, and `retry-after` in whole seconds (rounded up, at least 1, as HTTP has it).
 * The message keeps clear of the characters grpc-js would leave percent-encoded.
 */
export function rateLimitError(what: string, limit: { ratePerS: number; burst: number }, retryAfterMs: number): ConnectError {
  const seconds = Math.max(1, Math.ceil(retryAfterMs / 1000));
  return new ConnectError(
    `rate limit for ${what} exceeded (${limit.ratePerS} per second with bursts of ${limit.burst} per caller) ` +
      `- retry after ${retryAfterMs} ms`,
    Code.ResourceExhausted,
    { 'retry-after': String(seconds) },
    [
      {
        desc: RetryInfoSchema,
        value: { retryDelay: { seconds: BigInt(Math.floor(retryAfterMs / 1000)), nanos: (retryAfterMs % 1000) * 1_000_000 } },
      },
    ],
  );
}
