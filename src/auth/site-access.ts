import type { HandlerContext } from '@connectrpc/connect';
import { InvalidArgumentError, NotFoundError, PermissionDeniedError } from '../errors.ts';
import type { Registry } from '../registry/registry.ts';
import { mayAccessSite, principalOf, type Principal } from './principal.ts';

/**
 * Per-site authorization for handlers: a caller bound to sites touches only those sites
 * and their devices. Unrestricted callers (every site) cost nothing: no lookups.
 */
export interface SiteAccess {
  /** Throws PERMISSION_DENIED, naming `field`, unless the caller may touch `site`. */
  site(ctx: HandlerContext, site: string, field: string): void;
  /**
   * Throws PERMISSION_DENIED, naming `field`, unless the device is at a site the caller is
   * bound to. Unknown or malformed ids pass: the domain answers for them.
   */
  device(ctx: HandlerContext, id: string, field: string): Promise<void>;
  /** {@link device} for each id of a list field, naming `field[i]`. */
  devices(ctx: HandlerContext, ids: readonly string[], field: string): Promise<void>;
  /**
   * The site a list call is narrowed to: the requested one (checked), or for a caller
   * bound to exactly one site that site; a caller bound to several must name one.
   */
  listSite(ctx: HandlerContext, site: string, field: string): string | undefined;
}

/** Creates the site checks over the registry. */
export function createSiteAccess(registry: Pick<Registry, 'getDevice'>): SiteAccess {
  const access: SiteAccess = {
    site(ctx, site, field) {
      const principal = principalOf(ctx);
      if (!mayAccessSite(principal, site)) throw denied(principal, field, site);
    },
    async device(ctx, id, field) {
      const principal = principalOf(ctx);
      if (principal.sites === '*') return;
      const site = await siteOf(registry, id);
      if (site !== undefined && !mayAccessSite(principal, site)) {
        throw new PermissionDeniedError(`${field} is a device of site ${JSON.stringify(site)}, which ${principal.id} is not bound to`);
      }
    },
    async devices(ctx, ids, field) {
      for (const [i, id] of ids.entries()) await access.device(ctx, id, `${field}[${i}]`);
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
  return access;
}

function denied(principal: Principal, field: string, site: string): PermissionDeniedError {
  return new PermissionDeniedError(`${field} names site ${JSON.stringify(site)}, which ${principal.id} is not bound to`);
}

async function siteOf(registry: Pick<Registry, 'getDevice'>, id: string): Promise<string | undefined> {
  try {
    return (await registry.getDevice(id)).site;
  } catch (err) {
    if (err instanceof NotFoundError || err instanceof InvalidArgumentError) return undefined;
    throw err;
  }
}
