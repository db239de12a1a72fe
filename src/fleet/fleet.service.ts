import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { ServiceImpl } from '@connectrpc/connect';
import { AlertKind as PbAlertKind, FleetService } from '../../gen/powerplane/v1/fleet_pb.ts';
import { toPbState } from '../dispatch/dispatch.service.ts';
import { InvalidArgumentError } from '../errors.ts';
import type { SiteAccess } from '../rpc/site-access.ts';
import type { FleetSummaries } from './fleet-summary.ts';

/** Most sites one GetFleetSummary may name. */
export const MAX_SUMMARY_SITES = 1_000;

/** Most batteries one GetFleetSummary may list with `include_batteries`. */
export const MAX_SUMMARY_BATTERIES = 2_000;

/**
 * The FleetService RPCs: check the sites named against the caller's binding (PERMISSION_DENIED
 * naming `sites[i]`, before any read), summarise, encode. With no site named, a caller bound
 * to sites gets its sites and an unbound one every site with an active device; with
 * `include_batteries`, a row per battery of those sites (at most {@link MAX_SUMMARY_BATTERIES}).
 */
export function createFleetService(deps: {
  summaries: FleetSummaries;
  access: SiteAccess;
  /** Most batteries listed with `include_batteries`; default {@link MAX_SUMMARY_BATTERIES}. */
  maxBatteries?: number;
}): ServiceImpl<typeof FleetService> {
  const { access } = deps;
  const maxBatteries = deps.maxBatteries ?? MAX_SUMMARY_BATTERIES;
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
      if (req.includeBatteries && summary.batteries.length > maxBatteries)
        throw new InvalidArgumentError(
          'include_batteries',
          true,
          `the selected sites have ${summary.batteries.length} batteries, more than ${maxBatteries}: name fewer sites`,
        );
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
        batteries: req.includeBatteries
          ? summary.batteries.map(({ device, state }) => ({
              deviceId: device.id,
              site: device.site,
              name: device.name,
              minSoePercent: device.bess?.minSoePercent ?? 0,
              maxSoePercent: device.bess?.maxSoePercent ?? 0,
              control: toPbState(state),
              ...(state.soePercent !== undefined ? { soePercent: state.soePercent } : {}),
              ...(state.reportedPowerKw !== undefined ? { reportedPowerKw: state.reportedPowerKw } : {}),
            }))
          : [],
      };
    },
  };
}
