import { describe, expect, it } from 'vitest';
import { age, byNewest, siteAlerts, type Alert, type SiteFacts } from './fleet-alerts.ts';
import { AT, ago, battery, LIMIT_MS } from './fleet.fixtures.ts';

const site = (facts: Partial<SiteFacts>): SiteFacts => ({
  site: 's',
  batteries: [],
  shortfalls: [],
  lastReadingTime: ago(1_000),
  ...facts,
});
const kinds = (alerts: Alert[]) => alerts.map((a) => [a.kind, a.deviceName ?? '', (a.since.getTime() - AT.getTime()) / 1_000]);

describe('the open alerts of a site', () => {
  it('raises none for fresh, verified batteries that report what is intended', () => {
    expect(siteAlerts(site({ batteries: [battery(), battery({ id: 'b2' })] }), AT, LIMIT_MS)).toEqual([]);
  });

  it('raises TELEMETRY_STALE once a reading is older than the limit, since the reading + the limit', () => {
    const stale = battery({ name: 'old', state: { lastTelemetryTime: ago(45_000) } });
    expect(kinds(siteAlerts(site({ batteries: [stale] }), AT, LIMIT_MS))).toEqual([['TELEMETRY_STALE', 'old', -15]]);
    expect(siteAlerts(site({ batteries: [stale] }), AT, LIMIT_MS)[0]!.reason).toBe(
      'last reading 45 s ago, over the 30 s limit: held at 0 kW',
    );
  });

  it('gives a battery that never reported the limit from its registration before it is stale', () => {
    const fresh = battery({ name: 'new', registeredAgoMs: 10_000, state: { lastTelemetryTime: undefined } });
    const late = battery({ name: 'late', registeredAgoMs: 50_000, state: { lastTelemetryTime: undefined } });
    expect(kinds(siteAlerts(site({ batteries: [fresh, late] }), AT, LIMIT_MS))).toEqual([['TELEMETRY_STALE', 'late', -20]]);
  });

  it('raises AGENT_DISCONNECTED for a site whose devices all stopped, instead of a stale alert per battery', () => {
    const batteries = [
      battery({ id: 'a', state: { lastTelemetryTime: ago(90_000) } }),
      battery({ id: 'b', state: { lastTelemetryTime: ago(95_000) } }),
    ];
    const alerts = siteAlerts(site({ batteries, lastReadingTime: ago(90_000) }), AT, LIMIT_MS);
    expect(kinds(alerts)).toEqual([['AGENT_DISCONNECTED', '', -60]]);
    expect(alerts[0]!.reason).toBe('no device of the site has reported for 90 s, over the 30 s limit');
  });

  it('raises AGENT_DISCONNECTED for a site that never reported, once the limit from its first registration is past', () => {
    const never = battery({ state: { lastTelemetryTime: undefined } });
    const facts = { batteries: [never], lastReadingTime: undefined } as const;
    expect(kinds(siteAlerts(site({ ...facts, firstRegistered: ago(40_000) }), AT, LIMIT_MS))).toEqual([['AGENT_DISCONNECTED', '', -10]]);
    // Registered 20 s ago: not yet; the battery registered an hour ago (fixture) is stale though.
    expect(kinds(siteAlerts(site({ ...facts, firstRegistered: ago(20_000) }), AT, LIMIT_MS))).toEqual([['TELEMETRY_STALE', 'b1', -3_570]]);
  });

  it('tells an unreachable controller from a refused setpoint, and an unreachable one is not also stale', () => {
    const refused = battery({
      id: 'r',
      failure: { reason: 'Modbus exception 3 (ILLEGAL DATA VALUE) on write 2 registers at 40123', targetPowerKw: 12 },
    });
    const silent = battery({
      id: 'u',
      state: { lastTelemetryTime: ago(120_000) },
      failure: { since: ago(80_000), reason: 'no answer to read 2 registers at 40000 within 1000 ms' },
    });
    const relayed = battery({
      id: 'v',
      failure: { since: ago(70_000), reason: 'the agent of site s could not apply it (cannot connect to 10.0.0.5:502)' },
    });
    const alerts = siteAlerts(site({ batteries: [refused, silent, relayed] }), AT, LIMIT_MS);
    expect(kinds(alerts)).toEqual([
      ['SETPOINT_FAILED', 'r', -60],
      ['BATTERY_UNREACHABLE', 'u', -80],
      ['BATTERY_UNREACHABLE', 'v', -70],
    ]);
    expect(alerts[0]!.reason).toBe('setpoint 12 kW failed: Modbus exception 3 (ILLEGAL DATA VALUE) on write 2 registers at 40123');
  });

  it('dates a source mismatch from the later of the intent and the reported source, and names both', () => {
    const mismatch = battery({
      state: { sourceMismatch: true, intendedSource: 'LOCAL', intendedSince: ago(300_000), reportedSource: 2 },
      reportedSince: ago(40_000),
    });
    const [alert] = siteAlerts(site({ batteries: [mismatch] }), AT, LIMIT_MS);
    expect(kinds([alert!])).toEqual([['SOURCE_MISMATCH', 'b1', -40]]);
    expect(alert!.reason).toBe('Powerplane intends LOCAL (its own control), the battery reports DISPATCH (remote control)');
  });

  it('adds up the undelivered power of a site in one alert, since its earliest shortfall', () => {
    const shortfalls = [
      { instructionId: 'i1', requestedKw: 100, deliveredKw: 60, undeliveredKw: 40, since: ago(30_000) },
      { instructionId: 'i2', requestedKw: -50, deliveredKw: -40, undeliveredKw: 10, since: ago(50_000) },
    ];
    const [alert] = siteAlerts(site({ shortfalls }), AT, LIMIT_MS);
    expect(alert).toEqual({
      kind: 'UNDELIVERED_POWER',
      site: 's',
      since: ago(50_000),
      reason: '50 kW of the 150 kW asked is not delivered (2 instructions)',
    });
  });

  it('orders alerts newest first, then by site, battery name and kind', () => {
    const at = (s: number) => ago(s * 1_000);
    const list: Alert[] = [
      { kind: 'TELEMETRY_STALE', site: 'b', deviceName: 'x', since: at(5), reason: '' },
      { kind: 'SOURCE_MISMATCH', site: 'a', deviceName: 'y', since: at(5), reason: '' },
      { kind: 'SETPOINT_FAILED', site: 'a', deviceName: 'y', since: at(5), reason: '' },
      { kind: 'UNDELIVERED_POWER', site: 'c', since: at(1), reason: '' },
    ];
    expect(list.sort(byNewest).map((a) => `${a.site}/${a.kind}`)).toEqual([
      'c/UNDELIVERED_POWER',
      'a/SETPOINT_FAILED',
      'a/SOURCE_MISMATCH',
      'b/TELEMETRY_STALE',
    ]);
  });
});

describe('an age as people read it', () => {
  it.each([
    [0, '0 s'],
    [119_000, '119 s'],
    [120_000, '2 min'],
    [7_199_000, '120 min'],
    [7_200_000, '2 h'],
    [172_800_000, '2 d'],
  ])('%i ms reads %s', (ms, text) => {
    expect(age(ms)).toBe(text);
  });
});
