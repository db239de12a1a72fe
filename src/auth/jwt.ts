import { createPublicKey, createSecretKey, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createLocalJWKSet, errors, jwtVerify, type JWTVerifyGetKey } from 'jose';
import type { JwtConfig } from '../config.ts';
import { InvalidArgumentError, UnauthenticatedError } from '../errors.ts';
import { textProblem } from '../text.ts';
import { SCOPES, type Principal, type Scope } from '../rpc/principal.ts';

/** Allowed clock difference for `exp` and `nbf`, seconds. */
export const CLOCK_TOLERANCE_S = 30;

/** Verifies JWTs and turns their claims into a principal. */
export type JwtVerifier = (token: string) => Promise<Principal>;

/**
 * Loads the verification key (a PEM public key, a JWKS JSON file, or for HS* algorithms a
 * shared secret file) and returns a verifier that enforces the algorithm allowlist,
 * `iss`, `aud`, `exp`/`nbf` (with {@link CLOCK_TOLERANCE_S} of skew) and a `sub`.
 *
 * Claims used: `sub` (the principal is `jwt:<sub>`; with `iss`, its stable identity
 * `jwt:<iss> <sub>` owns its request ids), `scope` (space-separated, OAuth 2
 * style) or `scp` (array), and `sites`, required: an array of site names, or exactly
 * `["*"]` for every site (see {@link sitesOf}).
 */
export async function createJwtVerifier(config: JwtConfig): Promise<JwtVerifier> {
  const key = await loadKey(config);
  return async (token) => {
    let payload;
    try {
      ({ payload } = await jwtVerify(token, key as JWTVerifyGetKey, {
        algorithms: [...config.algorithms],
        issuer: config.issuer,
        audience: config.audience,
        clockTolerance: CLOCK_TOLERANCE_S,
        requiredClaims: ['sub', 'exp'],
      }));
    } catch (err) {
      throw new UnauthenticatedError(`invalid JWT - ${describe(err)}`);
    }
    // The subject and issuer become the principal stored with every change the caller makes.
    for (const claim of ['sub', 'iss'] as const) {
      const problem = typeof payload[claim] === 'string' ? textProblem(payload[claim], MAX_CLAIM_LENGTH) : undefined;
      if (problem !== undefined) throw new UnauthenticatedError(`invalid JWT - the ${claim} claim ${problem}`);
    }
    const scopes = typeof payload.scope === 'string' ? payload.scope.split(' ') : Array.isArray(payload.scp) ? payload.scp : [];
    const known = scopes.filter((s): s is Scope => (SCOPES as readonly unknown[]).includes(s));
    // The issuer is a URL (no spaces), so the first space ends it.
    return {
      id: `jwt:${payload.sub}`,
      identity: `jwt:${payload.iss ?? ''} ${payload.sub}`,
      kind: 'jwt',
      scopes: new Set(known),
      sites: sitesOf(payload.sites),
    };
  };
}

/** The longest subject, issuer or site name a JWT may carry (a site name's limit as well). */
const MAX_CLAIM_LENGTH = 200;

/** The one spelling of "every site" in a JWT's `sites` claim: `["*"]`. */
export const ALL_SITES_CLAIM = '*';

/**
 * The sites of a JWT's `sites` claim. Fail closed: a token without the claim, or with one
 * that is empty or malformed, is refused rather than read as "every site" — an identity
 * provider that forgets the claim must not hand out the whole fleet. Every site must be
 * asked for explicitly, as `["*"]` alone; `*` among site names is refused as ambiguous.
 * (Messages avoid `:` `;` `,`, which gRPC clients would see percent-encoded.)
 */
export function sitesOf(claim: unknown): Principal['sites'] {
  if (claim === undefined)
    throw new UnauthenticatedError('invalid JWT - the sites claim is missing (it must be an array of site names or ["*"] for every site)');
  if (!Array.isArray(claim) || claim.length === 0 || !claim.every((s) => typeof s === 'string' && s.trim() !== '')) {
    throw new UnauthenticatedError('invalid JWT - the sites claim must be an array of site names or ["*"] for every site');
  }
  const sites = claim as string[];
  const problem = sites.map((site) => textProblem(site, MAX_CLAIM_LENGTH)).find((p) => p !== undefined);
  if (problem !== undefined) throw new UnauthenticatedError(`invalid JWT - each name of the sites claim ${problem}`);
  if (!sites.includes(ALL_SITES_CLAIM)) return new Set(sites);
  if (sites.length === 1) return '*';
  throw new UnauthenticatedError('invalid JWT - the sites claim must be ["*"] alone or site names without "*"');
}

async function loadKey(config: JwtConfig): Promise<KeyObject | JWTVerifyGetKey> {
  let text: string;
  try {
    text = await readFile(config.keyFile, 'utf8');
  } catch (err) {
    throw new InvalidArgumentError(
      'POWERPLANE_JWT_KEY_FILE',
      config.keyFile,
      `cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }
  const trimmed = text.trim();
  if (trimmed.startsWith('-----BEGIN')) return createPublicKey(trimmed);
  if (trimmed.startsWith('{')) return createLocalJWKSet(JSON.parse(trimmed));
  if (!config.algorithms.every((a) => a.startsWith('HS'))) {
    throw new InvalidArgumentError(
      'POWERPLANE_JWT_KEY_FILE',
      config.keyFile,
      'must hold a PEM public key or a JWKS (a shared secret only with HS* algorithms alone)',
    );
  }
  return createSecretKey(Buffer.from(trimmed, 'utf8'));
}

function describe(err: unknown): string {
  if (err instanceof errors.JWTExpired) return 'expired';
  if (err instanceof errors.JWTClaimValidationFailed)
    return `claim ${err.claim} ${err.reason === 'check_failed' ? 'does not match' : 'is missing or invalid'}`;
  if (err instanceof errors.JOSEAlgNotAllowed) return 'algorithm not allowed';
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'bad signature';
  if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid) return 'malformed';
  return 'cannot be verified';
}
