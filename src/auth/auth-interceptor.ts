import { Code, ConnectError, type Interceptor } from '@connectrpc/connect';
import type { AuditLog } from '../audit/audit.ts';
import { UnauthenticatedError } from '../errors.ts';
import { authenticationKey, type Authenticator } from './authenticate.ts';
import { policyOf, PUBLIC } from '../rpc/policy.ts';
import { principalKey, UNRESTRICTED, type Principal } from '../rpc/principal.ts';

/** Dependencies of {@link createAuthInterceptor}. */
export interface AuthDeps {
  /** Off: every call is {@link UNRESTRICTED} (`POWERPLANE_AUTH=off`). */
  readonly enabled: boolean;
  readonly authenticate: Authenticator;
  readonly audit: AuditLog;
}

/**
 * Checks the scope each call's method needs (`rpc/policy.ts`) before any handler runs,
 * and leaves the principal in the call's context values for handlers (site checks), audit
 * and rate limits. Refusals are audited.
 *
 * The server authenticates a call from its headers before reading its body and leaves the
 * result under {@link authenticationKey}: a principal is used as it is (no second lookup),
 * a refusal (audited where it was decided) is thrown again for the streams that reach
 * interceptors before their first message. A call without that result (an in-memory
 * transport) is authenticated here.
 */
export function createAuthInterceptor(deps: AuthDeps): Interceptor {
  return (next) => async (req) => {
    const policy = policyOf(req.service.typeName, req.method.name);
    if (policy === PUBLIC) return next(req);
    if (!deps.enabled) {
      req.contextValues.set(principalKey, UNRESTRICTED);
      return next(req);
    }
    const method = `${req.service.typeName}/${req.method.name}`;
    const earlier = req.contextValues.get(authenticationKey);
    if (earlier && 'refusal' in earlier) throw earlier.refusal;
    let principal: Principal;
    if (earlier) {
      principal = earlier.principal;
    } else {
      try {
        principal = await deps.authenticate(req.header.get('authorization'), req.contextValues);
      } catch (err) {
        if (!(err instanceof UnauthenticatedError)) throw err;
        throw await refusal(deps, { principal: 'unauthenticated', method, code: Code.Unauthenticated, message: err.message });
      }
    }
    if (!policy) {
      throw await refusal(deps, {
        principal: principal.id,
        method,
        code: Code.PermissionDenied,
        message: `${method} is not allowed to anyone`,
      });
    }
    if (!policy.scopes.some((s) => principal.scopes.has(s))) {
      throw await refusal(deps, {
        principal: principal.id,
        method,
        code: Code.PermissionDenied,
        message: `${req.method.name} needs the scope ${policy.scopes.join(' or ')}`,
      });
    }
    req.contextValues.set(principalKey, principal);
    return next(req);
  };
}

/** Records a refusal (best effort: an unreachable database must not turn it into a pass) and returns its error. */
async function refusal(deps: AuthDeps, r: { principal: string; method: string; code: Code; message: string }): Promise<ConnectError> {
  await deps.audit.refused({ principal: r.principal, method: r.method, code: Code[r.code], message: r.message });
  return new ConnectError(r.message, r.code);
}
