import { sql, type RawBuilder } from 'kysely';

/**
 * `any($1::uuid[])`, for `where(column, '=', anyUuid(ids))`: a list of ids as one array
 * parameter. A 1000-battery site is then one parameter to compile, send and plan, where
 * `in (…)` costs one per id.
 */
export function anyUuid(ids: readonly string[]): RawBuilder<string> {
  return sql<string>`any(${[...ids]}::uuid[])`;
}
