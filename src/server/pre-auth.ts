import type http from 'node:http';
import type http2 from 'node:http2';
import { Code, ConnectError, type ContextValues } from '@connectrpc/connect';
import type { Registry as MetricsRegistry } from 'prom-client';
import type { AuditLog } from '../audit/audit.ts';
import { authenticationKey, type Authentication, type Authenticator } from '../auth/authenticate.ts';
import { policyOf, PUBLIC } from '../rpc/policy.ts';
import { UnauthenticatedError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { ConnectionGuard } from './connection-guard.ts';
import { normalizeAddress } from './connection-guard.ts';
import { toConnectError } from './error-interceptor.ts';
import { rateLimitError } from '../rpc/refusals.ts';
import { refusalCounter } from '../rpc/refusals.ts';
import { createTokenBuckets, type TokenBuckets } from '../rpc/token-bucket.ts';

/** A request of either HTTP version, as Node hands it to the server. */
export type NodeRequest = http.IncomingMessage | http2.Http2ServerRequest;

/** Dependencies of {@link createPreAuth}. */
export interface PreAuthDeps {
  /** Off (`POWERPLANE_AUTH=off`): nothing is authenticated and every call passes. */
  readonly enabled: boolean;
  readonly authenticate: Authenticator;
  readonly audit: Pick<AuditLog, 'refused'>;
  /** Failed authentications per peer address: per second (0 = no limit) and burst. */
  readonly failureLimit: { readonly ratePerS: number; readonly burst: number };
  /** Told when a connection carries an authenticated call. */
  readonly connections?: ConnectionGuard | undefined;
  /** Where refusals over the failure limit are counted (`powerplane_rpc_refused_total`). */
  readonly metricsRegistry: MetricsRegistry;
  /** Told of every RPC refused here (the RPC call metrics). */
  readonly onRefused?: (service: string, method: string, code: Code) => void;
  readonly log: Logger;
  /** Monotonic clock in ms (tests). Default `performance.now`. */
  readonly now?: () => number;
}

/**
 * Authentication from the request's headers and connection alone, before its body is
 * read: a call that cannot authenticate is answered without the server reading or
 * parsing what it sends.
 */
export interface PreAuth {
  /**
   * For an RPC: leaves the {@link Authentication} in `values` under
   * {@link authenticationKey} and returns the refusal, if any. Public methods (health,
   * reflection) and every call while authentication is off are left to the interceptors.
   */
  rpc(req: NodeRequest, service: string, method: string, values: ContextValues): Promise<ConnectError | undefined>;
  /** For a plain HTTP endpoint named `what` (in audit rows), e.g. `/metrics`. */
  http(req: NodeRequest, what: string, values: ContextValues): Promise<Authentication>;
}

/**
 * Creates the pre-body authentication. Each peer address has a token bucket of failed
 * authentications (a presented token, JWT or authorization header that is refused; a
 * call with no credentials at all costs no lookup and does not count). While an
 * address's bucket is empty, every call from it that needs credentials is refused
 * RESOURCE_EXHAUSTED with `RetryInfo` and `retry-after`, before any lookup, so a stream of
 * guessed tokens costs the database and other callers nothing. Refusals are audited
 * (folded per second) under the principal `unauthenticated`.
 */
export function createPreAuth(deps: PreAuthDeps): PreAuth {
  const refusals = refusalCounter(deps.metricsRegistry);
  const { ratePerS, burst } = deps.failureLimit;
  const failures: TokenBuckets | undefined =
    ratePerS > 0 ? createTokenBuckets({ ratePerS, burst, ...(deps.now ? { now: deps.now } : {}) }) : undefined;

  async function authenticate(req: NodeRequest, what: string, values: ContextValues): Promise<Authentication> {
    const address = normalizeAddress(req.socket?.remoteAddress);
    if (failures && address !== undefined) {
      const allowed = failures.peek(address);
      if (!allowed.ok) {
        refusals.inc({ reason: 'auth_failure_rate' });
        const refusal = rateLimitError('failed authentications', deps.failureLimit, allowed.retryAfterMs);
        await deps.audit.refused({ principal: 'unauthenticated', method: what, code: Code[refusal.code], message: refusal.rawMessage });
        return { refusal };
      }
    }
    const authorization = headerOf(req, 'authorization');
    try {
      const principal = await deps.authenticate(authorization, values);
      deps.connections?.authenticated(req.socket);
      return { principal };
    } catch (err) {
      if (!(err instanceof UnauthenticatedError)) return { refusal: toConnectError(err, what, deps.log) };
      if (failures && address !== undefined && authorization !== null) {
        failures.take(address);
        if (!failures.peek(address).ok)
          deps.log.debug({ address }, 'too many failed authentications: refusing the address until its bucket refills');
      }
      await deps.audit.refused({ principal: 'unauthenticated', method: what, code: Code[Code.Unauthenticated], message: err.message });
      return { refusal: new ConnectError(err.message, Code.Unauthenticated) };
    }
  }

  return {
    async rpc(req, service, method, values) {
      if (policyOf(service, method) === PUBLIC) return undefined;
      if (!deps.enabled) {
        // Nothing to authenticate: a connection is the caller's once it makes a call.
        deps.connections?.authenticated(req.socket);
        return undefined;
      }
      const outcome = await authenticate(req, `${service}/${method}`, values);
      values.set(authenticationKey, outcome);
      if (!('refusal' in outcome)) return undefined;
      deps.onRefused?.(service, method, outcome.refusal.code);
      return outcome.refusal;
    },
    http(req, what, values) {
      return authenticate(req, what, values);
    },
  };
}

/** One request header as a string; a repeated header is refused as malformed by the authenticator (joined with a comma). */
function headerOf(req: NodeRequest, name: string): string | null {
  const value = req.headers[name];
  if (value === undefined) return null;
  return Array.isArray(value) ? value.join(', ') : value;
}
