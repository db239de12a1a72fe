/**
 * Display names of principals, for the records that name who did something (dispatch
 * instructions): `token:<id>` is the token's name from `powerplane.api_tokens`, `jwt:<sub>`
 * the JWT's subject, `cert:<subject>` the certificate's subject common name.
 */
import type { Kysely } from 'kysely';
import type { PrincipalNames } from '../rpc/principal.ts';
import { anyUuid } from '../storage/any-uuid.ts';
import { isUuid } from '../uuid.ts';
import type { AuthTables } from './tokens.table.ts';

/** Token names remembered at most; a name never changes, so one stays until pushed out. */
const MAX_CACHED_NAMES = 10_000;

const TOKEN = 'token:';
const JWT = 'jwt:';
const CERT = 'cert:';

/**
 * Creates the lookup. Token names are read in one query for all the tokens of a list that
 * are not remembered yet (none when all are), and remembered: a token is never renamed.
 * JWT and certificate names are the principal id's own text.
 */
export function createPrincipalNames(deps: { db: Kysely<object> }): PrincipalNames {
  const db = deps.db.withTables<AuthTables>();
  const tokenNames = new Map<string, string>();
  return async (principalIds) => {
    const names = new Map<string, string>();
    const missing = new Set<string>();
    for (const id of new Set(principalIds)) {
      if (id.startsWith(JWT) && id.length > JWT.length) names.set(id, id.slice(JWT.length));
      else if (id.startsWith(CERT) && id.length > CERT.length) names.set(id, id.slice(CERT.length));
      else if (id.startsWith(TOKEN) && isUuid(id.slice(TOKEN.length))) {
        const tokenId = id.slice(TOKEN.length).toLowerCase();
        const known = tokenNames.get(tokenId);
        if (known !== undefined) names.set(id, known);
        else missing.add(tokenId);
      }
    }
    if (missing.size > 0) {
      const rows = await db
        .selectFrom('powerplane.api_tokens')
        .select(['id', 'name'])
        .where('id', '=', anyUuid([...missing]))
        .execute();
      for (const row of rows) {
        if (tokenNames.size >= MAX_CACHED_NAMES) tokenNames.delete(tokenNames.keys().next().value!);
        tokenNames.set(row.id, row.name);
      }
      for (const id of new Set(principalIds)) {
        const name = id.startsWith(TOKEN) ? tokenNames.get(id.slice(TOKEN.length).toLowerCase()) : undefined;
        if (name !== undefined) names.set(id, name);
      }
    }
    return names;
  };
}
