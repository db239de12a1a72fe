import { sql, type RawBuilder } from 'kysely';

/**
 * The sites a call may see: `'*'` for every site, else the sites its caller is bound to.
 *
 * The rule every read that names a device or an instruction follows: for a caller bound to
 * sites, a device or instruction outside them is answered exactly as one that does not
 * exist — the same code, the same message, the same database round trips. Reads apply it
 * inside the query that would have found the row ({@link deviceIdsWithin}), or on the row
 * that query returned ({@link withinSites}), never with a lookup of their own, so an id of
 * another site costs exactly what an unknown id costs.
 */
export type SiteScope = ReadonlySet<string> | '*';

/** The scope of a call that may see every site (internal callers, unrestricted principals). */
export const EVERY_SITE: SiteScope = '*';

/**
 * Whether a row at `site` is visible within `sites`. A row without a site (a battery
 * instruction whose device is gone from the registry) is visible to unrestricted callers only.
 */
export function withinSites(sites: SiteScope, site: string | null | undefined): boolean {
  return sites === '*' || (site != null && sites.has(site));
}

/**
 * `ids` as a `uuid[]` SQL value, keeping only those that name a device at one of `sites`:
 * for every site the ids themselves (no lookup); otherwise a registry subquery inside the
 * statement that uses it, so leaving an id out costs no round trip of its own. An id of
 * another site then matches no rows, exactly like an id that names no device.
 */
export function deviceIdsWithin(ids: readonly string[], sites: SiteScope): RawBuilder<string[]> {
  if (sites === '*') return sql<string[]>`${[...ids]}::uuid[]`;
  return sql<
    string[]
  >`array(select id from flux.mg_device_registry where id = any(${[...ids]}::uuid[]) and site = any(${[...sites]}::text[]))`;
}

/**
 * SQL condition: the device id in `column` names a device at one of `sites` (`true` for
 * every site). For filters over tables keyed by device, inside the statement itself.
 */
export function deviceWithin(column: RawBuilder<unknown>, sites: SiteScope): RawBuilder<boolean> {
  if (sites === '*') return sql<boolean>`true`;
  return sql<boolean>`${column} in (select id from flux.mg_device_registry where site = any(${[...sites]}::text[]))`;
}
