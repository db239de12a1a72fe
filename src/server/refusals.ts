import { Counter, type Registry } from 'prom-client';

/**
 * Why a limit ended a call (or, for ingest, one batch): a caller's rate on a class of
 * methods, a deadline, or too many failed authentications from the caller's address.
 */
export type RefusalReason = 'dispatch_rate' | 'marketdata_rate' | 'registry_rate' | 'tokens_rate' | 'ingest_rate' | 'deadline' | 'auth_failure_rate';

const NAME = 'powerplane_rpc_refused_total';

/**
 * The counter of calls a limit refused or cut short, by reason, on the server's registry.
 * Both limit interceptors and the ingest rate limit (a refused batch) count here, so the
 * one counter is created once per registry.
 */
export function refusalCounter(registry: Registry): Counter<'reason'> {
  const existing = registry.getSingleMetric(NAME);
  if (existing) return existing as Counter<'reason'>;
  return new Counter({
    name: NAME,
    help: 'Calls refused or cut short by a limit, by reason (dispatch_rate, marketdata_rate, registry_rate, tokens_rate, ingest_rate, deadline, auth_failure_rate).',
    labelNames: ['reason'],
    registers: [registry],
  });
}
