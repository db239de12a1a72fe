import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { sql, type Kysely, type Selectable } from 'kysely';
import { InvalidArgumentError, NotFoundError } from '../errors.ts';
import { decodePageToken, encodePageToken, pageSize, takePage, type PageBudget } from '../page-token.ts';
import { requireUuid } from '../uuid.ts';
import { SCOPES, type Principal, type Scope } from '../rpc/principal.ts';
import type { ApiTokensTable, AuthTables } from './tokens.table.ts';

/** Every static token starts with this, so it is recognisable in a leaked config or log. */
export const TOKEN_PREFIX = 'pp_';

/** The exact shape of a static token: the prefix and 32 random bytes in base64url. */
const TOKEN_SHAPE = /^pp_[A-Za-z0-9_-]{43}$/;

/** A token as listed: everything but the secret. */
export interface TokenInfo {
  readonly id: string;
  readonly name: string;
  readonly prefix: string;
  readonly scopes: readonly Scope[];
  /** Empty = every site. */
  readonly sites: readonly string[];
  readonly createdBy: string;
  readonly createdAt: Date;
  readonly expireTime?: Date;
  readonly revokedAt?: Date;
}

/** What a new token may do. */
export interface NewToken {
  readonly name: string;
  readonly scopes: readonly string[];
  readonly sites?: readonly string[];
  /**
   * When it stops working: in the future, at most {@link MAX_TOKEN_LIFETIME_DAYS} ahead.
   * Unset means never, which only the server's own first-start admin token uses: the API
   * fills in {@link defaultTokenExpiry} instead.
   */
  readonly expireTime?: Date;
}

/** Which page of tokens to list. */
export interface TokenPageRequest {
  readonly pageSize: number;
  readonly pageToken: string;
  readonly budget?: PageBudget<TokenInfo>;
}

/** A page of tokens. */
export interface TokenPage {
  readonly tokens: TokenInfo[];
  /** Fetches the next page; empty on the last. */
  readonly nextPageToken: string;
}

/** Lifetime of a token created through the API without an expiry: 90 days. */
export const DEFAULT_TOKEN_LIFETIME_DAYS = 90;

/**
 * Longest lifetime a new token may be given: 365 days. A leaked secret stays useful at most
 * this long even if nobody revokes it; rotating once a year is the floor for any credential.
 */
export const MAX_TOKEN_LIFETIME_DAYS = 365;

/**
 * Most sites a token may be bound to. Every call of the token carries its sites into the
 * domain queries, so the list must stay small; a caller for more sites than this is a
 * fleet-wide one and gets an unbound token.
 */
export const MAX_TOKEN_SITES = 1000;

/**
 * Slack for the client's clock when checking the maximum: `--expires-days 365` is computed
 * on the caller's machine, whose clock may run a little ahead of the server's.
 */
const EXPIRY_CLOCK_SKEW_MS = 5 * 60_000;

const DAY_MS = 86_400_000;

/** The expiry given to a token created through the API without one. */
export function defaultTokenExpiry(nowMs: number): Date {
  return new Date(nowMs + DEFAULT_TOKEN_LIFETIME_DAYS * DAY_MS);
}

/** Static API tokens: created with a random secret, stored as its SHA-256, verified by lookup. */
export interface TokenStore {
  create(token: NewToken, createdBy: string): Promise<{ info: TokenInfo; secret: string }>;
  /**
   * One page of tokens, newest first; with `withinSites`, only tokens bound to a subset of
   * those sites. `page` sizes it as the API does (0 means 100, at most 1000; a budget ends
   * a page early by bytes) and continues from a previous page's token.
   */
  list(includeRevoked: boolean, withinSites?: ReadonlySet<string>, page?: TokenPageRequest): Promise<TokenPage>;
  /** With `withinSites`, a token not bound to a subset of those sites is NOT_FOUND. */
  revoke(id: string, revokedBy: string, withinSites?: ReadonlySet<string>): Promise<TokenInfo>;
  /** Whether any token that can manage tokens is still valid (first-start bootstrap). */
  hasAdmin(): Promise<boolean>;
  /** The principal of a presented secret, or undefined when it is unknown, revoked or expired. */
  verify(secret: string): Promise<Principal | undefined>;
}

/** Most valid tokens {@link createTokenStore} remembers, and most refused secrets. */
const MAX_CACHED = 10_000;

/**
 * Creates the token store. Lookups are keyed by the secret's hash:
 *
 * - A valid token is remembered for `cacheMs` (revocation takes at most that long) with its
 *   expiry, which is checked on every use, so a token stops working at its `expire_time`
 *   whether or not it is cached.
 * - A refused secret (unknown, revoked or expired) is remembered without a time limit, up
 *   to {@link MAX_CACHED} (least recently refused dropped first): none of them can ever
 *   become valid, since every new token gets a fresh random secret and revocation and
 *   expiry are final. A client retrying a dead token costs no query.
 * - Lookups of one secret at once share a single query.
 * - Anything not shaped like a token is refused before any lookup.
 *
 * Random well-formed secrets still cost a query each; the server limits how many failed
 * authentications one address may make.
 */
export function createTokenStore(deps: { db: Kysely<object>; cacheMs: number; now?: () => number }): TokenStore {
  const db = deps.db.withTables<AuthTables>();
  const now = deps.now ?? Date.now;
  const cache = new Map<string, { principal: Principal; until: number; expiresAt: number }>();
  const refused = new Map<string, true>();
  const inFlight = new Map<string, Promise<{ principal: Principal; expiresAt: number } | undefined>>();
  return {
    async create(token, createdBy) {
      const checked = validateNewToken(token, now());
      const secret = TOKEN_PREFIX + randomBytes(32).toString('base64url');
      const row = await db
        .insertInto('powerplane.api_tokens')
        .values({
          id: randomUUID(),
          name: checked.name,
          token_hash: hashToken(secret),
          prefix: secret.slice(0, TOKEN_PREFIX.length + 6),
          scopes: [...checked.scopes],
          sites: checked.sites.length ? [...checked.sites] : null,
          created_by: createdBy,
          expire_time: checked.expireTime ?? null,
          revoked_at: null,
          revoked_by: null,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      return { info: toInfo(row), secret };
    },
    async list(includeRevoked, withinSites, page = { pageSize: 0, pageToken: '' }) {
      const limit = pageSize(page.pageSize, 100, 1_000);
      const filters = { includeRevoked, withinSites: withinSites ? [...withinSites].sort() : null };
      // created_at in whole microseconds (exact in a double), so the key is exact.
      const createdUs = sql<number>`(extract(epoch from created_at) * 1000000)::float8`;
      const after = decodePageToken<[number, string]>(page.pageToken, filters, ['number', 'uuid']);
      let query = db
        .selectFrom('powerplane.api_tokens')
        .selectAll()
        .select(createdUs.as('created_us'))
        .orderBy('created_at', 'desc')
        .orderBy('id')
        .limit(limit + 1);
      if (!includeRevoked) query = query.where('revoked_at', 'is', null);
      // Bound to sites, all of them within `withinSites` (see `within`).
      if (withinSites)
        query = query.where((eb) =>
          eb.and([eb(eb.fn('cardinality', ['sites']), '>', 0), sql<boolean>`sites <@ ${[...withinSites]}::text[]`]),
        );
      if (after) query = query.where(sql<boolean>`(${createdUs} < ${after[0]} or (${createdUs} = ${after[0]} and id > ${after[1]}))`);
      const rows = await query.execute();
      const taken = takePage(rows, limit, page.budget && { bytes: page.budget.bytes, sizeOf: (row) => page.budget!.sizeOf(toInfo(row)) });
      const last = taken.page.at(-1);
      return {
        tokens: taken.page.map(toInfo),
        nextPageToken: taken.more && last ? encodePageToken([last.created_us, last.id], filters) : '',
      };
    },
    async revoke(id, revokedBy, withinSites) {
      requireUuid('id', id);
      const existing = await db.selectFrom('powerplane.api_tokens').selectAll().where('id', '=', id).executeTakeFirst();
      if (!existing || !within(toInfo(existing), withinSites)) throw new NotFoundError('token', id);
      const revoked = await db
        .updateTable('powerplane.api_tokens')
        .set({ revoked_at: new Date(now()), revoked_by: revokedBy })
        .where('id', '=', id)
        .where('revoked_at', 'is', null)
        .returningAll()
        .executeTakeFirst();
      cache.clear();
      return toInfo(revoked ?? existing);
    },
    async hasAdmin() {
      const row = await db
        .selectFrom('powerplane.api_tokens')
        .select('id')
        .where('revoked_at', 'is', null)
        .where((eb) => eb.or([eb('expire_time', 'is', null), eb('expire_time', '>', new Date(now()))]))
        .where((eb) => eb(eb.val('tokens:admin'), '=', eb.fn.any('scopes')))
        .executeTakeFirst();
      return row !== undefined;
    },
    async verify(secret) {
      if (!TOKEN_SHAPE.test(secret)) return undefined;
      const hash = hashToken(secret);
      const key = hash.toString('base64');
      const cached = cache.get(key);
      if (cached) {
        const at = now();
        if (cached.expiresAt <= at) {
          cache.delete(key);
          remember(refused, key);
          return undefined;
        }
        if (cached.until > at) return cached.principal;
        cache.delete(key);
      }
      if (refused.has(key)) {
        remember(refused, key);
        return undefined;
      }
      let lookup = inFlight.get(key);
      if (!lookup) {
        lookup = lookUp(hash).finally(() => inFlight.delete(key));
        inFlight.set(key, lookup);
      }
      const found = await lookup;
      // Checked again after the query: it may have taken long enough for the token to expire.
      const at = now();
      if (!found || found.expiresAt <= at) {
        remember(refused, key);
        return undefined;
      }
      if (cache.size >= MAX_CACHED) cache.delete(cache.keys().next().value!);
      cache.set(key, { ...found, until: at + deps.cacheMs });
      return found.principal;
    },
  };

  async function lookUp(hash: Buffer): Promise<{ principal: Principal; expiresAt: number } | undefined> {
    const row = await db.selectFrom('powerplane.api_tokens').selectAll().where('token_hash', '=', hash).executeTakeFirst();
    if (!row || row.revoked_at) return undefined;
    const principal: Principal = {
      id: `token:${row.id}`,
      kind: 'token',
      scopes: new Set(row.scopes as Scope[]),
      sites: row.sites?.length ? new Set(row.sites) : '*',
    };
    return { principal, expiresAt: row.expire_time ? row.expire_time.getTime() : Number.POSITIVE_INFINITY };
  }
}

/** Adds `key` to a bounded set kept in least-recently-used order (the oldest goes first at the bound). */
function remember(set: Map<string, true>, key: string): void {
  set.delete(key);
  if (set.size >= MAX_CACHED) set.delete(set.keys().next().value!);
  set.set(key, true);
}

/** Whether a token is bound to sites that all lie within `sites` (always, without `sites`). */
function within(token: TokenInfo, sites: ReadonlySet<string> | undefined): boolean {
  return sites === undefined || (token.sites.length > 0 && token.sites.every((s) => sites.has(s)));
}

/** SHA-256 of a token's secret, as stored. */
export function hashToken(secret: string): Buffer {
  return createHash('sha256').update(secret).digest();
}

/** Checks a new token's fields, naming the first bad one. Pure. */
export function validateNewToken(token: NewToken, nowMs: number): { name: string; scopes: Scope[]; sites: string[]; expireTime?: Date } {
  const name = token.name.trim();
  if (name === '' || name.length > 200) throw new InvalidArgumentError('name', token.name, 'is required, at most 200 characters');
  if (token.scopes.length === 0) throw new InvalidArgumentError('scopes', [], `must name at least one of ${SCOPES.join(' ')}`);
  for (const [i, scope] of token.scopes.entries()) {
    if (!(SCOPES as readonly string[]).includes(scope))
      throw new InvalidArgumentError(`scopes[${i}]`, scope, `must be one of ${SCOPES.join(' ')}`);
  }
  const sites = token.sites ?? [];
  if (sites.length > MAX_TOKEN_SITES)
    throw new InvalidArgumentError('sites', sites.length, `must name at most ${MAX_TOKEN_SITES} sites (leave it empty for every site)`);
  for (const [i, site] of sites.entries()) {
    if (site.trim() === '') throw new InvalidArgumentError(`sites[${i}]`, site, 'must not be empty');
  }
  if (token.expireTime) checkExpireTime(token.expireTime, nowMs);
  return {
    name,
    scopes: [...new Set(token.scopes as Scope[])],
    sites: [...new Set(sites)],
    ...(token.expireTime ? { expireTime: token.expireTime } : {}),
  };
}

/** Refuses an expiry that is not a time, is past, or lies beyond {@link MAX_TOKEN_LIFETIME_DAYS}. */
function checkExpireTime(expireTime: Date, nowMs: number): void {
  const at = expireTime.getTime();
  // A timestamp far outside the Date range decodes to an invalid Date, which compares false to everything.
  if (Number.isNaN(at)) throw new InvalidArgumentError('expire_time', String(expireTime), 'must be a valid time');
  if (at <= nowMs) throw new InvalidArgumentError('expire_time', expireTime.toISOString(), 'must be in the future');
  if (at > nowMs + MAX_TOKEN_LIFETIME_DAYS * DAY_MS + EXPIRY_CLOCK_SKEW_MS) {
    throw new InvalidArgumentError('expire_time', expireTime.toISOString(), `must be at most ${MAX_TOKEN_LIFETIME_DAYS} days ahead`);
  }
}

function toInfo(row: Selectable<ApiTokensTable>): TokenInfo {
  return {
    id: row.id,
    name: row.name,
    prefix: row.prefix,
    scopes: row.scopes as Scope[],
    sites: row.sites ?? [],
    createdBy: row.created_by,
    createdAt: row.created_at,
    ...(row.expire_time ? { expireTime: row.expire_time } : {}),
    ...(row.revoked_at ? { revokedAt: row.revoked_at } : {}),
  };
}
