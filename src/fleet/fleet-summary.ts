/**
 * The fleet summary: totals of the fleet and of each site, and the open alerts, read in a
 * fixed handful of set-based queries whatever the fleet's size. The control state of the
 * batteries (intended and reported source, current setpoint, override, latest reading) is
 * what GetControlState answers, read by the same code (`ControlState.ofDevices`).
 */
import type { Kysely } from 'kysely';
import type { ControlState } from '../dispatch/control-state.ts';
import { isRemote } from '../dispatch/command-source.ts';
import type { Device } from '../registry/registered-device.ts';
import { byNewest, siteAlerts, type Alert, type SiteFacts } from './fleet-alerts.ts';
import * as repo from './fleet.repository.ts';
import { addBattery, addTotals, emptyTotals, rounded, shortfalls, type BatteryFacts, type Totals } from './fleet-totals.ts';

export type { SiteSelection } from './fleet.repository.ts';

/** One site's part of the summary. */
export interface SiteSummary {
  readonly site: string;
  readonly totals: Totals;
  /** What its instructions in force ask that its batteries are not set to deliver, kW, ≥ 0. */
  readonly undeliveredKw: number;
  readonly lastReadingTime?: Date;
}

/** The fleet at one instant. */
export interface FleetSummary {
  readonly totals: Totals;
  /** By site name. */
  readonly sites: SiteSummary[];
  /** Newest `since` first. */
  readonly alerts: Alert[];
  readonly asOf: Date;
  readonly maxTelemetryAgeMs: number;
  /** Every active battery of the selected sites with its control state, by site, name and id. */
  readonly batteries: ReadonlyArray<Pick<BatteryFacts, 'device' | 'state'>>;
}

/** Reads fleet summaries. */
export interface FleetSummaries {
  /**
   * The summary of the selected sites: every site with an active device for `'*'`, else
   * exactly the sites named (one without devices has zero totals). The caller has checked
   * the names against its binding.
   */
  summarize(sites: repo.SiteSelection): Promise<FleetSummary>;
}

/** Dependencies of {@link createFleetSummaries}. */
export interface FleetSummaryDeps {
  readonly db: Kysely<object>;
  readonly controlState: ControlState;
  /** Battery telemetry older than this is stale (the control loop holds the battery), ms. */
  readonly maxTelemetryAgeMs: number;
  readonly now?: () => Date;
}

/**
 * Creates the summary reader. Its reads: the registry's active devices of the sites; then
 * together the control state of the batteries (its own few queries), the meters' latest
 * readings, the batteries' runs of failed setpoints and the instructions in force; then,
 * only when some battery reports another source than intended, when each began reporting it.
 */
export function createFleetSummaries(deps: FleetSummaryDeps): FleetSummaries {
  const now = deps.now ?? (() => new Date());
  const maxAgeMs = deps.maxTelemetryAgeMs;
  return {
    async summarize(selection) {
      const at = now();
      const devices = await repo.findFleetDevices(deps.db, selection);
      const batteries = devices.filter((d) => d.type === 'bess');
      const batteryIds = batteries.map((d) => d.id);
      const [states, meterTimes, failures, instructions] = await Promise.all([
        deps.controlState.ofDevices(batteries),
        repo.findLatestMeterTimes(
          deps.db,
          devices.filter((d) => d.type === 'meter').map((d) => d.id),
        ),
        repo.findFailureRuns(deps.db, batteryIds),
        repo.findInstructionsInForce(deps.db, selection, batteryIds, at),
      ]);
      const mismatched = states.filter((s) => s.sourceMismatch && s.intendedSource !== undefined);
      const reportedSince = await repo.findReportedSince(
        deps.db,
        mismatched.map((s) => ({ deviceId: s.deviceId, remote: !isRemote(s.intendedSource!) })),
        new Date(at.getTime() - repo.REPORTED_SOURCE_LOOKBACK_MS),
      );
      const stateOf = new Map(states.map((s) => [s.deviceId, s]));
      const failureOf = new Map(failures.map((f) => [f.deviceId, f]));
      const siteNames = selection === '*' ? [...new Set(devices.map((d) => d.site))] : [...new Set(selection)];
      const bySite = new Map(siteNames.map((site) => [site, { devices: [] as Device[], batteries: [] as BatteryFacts[] }]));
      for (const device of devices) {
        const entry = bySite.get(device.site)!;
        entry.devices.push(device);
        const state = stateOf.get(device.id);
        if (!state) continue;
        const failure = failureOf.get(device.id);
        const since = reportedSince.get(device.id);
        entry.batteries.push({ device, state, ...(failure ? { failure } : {}), ...(since ? { reportedSince: since } : {}) });
      }
      const totals = emptyTotals();
      const sites: SiteSummary[] = [];
      const alerts: Alert[] = [];
      const rows: BatteryFacts[] = [];
      for (const site of siteNames.sort()) {
        const { devices: siteDevices, batteries: siteBatteries } = bySite.get(site)!;
        rows.push(...[...siteBatteries].sort(byNameAndId));
        const siteTotals = emptyTotals();
        for (const b of siteBatteries) addBattery(siteTotals, b, at, maxAgeMs);
        addTotals(totals, siteTotals);
        const ids = new Set(siteBatteries.map((b) => b.device.id));
        const siteInstructions = instructions.filter((i) => ('site' in i.target ? i.target.site === site : ids.has(i.target.deviceId)));
        const facts: SiteFacts = {
          site,
          batteries: siteBatteries,
          ...latest('lastReadingTime', [
            ...siteBatteries.map((b) => b.state.lastTelemetryTime),
            ...siteDevices.map((d) => meterTimes.get(d.id)),
          ]),
          ...(siteDevices.length > 0 ? { firstRegistered: new Date(Math.min(...siteDevices.map((d) => d.createdAt.getTime()))) } : {}),
          shortfalls: shortfalls(siteBatteries, siteInstructions, at),
        };
        alerts.push(...siteAlerts(facts, at, maxAgeMs));
        sites.push({
          site,
          totals: rounded(siteTotals),
          undeliveredKw: Math.round(facts.shortfalls.reduce((sum, s) => sum + s.undeliveredKw, 0) * 1000) / 1000,
          ...(facts.lastReadingTime ? { lastReadingTime: facts.lastReadingTime } : {}),
        });
      }
      return {
        totals: rounded(totals),
        sites,
        alerts: alerts.sort(byNewest),
        asOf: at,
        maxTelemetryAgeMs: maxAgeMs,
        batteries: rows.map(({ device, state }) => ({ device, state })),
      };
    },
  };
}

/** `{ [key]: the latest of times }`, or nothing when none is set. */
function latest<K extends string>(key: K, times: ReadonlyArray<Date | undefined>): { [k in K]?: Date } {
  const set = times.filter((t): t is Date => t !== undefined);
  if (set.length === 0) return {};
  return { [key]: new Date(Math.max(...set.map((t) => t.getTime()))) } as { [k in K]?: Date };
}

function byNameAndId(a: BatteryFacts, b: BatteryFacts): number {
  const byName = a.device.name < b.device.name ? -1 : a.device.name > b.device.name ? 1 : 0;
  return byName || (a.device.id < b.device.id ? -1 : a.device.id > b.device.id ? 1 : 0);
}
