import { createContextKey, type ConnectError, type ContextValues } from '@connectrpc/connect';
import { UnauthenticatedError } from '../errors.ts';
import type { JwtVerifier } from './jwt.ts';
import type { Principal } from '../rpc/principal.ts';
import type { TokenStore } from './tokens.ts';

/** What authentication needs: the token store, and optionally JWTs and client certificates. */
export interface AuthenticatorDeps {
  readonly tokens: TokenStore;
  readonly jwt?: JwtVerifier;
  /** The principal of a verified client certificate, when mutual TLS is on. */
  readonly certificatePrincipal?: (values: ContextValues) => Principal | undefined;
}

/**
 * Establishes who is calling from the request's headers and connection alone: the
 * `authorization` header (`Bearer <token>`, a static token or a JWT) or, without one, the
 * verified client certificate in `values`. Throws {@link UnauthenticatedError} saying why
 * not. Never reads a request body.
 */
export type Authenticator = (authorization: string | null, values: ContextValues) => Promise<Principal>;

/** Creates the {@link Authenticator} over the token store, the JWT verifier and certificates. */
export function createAuthenticator(deps: AuthenticatorDeps): Authenticator {
  return async (header, values) => {
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
  };
}

/**
 * What the server decided about a call from its headers, before reading its body: the
 * caller, or the refusal it was answered with (already audited). Absent when nothing
 * decided before the body (an in-memory transport in tests): the authentication
 * interceptor then authenticates by itself.
 */
export type Authentication = { readonly principal: Principal } | { readonly refusal: ConnectError };

/** Where the server leaves the {@link Authentication} of a call for the authentication interceptor. */
export const authenticationKey = createContextKey<Authentication | undefined>(undefined, {
  description: 'authentication done before the body was read',
});
