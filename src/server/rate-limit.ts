import { Code, type Interceptor } from '@connectrpc/connect';
import type { Registry as MetricsRegistry } from 'prom-client';
import { principalOf } from '../rpc/principal.ts';
import type { ServerLimits } from '../config.ts';
import type { Logger } from '../logger.ts';
import { rateLimitError, refusalCounter } from '../rpc/refusals.ts';
import { createTokenBuckets, type TokenBuckets } from '../rpc/token-bucket.ts';
import type { AuditLog } from '../audit/audit.ts';
import { policyOf, PUBLIC, RATE_LIMIT_CLASSES, type RateLimitClass } from '../rpc/policy.ts';

const DESCRIPTION: Readonly<Record<RateLimitClass, string>> = {
  dispatch: 'dispatch writes',
  marketdata: 'market data publishing',
  registry: 'registry writes',
  tokens: 'token administration',
};

/** Dependencies of {@link createRateLimitInterceptor}. */
export interface RateLimitDeps {
  readonly limits: Pick<
    ServerLimits,
    | 'dispatchRatePerS'
    | 'dispatchBurst'
    | 'marketDataRatePerS'
    | 'marketDataBurst'
    | 'registryRatePerS'
    | 'registryBurst'
    | 'tokensRatePerS'
    | 'tokensBurst'
  >;
  /** The server's Prometheus registry; refusals are counted there. */
  readonly metricsRegistry: MetricsRegistry;
  readonly log: Logger;
  /** Where refusals are recorded (audit); none in unit tests. */
  readonly audit?: Pick<AuditLog, 'refused'>;
  /** Monotonic clock in ms (tests). Default `performance.now`. */
  readonly now?: () => number;
}

/**
 * Limits each caller's rate of dispatch writes, market data publishing, registry writes and
 * token administration, each class with its own token bucket per principal (the id the
 * authentication interceptor, which runs before this one, leaves in the context). A call
 * over the limit is refused before its handler runs with RESOURCE_EXHAUSTED saying when to
 * retry, a `google.rpc.RetryInfo` detail and a `retry-after` header (Connect) or trailer
 * (gRPC) in whole seconds. Streams and every other method pass untouched.
 */
export function createRateLimitInterceptor(deps: RateLimitDeps): Interceptor {
  const { limits } = deps;
  const refused = refusalCounter(deps.metricsRegistry);
  const settings: Record<RateLimitClass, { ratePerS: number; burst: number }> = {
    dispatch: { ratePerS: limits.dispatchRatePerS, burst: limits.dispatchBurst },
    marketdata: { ratePerS: limits.marketDataRatePerS, burst: limits.marketDataBurst },
    registry: { ratePerS: limits.registryRatePerS, burst: limits.registryBurst },
    tokens: { ratePerS: limits.tokensRatePerS, burst: limits.tokensBurst },
  };
  // A rate of 0 turns that class's limit off.
  const buckets: Partial<Record<RateLimitClass, TokenBuckets>> = {};
  for (const cls of RATE_LIMIT_CLASSES) {
    const { ratePerS, burst } = settings[cls];
    if (ratePerS > 0) buckets[cls] = createTokenBuckets({ ratePerS, burst, ...(deps.now ? { now: deps.now } : {}) });
  }

  return (next) => async (req) => {
    const policy = policyOf(req.service.typeName, req.method.name);
    const cls = policy === PUBLIC ? undefined : policy?.rateLimit;
    const bucket = cls && buckets[cls];
    if (!cls || !bucket) return next(req);
    const principal = principalOf({ values: req.contextValues }).id;
    const taken = bucket.take(principal);
    if (taken.ok) return next(req);
    refused.inc({ reason: `${cls}_rate` });
    deps.log.debug({ principal, method: req.method.name, retryAfterMs: taken.retryAfterMs }, 'rate limit exceeded');
    const error = rateLimitError(DESCRIPTION[cls], settings[cls], taken.retryAfterMs);
    await deps.audit?.refused({
      principal,
      method: `${req.service.typeName}/${req.method.name}`,
      code: Code[error.code],
      message: error.rawMessage,
    });
    throw error;
  };
}
