import { createContextKey, type HandlerContext } from '@connectrpc/connect';

/**
 * The scopes a caller may hold. Each RPC needs one (see `rpc/policy.ts`); `tokens:admin`
 * manages tokens and is held only by admin tokens; `metrics:read` reads `/metrics`, which
 * names every site.
 */
export const SCOPES = [
  'telemetry:write',
  'readings:read',
  'registry:admin',
  'marketdata:write',
  'dispatch:write',
  'control:write',
  'tokens:admin',
  'metrics:read',
] as const;
export type Scope = (typeof SCOPES)[number];

/**
 * Who is calling, as established by authentication: a static token, a JWT, a client
 * certificate, or (authentication off) the built-in unrestricted principal.
 */
export interface Principal {
  /** Stable name for audit and rate limits, e.g. `token:3f2a…`, `jwt:trader-1`, `cert:site-a`. */
  readonly id: string;
  readonly kind: 'token' | 'jwt' | 'certificate' | 'unrestricted';
  readonly scopes: ReadonlySet<Scope>;
  /** The sites the caller is bound to; `'*'` for every site. */
  readonly sites: ReadonlySet<string> | '*';
  /**
   * The caller's identity beyond its credential, where it has one: `jwt:<iss> <sub>` for a
   * JWT, so a re-issued JWT of the same subject is the same caller. Absent otherwise, and
   * `id` is the identity: a static token's id (a rotated token is a new caller), a
   * certificate's subject (`cert:<CN>`, the same across renewals), `unrestricted`.
   */
  readonly identity?: string;
}

/**
 * Who owns the request ids (idempotency keys) a caller sends: its stable identity (see
 * {@link Principal.identity}). Two callers never see each other's keys; a JWT subject's
 * retry matches across re-issued JWTs, a static token's only while it is the same token.
 */
export function stableIdentity(principal: Principal): string {
  return principal.identity ?? principal.id;
}

/** The principal of every call while authentication is off (`POWERPLANE_AUTH=off`). */
export const UNRESTRICTED: Principal = { id: 'unrestricted', kind: 'unrestricted', scopes: new Set(SCOPES), sites: '*' };

/** Where the authentication interceptor leaves the caller for handlers and later interceptors. */
export const principalKey = createContextKey<Principal>(UNRESTRICTED, { description: 'the authenticated caller' });

/** The caller of a call. */
export function principalOf(context: Pick<HandlerContext, 'values'>): Principal {
  return context.values.get(principalKey);
}

/**
 * The names people know principals by, by principal id (`Principal.id`, as stored with
 * what they did): a token's name, a JWT's subject, a certificate's subject. A principal
 * without a known name is absent. One call looks up a whole list (a page of instructions).
 */
export type PrincipalNames = (principalIds: readonly string[]) => Promise<ReadonlyMap<string, string>>;

/** Whether the caller may touch `site`. */
export function mayAccessSite(principal: Principal, site: string): boolean {
  return principal.sites === '*' || principal.sites.has(site);
}
