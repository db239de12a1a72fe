/**
 * The open alerts of a site, pure: which conditions hold now and since when, from the
 * facts the fleet summary read. One condition, one alert: a battery whose controller does
 * not answer gets BATTERY_UNREACHABLE rather than SETPOINT_FAILED and TELEMETRY_STALE, and
 * the batteries of a site whose devices all stopped reporting are covered by the site's
 * AGENT_DISCONNECTED rather than one TELEMETRY_STALE each.
 */
import { commandSourceFromCode, isRemote } from '../dispatch/command-source.ts';
import { isUnreachableReason } from '../modbus/errors.ts';
import { isStale, type BatteryFacts, type Shortfall } from './fleet-totals.ts';

/** The conditions an alert reports, as AlertKind in the API. */
export type AlertKind =
  'SETPOINT_FAILED' | 'SOURCE_MISMATCH' | 'TELEMETRY_STALE' | 'UNDELIVERED_POWER' | 'BATTERY_UNREACHABLE' | 'AGENT_DISCONNECTED';

/** One open alert. */
export interface Alert {
  readonly kind: AlertKind;
  readonly site: string;
  /** The battery concerned; absent for a site-wide alert. */
  readonly deviceId?: string;
  readonly deviceName?: string;
  readonly since: Date;
  /** One line. */
  readonly reason: string;
}

/** What is known of one site. */
export interface SiteFacts {
  readonly site: string;
  /** Its active batteries. */
  readonly batteries: readonly BatteryFacts[];
  /** The latest reading of any of its active devices. */
  readonly lastReadingTime?: Date;
  /** When its earliest registered active device was registered; absent for a site without one. */
  readonly firstRegistered?: Date;
  readonly shortfalls: readonly Shortfall[];
}

/**
 * The open alerts of a site at `at` (`maxAgeMs` is the telemetry age limit):
 * - AGENT_DISCONNECTED when no device of the site has reported within the limit, since the
 *   latest reading + the limit (or the first registration + the limit, when none ever did);
 * - per battery, BATTERY_UNREACHABLE when its latest setpoint outcome failed because its
 *   controller did not answer or could not be connected (timeouts, refused or lost
 *   connections), else SETPOINT_FAILED for any other failure, both since the first failure
 *   after its last verified setpoint;
 * - SOURCE_MISMATCH since the later of the intended source's last change and the start of
 *   the source the battery reports;
 * - TELEMETRY_STALE since its latest reading (or its registration) + the limit, once that is past;
 * - UNDELIVERED_POWER for the site, since its earliest shortfall.
 */
export function siteAlerts(site: SiteFacts, at: Date, maxAgeMs: number): Alert[] {
  const alerts: Alert[] = [];
  const disconnected = agentDisconnected(site, at, maxAgeMs);
  if (disconnected) alerts.push(disconnected);
  for (const b of site.batteries) {
    const battery = { site: site.site, deviceId: b.device.id, deviceName: b.device.name };
    const unreachable = b.failure !== undefined && isUnreachableReason(b.failure.reason);
    if (b.failure) {
      alerts.push(
        unreachable
          ? {
              kind: 'BATTERY_UNREACHABLE',
              ...battery,
              since: b.failure.since,
              reason: `its controller does not answer: ${b.failure.reason}`,
            }
          : {
              kind: 'SETPOINT_FAILED',
              ...battery,
              since: b.failure.since,
              reason: `setpoint ${kw(b.failure.targetPowerKw)} kW failed: ${b.failure.reason}`,
            },
      );
    }
    const { state } = b;
    if (state.sourceMismatch && state.intendedSource) {
      const reported = commandSourceFromCode(state.reportedSource);
      const since = Math.max(state.intendedSince?.getTime() ?? 0, b.reportedSince?.getTime() ?? 0);
      alerts.push({
        kind: 'SOURCE_MISMATCH',
        ...battery,
        since: new Date(since || at.getTime()),
        reason:
          `Powerplane intends ${state.intendedSource} (${control(isRemote(state.intendedSource))}), ` +
          `the battery reports ${reported ?? 'an unknown source'}${reported ? ` (${control(isRemote(reported))})` : ''}`,
      });
    }
    const last = state.lastTelemetryTime;
    // A battery registered within the limit has not had the time to report yet.
    const late = last !== undefined || at.getTime() - b.device.createdAt.getTime() > maxAgeMs;
    if (!disconnected && !unreachable && late && isStale(state, at, maxAgeMs)) {
      alerts.push({
        kind: 'TELEMETRY_STALE',
        ...battery,
        since: new Date((last ?? b.device.createdAt).getTime() + maxAgeMs),
        reason: last
          ? `last reading ${age(at.getTime() - last.getTime())} ago, over the ${age(maxAgeMs)} limit: held at 0 kW`
          : 'no reading since it was registered: held at 0 kW',
      });
    }
  }
  if (site.shortfalls.length > 0) {
    const total = site.shortfalls.reduce((sum, s) => sum + s.undeliveredKw, 0);
    const asked = site.shortfalls.reduce((sum, s) => sum + Math.abs(s.requestedKw), 0);
    const which =
      site.shortfalls.length === 1 ? `instruction ${site.shortfalls[0]!.instructionId}` : `${site.shortfalls.length} instructions`;
    alerts.push({
      kind: 'UNDELIVERED_POWER',
      site: site.site,
      since: new Date(Math.min(...site.shortfalls.map((s) => s.since.getTime()))),
      reason: `${kw(total)} kW of the ${kw(asked)} kW asked is not delivered (${which})`,
    });
  }
  return alerts;
}

/** Newest `since` first; then by site, battery name and kind, so the order is stable. */
export function byNewest(a: Alert, b: Alert): number {
  return (
    b.since.getTime() - a.since.getTime() ||
    compare(a.site, b.site) ||
    compare(a.deviceName ?? '', b.deviceName ?? '') ||
    compare(a.deviceId ?? '', b.deviceId ?? '') ||
    compare(a.kind, b.kind)
  );
}

function agentDisconnected(site: SiteFacts, at: Date, maxAgeMs: number): Alert | undefined {
  const last = site.lastReadingTime;
  const from = last ?? site.firstRegistered;
  if (from === undefined || at.getTime() - from.getTime() <= maxAgeMs) return undefined;
  return {
    kind: 'AGENT_DISCONNECTED',
    site: site.site,
    since: new Date(from.getTime() + maxAgeMs),
    reason: last
      ? `no device of the site has reported for ${age(at.getTime() - last.getTime())}, over the ${age(maxAgeMs)} limit`
      : 'no device of the site has reported since it was registered',
  };
}

const compare = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
const control = (remote: boolean) => (remote ? 'remote control' : 'its own control');
const kw = (value: number) => String(Math.round(value * 1000) / 1000 || 0);

/** A duration as people read it: seconds up to two minutes, then minutes, hours, days. */
export function age(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s} s`;
  if (s < 7_200) return `${Math.round(s / 60)} min`;
  if (s < 172_800) return `${Math.round(s / 3_600)} h`;
  return `${Math.round(s / 86_400)} d`;
}
