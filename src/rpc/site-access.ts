import type { HandlerContext } from '@connectrpc/connect';
import { PermissionDeniedError } from '../errors.ts';
import type { SiteScope } from '../storage/site-scope.ts';
import { mayAccessSite, principalOf, type Principal } from './principal.ts';

/**
 * Per-site authorization for handlers, one rule for each kind of name a request carries:
 *
 * - A site name outside the caller's binding is PERMISSION_DENIED naming the field and the
 *   site, whether or not such a site exists: the answer is decided from the binding alone,
 *   before any lookup, so it tells nothing about other sites.
 * - A device id or instruction id outside the caller's sites is answered exactly as an id
 *   that names nothing: the handler passes {@link SiteAccess.scope} to the domain, whose
 *   reads apply it in the query that looks the id up (`storage/site-scope.ts`). Unknown ids
 *   and other sites' ids then give the same code, message and database round trips.
 *
 * Unrestricted callers (every site) cost nothing: no checks, no extra conditions.
 */
export interface SiteAccess {
  /** Throws PERMISSION_DENIED, naming `field`, unless the caller is bound to `site` (or to every site). */
  site(ctx: HandlerContext, site: string, field: string): void;
  /** The sites the caller's reads may see, for the domain's queries. */
  scope(ctx: HandlerContext): SiteScope;
  /**
   * The site a list call is narrowed to: the requested one (checked), or for a caller
   * bound to exactly one site that site; a caller bound to several must name one.
   */
  listSite(ctx: HandlerContext, site: string, field: string): string | undefined;
}

/** Creates the site checks; they need no lookups (the domains' queries apply the scope). */
export function createSiteAccess(): SiteAccess {
  const access: SiteAccess = {
    site(ctx, site, field) {
      const principal = principalOf(ctx);
      if (!mayAccessSite(principal, site)) throw denied(principal, field, site);
    },
    scope(ctx) {
      return principalOf(ctx).sites;
    },
    listSite(ctx, site, field) {
      const principal = principalOf(ctx);
      if (site !== '') {
        access.site(ctx, site, field);
        return site;
      }
      if (principal.sites === '*') return undefined;
      if (principal.sites.size === 1) return [...principal.sites][0];
      throw new PermissionDeniedError(
        `${field} is required for ${principal.id}, which is bound to sites ${[...principal.sites].join(' ')}`,
      );
    },
  };
  return access;
}

function denied(principal: Principal, field: string, site: string): PermissionDeniedError {
  return new PermissionDeniedError(`${field} names site ${JSON.stringify(site)}, which ${principal.id} is not bound to`);
}
