import type { HandlerContext } from '@connectrpc/connect';
import { InvalidArgumentError, NotFoundError, PermissionDeniedError } from '../errors.ts';
import type { Registry } from '../registry/registry.ts';
import { mayAccessSite, principalOf, type Principal } from './principal.ts';

/** Most device ids one call may ask the site check about (every list RPC allows at most this). */
const MAX_CHECKED_IDS = 1_000;

/**
 * Per-site authorization for handlers: a caller bound to sites touches only those sites
 * and their devices. Unrestricted callers (every site) cost nothing: no lookups.
 *
 * A device at a site the caller is not bound to is answered exactly like an unknown one
 * (NOT_FOUND naming the field), so a bound caller learns nothing of other sites' devices.
 */
export interface SiteAccess {
  /** Throws PERMISSION_DENIED, naming `field`, unless the caller may touch `site`. */
  site(ctx: HandlerContext, site: string, field: string): void;
  /**
   * Throws NOT_FOUND, naming `field`, when the device is at a site the caller is not bound
   * to. Unknown or malformed ids pass: the domain answers for them.
   */
  device(ctx: HandlerContext, id: string, field: string): Promise<void>;
  /** {@link device} for each id of a list field (one lookup for all), naming `field[i]`. */
  devices(ctx: HandlerContext, ids: readonly string[], field: string): Promise<void>;
  /**
   * The site a list call is narrowed to: the requested one (checked), or for a caller
   * bound to exactly one site that site; a caller bound to several must name one.
   */
  listSite(ctx: HandlerContext, site: string, field: string): string | undefined;
}

/** Creates the site checks over the registry. */
export function createSiteAccess(registry: Pick<Registry, 'sitesOf'>): SiteAccess {
  const access: SiteAccess = {
    site(ctx, site, field) {
      const principal = principalOf(ctx);
      if (!mayAccessSite(principal, site)) throw denied(principal, field, site);
    },
    async device(ctx, id, field) {
      await check(principalOf(ctx), [id], field, () => field);
    },
    async devices(ctx, ids, field) {
      await check(principalOf(ctx), ids, field, (i) => `${field}[${i}]`);
    },
    listSite(ctx, site, field) {
      const principal = principalOf(ctx);
      if (site !== '') {
        access.site(ctx, site, field);
        return site;
      }
      if (principal.sites === '*') return undefined;
      if (principal.sites.size === 1) return [...principal.sites][0];
      throw new PermissionDeniedError(`${field} is required for ${principal.id}, which is bound to sites ${[...principal.sites].join(' ')}`);
    },
  };

  async function check(principal: Principal, ids: readonly string[], field: string, fieldOf: (i: number) => string): Promise<void> {
    if (principal.sites === '*' || ids.length === 0) return;
    // Counted before any lookup: the call's own limit (at most this) would refuse more anyway.
    if (ids.length > MAX_CHECKED_IDS) throw new InvalidArgumentError(field, ids.length, `must name at most ${MAX_CHECKED_IDS} devices`);
    const sites = await registry.sitesOf(ids);
    for (const [i, id] of ids.entries()) {
      const site = sites.get(id.toLowerCase());
      if (site !== undefined && !mayAccessSite(principal, site)) throw new NotFoundError('device', id, fieldOf(i));
    }
  }

  return access;
}

function denied(principal: Principal, field: string, site: string): PermissionDeniedError {
  return new PermissionDeniedError(`${field} names site ${JSON.stringify(site)}, which ${principal.id} is not bound to`);
}
