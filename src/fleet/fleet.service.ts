import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { ServiceImpl } from '@connectrpc/connect';
import { AlertKind as PbAlertKind, FleetService } from '../../gen/powerplane/v1/fleet_pb.ts';
import { InvalidArgumentError } from '../errors.ts';
import type { SiteAccess } from '../rpc/site-access.ts';
import type { FleetSummaries } from './fleet-summary.ts';

/** Most sites one GetFleetSummary may name. */
export const MAX_SUMMARY_SITES = 1_000;

/**
 * The FleetService RPCs: check the sites named against the caller's binding (PERMISSION_DENIED
 * naming `sites[i]`, before any read), summarise, encode. With no site named, a caller bound
 * to sites gets its sites and an unbound one every site with an active device.
 */
export function createFleetService(deps: { summaries: FleetSummaries; access: SiteAccess }): ServiceImpl<typeof FleetService> {
  const { access } = deps;
  return {
    async getFleetSummary(req, ctx) {
      if (req.sites.length > MAX_SUMMARY_SITES)
        throw new InvalidArgumentError('sites', req.sites.length, `must name at most ${MAX_SUMMARY_SITES} sites`);
      req.sites.forEach((site, i) => {
        if (site.trim() === '') throw new InvalidArgumentError(`sites[${i}]`, site, 'must not be empty');
        access.site(ctx, site, `sites[${i}]`);
      });
      const scope = access.scope(ctx);
      const selection = req.sites.length > 0 ? req.sites : scope === '*' ? '*' : [...scope];
      const summary = await deps.summaries.summarize(selection);
      return {
        totals: summary.totals,
        sites: summary.sites.map((s) => ({
          site: s.site,
          totals: s.totals,
          undeliveredPowerKw: s.undeliveredKw,
          ...(s.lastReadingTime ? { lastReadingTime: timestampFromDate(s.lastReadingTime) } : {}),
        })),
        alerts: summary.alerts.map((a) => ({
          kind: PbAlertKind[a.kind],
          site: a.site,
          deviceId: a.deviceId ?? '',
          deviceName: a.deviceName ?? '',
          since: timestampFromDate(a.since),
          reason: a.reason,
        })),
        asOf: timestampFromDate(summary.asOf),
        maxTelemetryAgeSeconds: summary.maxTelemetryAgeMs / 1_000,
      };
    },
  };
}
