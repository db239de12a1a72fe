import { Code, ConnectError, type ContextValues, type Interceptor } from '@connectrpc/connect';
import type { AuditLog } from '../audit/audit.ts';
import { UnauthenticatedError } from '../errors.ts';
import type { JwtVerifier } from './jwt.ts';
import { policyOf, PUBLIC } from './policy.ts';
import { principalKey, UNRESTRICTED, type Principal } from './principal.ts';
import type { TokenStore } from './tokens.ts';

/** Dependencies of {@link createAuthInterceptor}. */
export interface AuthDeps {
  /** Off: every call is {@link UNRESTRICTED} (`POWERPLANE_AUTH=off`). */
  readonly enabled: boolean;
  readonly tokens: TokenStore;
  readonly jwt?: JwtVerifier;
  /** The principal of a verified client certificate, when mutual TLS is on. */
  readonly certificatePrincipal?: (values: ContextValues) => Principal | undefined;
  readonly audit: AuditLog;
}

/**
 * Authenticates every call and checks the scope its method needs (`auth/policy.ts`), before
 * any handler runs. Credentials: `authorization: Bearer <token>` with a static token
 * (`pp_…`) or a JWT, or a client certificate. The principal is left in the call's context
 * values for handlers (site checks), audit and rate limits. Refusals are audited.
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
    let principal: Principal;
    try {
      principal = await authenticate(req.header.get('authorization'), req.contextValues, deps);
    } catch (err) {
      if (!(err instanceof UnauthenticatedError)) throw err;
      throw await refusal(deps, { principal: 'unauthenticated', method, code: Code.Unauthenticated, message: err.message });
    }
    if (!policy) {
      throw await refusal(deps, { principal: principal.id, method, code: Code.PermissionDenied, message: `${method} is not allowed to anyone` });
    }
    if (!policy.scopes.some((s) => principal.scopes.has(s))) {
      throw await refusal(deps, { principal: principal.id, method, code: Code.PermissionDenied, message: `${req.method.name} needs the scope ${policy.scopes.join(' or ')}` });
    }
    req.contextValues.set(principalKey, principal);
    return next(req);
  };
}

async function authenticate(header: string | null, values: ContextValues, deps: AuthDeps): Promise<Principal> {
  if (header === null) {
    const fromCertificate = deps.certificatePrincipal?.(values);
    if (fromCertificate) return fromCertificate;
    throw new UnauthenticatedError('credentials required - send authorization Bearer <token>');
  }
  const match = /^Bearer +(\S+)$/i.exec(header.trim());
  if (!match) throw new UnauthenticatedError('the authorization header must be Bearer <token>');
  const token = match[1]!;
  const fromToken = await deps.tokens.verify(token);
  if (fromToken) return fromToken;
  if (deps.jwt && token.split('.').length === 3) return deps.jwt(token);
  throw new UnauthenticatedError('unknown, expired or revoked token');
}

/** Records a refusal (best effort: an unreachable database must not turn it into a pass) and returns its error. */
async function refusal(deps: AuthDeps, r: { principal: string; method: string; code: Code; message: string }): Promise<ConnectError> {
  await deps.audit.refused({ principal: r.principal, method: r.method, code: Code[r.code], message: r.message });
  return new ConnectError(r.message, r.code);
}
