import { randomUUID } from 'node:crypto';
import { timestampFromMs, timestampMs } from '@bufbuild/protobuf/wkt';
import type { Client } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ControlMode } from '../../gen/powerplane/v1/dispatch_pb.ts';
import { AlertKind, type FleetService, type GetFleetSummaryResponse } from '../../gen/powerplane/v1/fleet_pb.ts';
import { errorOf } from '../../test/support/api.ts';
import { createTestDatabase, ENGINES, type TestDatabase } from '../../test/support/databases.ts';
import { registerBattery } from '../../test/support/fleet.ts';
import { serveInMemory, type InMemoryApi } from '../../test/support/services.ts';
import { registerDevice } from '../../test/telemetry/helpers.ts';
import type { DispatchTables } from '../dispatch/dispatch.table.ts';
import { insertSetpointEvents } from '../dispatch/setpoint-events.repository.ts';
import type { SetpointPhaseName } from '../dispatch/setpoint-events.ts';
import { SCOPES, UNRESTRICTED, type Principal } from '../rpc/principal.ts';
import type { Database } from '../storage/database.ts';

/**
 * GetFleetSummary through `createRouterTransport` over a real database on both engines,
 * with the clock of the summary fixed: a fleet of four sites whose batteries are fresh,
 * stale, failed, unreachable, overridden, mismatched and short of an instruction, each
 * stored as the control loop and the agents store it.
 */

const S = 1_000;
const LIMIT_MS = 30 * S;
const bound = (sites: string[]): Principal => ({ id: 'token:bound', kind: 'token', scopes: new Set(SCOPES), sites: new Set(sites) });

describe.each(ENGINES)('GetFleetSummary on %s', (engine) => {
  const NOW = Date.now();
  let testDb: TestDatabase;
  let database: Database;
  let api: InMemoryApi;
  let fleet: Client<typeof FleetService>;
  const ids: Record<string, string> = {};
  let instructionId = '';

  /** Stores a battery reading: [ms ago, soe, target power, command source, available blocks]. */
  async function reading(id: string, agoMs: number, soe: number, power: number, source: number, blocks: number | null = null) {
    await database.withSession((s) =>
      s.query(
        `insert into flux.mg_bess_readings ("time", device_id, soe, target_power, command_source, available_inverter_blocks)
         values ($1, $2, $3, $4, $5, $6)`,
        [new Date(NOW - agoMs).toISOString(), id, soe, power, source, blocks],
      ),
    );
  }

  /** Stores setpoint steps of a battery: [ms ago, phase, kW, reason?], with the instruction when given. */
  async function steps(
    id: string,
    site: string,
    list: [agoMs: number, phase: SetpointPhaseName, kw: number, reason?: string][],
    instruction?: string,
  ) {
    await insertSetpointEvents(
      database.db.withTables<DispatchTables>(),
      list.map(([agoMs, phase, kw, reason]) => ({
        setpointId: randomUUID(),
        deviceId: id,
        site,
        phase,
        targetPowerKw: kw,
        source: 'DISPATCH' as const,
        ...(instruction ? { instructionId: instruction } : {}),
        ...(reason ? { reason } : {}),
        at: new Date(NOW - agoMs),
        elapsedMs: 0,
      })),
    );
  }

  async function intended(id: string, source: number, agoMs: number) {
    await database.withSession((s) =>
      s.query(`insert into powerplane.command_source_state (device_id, source, reason, changed_at) values ($1, $2, 'test', $3)`, [
        id,
        source,
        new Date(NOW - agoMs).toISOString(),
      ]),
    );
  }

  beforeAll(async () => {
    testDb = await createTestDatabase(engine);
    database = await testDb.open();
    api = serveInMemory(database, testDb.config, { maxTelemetryAgeMs: LIMIT_MS, now: () => new Date(NOW) });
    const ops = api.as(UNRESTRICTED);
    fleet = ops.fleet;
    const endpoint = { host: '127.0.0.1', port: 1, unitId: 1 };
    const spec = { minSoePercent: 10, maxSoePercent: 90, inverterBlockCount: 4 };
    for (const name of ['n1', 'n2', 'n3', 'n4', 'n5']) ids[name] = await registerBattery(ops.registry, 'north', name, endpoint, spec);
    ids.s1 = await registerBattery(ops.registry, 'south', 's1', endpoint, spec);
    ids.e1 = await registerBattery(ops.registry, 'east', 'e1', endpoint, spec);
    ids.e2 = await registerBattery(ops.registry, 'east', 'e2', endpoint, spec);
    ids.w1 = await registerBattery(ops.registry, 'west', 'w1', endpoint, spec);
    ids.meter = await registerDevice(database, 'meter', { site: 'north' });
    await database.withSession((s) =>
      s.query(`insert into flux.mg_meter_readings ("time", device_id, power_total_active) values ($1, $2, 5)`, [
        new Date(NOW - 2 * S).toISOString(),
        ids.meter,
      ]),
    );
    const { instructions } = await ops.dispatch.submitDispatch({
      requestId: 'north-300',
      target: { case: 'site', value: 'north' },
      intervals: [
        { startTime: timestampFromMs(NOW - 600 * S), endTime: timestampFromMs(NOW + 3_600 * S), command: { case: 'powerKw', value: 300 } },
      ],
    });
    instructionId = instructions[0]!.id;
    // north: n1 and n2 fresh and following the instruction at 40 kW each (n2 reports its own
    // control against the intended DISPATCH), n3 stale, n4 failed (a refusal, planned again
    // since), n5 unreachable (timeouts, and its readings stopped).
    await reading(ids.n1!, 5 * S, 50, 40, 2, 3);
    await reading(ids.n2!, 200 * S, 80, 0, 2);
    await reading(ids.n2!, 100 * S, 80, 0, 1);
    await reading(ids.n2!, 5 * S, 80, 0, 1);
    await intended(ids.n1!, 2, 300 * S);
    await intended(ids.n2!, 2, 300 * S);
    await steps(
      ids.n1!,
      'north',
      [
        [60 * S, 'PLANNED', 40],
        [59 * S, 'VERIFIED', 40],
      ],
      instructionId,
    );
    await steps(
      ids.n2!,
      'north',
      [
        [60 * S, 'PLANNED', 40],
        [59 * S, 'VERIFIED', 40],
      ],
      instructionId,
    );
    await reading(ids.n3!, 120 * S, 20, 5, 2);
    await reading(ids.n4!, 5 * S, 60, 0, 2);
    await steps(ids.n4!, 'north', [
      [90 * S, 'VERIFIED', 10],
      [60 * S, 'FAILED', 10, 'Modbus exception 3 (ILLEGAL DATA VALUE) on write 2 registers at 40123'],
      [30 * S, 'FAILED', 10, 'Modbus exception 3 (ILLEGAL DATA VALUE) on write 2 registers at 40123'],
      [10 * S, 'PLANNED', 10],
    ]);
    await reading(ids.n5!, 100 * S, 70, 0, 2);
    await steps(ids.n5!, 'north', [
      [40 * S, 'FAILED', 25, 'no answer to write 2 registers at 40123 within 1000 ms'],
      [20 * S, 'FAILED', 25, 'cannot connect to 127.0.0.1:1'],
    ]);
    // south: its one battery last reported ten minutes ago: the site's agent is gone.
    await reading(ids.s1!, 600 * S, 30, 0, 2);
    // east: e1 under a manual override, e2 free.
    await reading(ids.e1!, 3 * S, 50, -20, 2);
    await reading(ids.e2!, 3 * S, 50, 0, 1);
    await ops.dispatch.setControlMode({
      deviceId: ids.e1!,
      mode: ControlMode.MANUAL,
      manualPowerKw: -20,
      expireTime: timestampFromMs(Date.now() + 1_800 * S),
      reason: 'test',
    });
    // west: w1 registered, not reported yet.
  });
  afterAll(async () => {
    await api?.close();
    await testDb?.drop();
  });

  const siteOf = (res: GetFleetSummaryResponse, site: string) => res.sites.find((s) => s.site === site)!;

  it("adds up each site's batteries and the fleet's, counting online, stale and failed ones", async () => {
    const res = await fleet.getFleetSummary({});
    expect(res.sites.map((s) => s.site)).toEqual(['east', 'north', 'south', 'west']);
    expect(timestampMs(res.asOf!)).toBe(NOW);
    expect(res.maxTelemetryAgeSeconds).toBe(30);
    // n1: 200 kWh at 50 %, 3 of 4 blocks (75 kW each way); n2: 80 %, all blocks; n3 stale,
    // n4 failed and n5 both: held, so not available, but their energy counts.
    expect(siteOf(res, 'north').totals).toMatchObject({
      batteryCount: 5,
      onlineCount: 2,
      staleCount: 2,
      failedCount: 2,
      availableChargeKw: 175,
      availableDischargeKw: 175,
      energyStoredKwh: 100 + 160 + 40 + 120 + 140,
      energyMinKwh: 5 * 20,
      energyMaxKwh: 5 * 180,
      reportedPowerKw: 45,
      setpointPowerKw: 40 + 40 + 10 + 25,
    });
    expect(timestampMs(siteOf(res, 'north').lastReadingTime!)).toBe(NOW - 2 * S);
    // e1 is the operator's: its energy counts, its power is not available.
    expect(siteOf(res, 'east').totals).toMatchObject({
      batteryCount: 2,
      onlineCount: 2,
      availableChargeKw: 100,
      availableDischargeKw: 100,
      energyStoredKwh: 200,
      reportedPowerKw: -20,
    });
    expect(siteOf(res, 'west').totals).toMatchObject({ batteryCount: 1, staleCount: 1, onlineCount: 0, energyStoredKwh: 0 });
    expect(siteOf(res, 'west').lastReadingTime).toBeUndefined();
    const sum = (key: 'batteryCount' | 'energyStoredKwh' | 'availableChargeKw') =>
      res.sites.reduce((total, s) => total + s.totals![key], 0);
    expect(res.totals).toMatchObject({
      batteryCount: sum('batteryCount'),
      energyStoredKwh: sum('energyStoredKwh'),
      availableChargeKw: sum('availableChargeKw'),
    });
    expect(res.totals!.batteryCount).toBe(9);
  });

  it('reports the undelivered power of an instruction its batteries are not set to deliver', async () => {
    const res = await fleet.getFleetSummary({});
    // 300 kW asked, n1 and n2 set to 40 kW each.
    expect(siteOf(res, 'north').undeliveredPowerKw).toBe(220);
    expect(siteOf(res, 'east').undeliveredPowerKw).toBe(0);
    const alert = res.alerts.find((a) => a.kind === AlertKind.UNDELIVERED_POWER)!;
    expect(alert).toMatchObject({ site: 'north', deviceId: '', deviceName: '' });
    expect(alert.reason).toBe(`220 kW of the 300 kW asked is not delivered (instruction ${instructionId})`);
    // Since the batteries were last set, after the instruction's start.
    expect(timestampMs(alert.since!)).toBe(NOW - 59 * S);
  });

  it('lists one alert per condition, newest first, each since when the stored state says it began', async () => {
    const res = await fleet.getFleetSummary({});
    const seen = res.alerts.map((a) => [AlertKind[a.kind], a.site, a.deviceName, (timestampMs(a.since!) - NOW) / S]);
    expect(seen).toEqual([
      // Unreachable since its first failure; not also stale.
      ['BATTERY_UNREACHABLE', 'north', 'n5', -40],
      // Since the batteries were last set for the instruction.
      ['UNDELIVERED_POWER', 'north', '', -59],
      // Since the first failure after the last verified setpoint, though planned again since.
      ['SETPOINT_FAILED', 'north', 'n4', -60],
      ['TELEMETRY_STALE', 'north', 'n3', -120 + 30],
      // n2 has reported its own control since its reading 100 s ago; the intent is older.
      ['SOURCE_MISMATCH', 'north', 'n2', -100],
      // The site's last reading ten minutes ago plus the limit; s1 is not listed on its own.
      ['AGENT_DISCONNECTED', 'south', '', -600 + 30],
    ]);
    const reasonOf = (name: string) => res.alerts.find((a) => a.deviceName === name)!.reason;
    expect(reasonOf('n3')).toBe('last reading 2 min ago, over the 30 s limit: held at 0 kW');
    expect(reasonOf('n2')).toBe('Powerplane intends DISPATCH (remote control), the battery reports LOCAL (its own control)');
    expect(reasonOf('n4')).toBe('setpoint 10 kW failed: Modbus exception 3 (ILLEGAL DATA VALUE) on write 2 registers at 40123');
    expect(reasonOf('n5')).toBe('its controller does not answer: cannot connect to 127.0.0.1:1');
    expect(res.alerts.find((a) => a.site === 'south')!.reason).toBe('no device of the site has reported for 10 min, over the 30 s limit');
    expect(res.alerts.find((a) => a.deviceName === 'n5')!.deviceId).toBe(ids.n5);
  });

  it('answers Connect JSON as the page asks it, with the alert kinds by name', async () => {
    const binary = await fleet.getFleetSummary({});
    const json = await api.as(UNRESTRICTED, { json: true }).fleet.getFleetSummary({});
    expect(json).toEqual(binary);
    expect(json.alerts.map((a) => AlertKind[a.kind])).toContain('BATTERY_UNREACHABLE');
  });

  it('gives a caller bound to two sites both, one bound to one site its own, and refuses a site outside the binding', async () => {
    const two = await api.as(bound(['north', 'south'])).fleet.getFleetSummary({});
    expect(two.sites.map((s) => s.site)).toEqual(['north', 'south']);
    expect(two.totals!.batteryCount).toBe(6);
    expect(new Set(two.alerts.map((a) => a.site))).toEqual(new Set(['north', 'south']));
    const one = await api.as(bound(['east'])).fleet.getFleetSummary({});
    expect(one.sites.map((s) => s.site)).toEqual(['east']);
    expect(one.alerts).toEqual([]);
    const named = await api.as(bound(['north', 'south'])).fleet.getFleetSummary({ sites: ['south'] });
    expect(named.sites.map((s) => s.site)).toEqual(['south']);
    expect(await errorOf(api.as(bound(['east'])).fleet.getFleetSummary({ sites: ['east', 'north'] }))).toEqual({
      code: 'PermissionDenied',
      message: 'sites[1] names site "north", which token:bound is not bound to',
    });
  });

  it('lists a named site without devices with zero totals, and a bound caller its sites that have none', async () => {
    const res = await fleet.getFleetSummary({ sites: ['nowhere', 'east', 'east'] });
    expect(res.sites.map((s) => [s.site, s.totals!.batteryCount])).toEqual([
      ['east', 2],
      ['nowhere', 0],
    ]);
    const empty = await api.as(bound(['empty-site'])).fleet.getFleetSummary({});
    expect(empty.sites.map((s) => s.site)).toEqual(['empty-site']);
    expect(empty.alerts).toEqual([]);
  });

  it('lists each battery with include_batteries as the registry, GetControlState and the latest readings have it', async () => {
    const ops = api.as(UNRESTRICTED);
    const res = await fleet.getFleetSummary({ includeBatteries: true });
    const order = ['e1', 'e2', 'n1', 'n2', 'n3', 'n4', 'n5', 's1', 'w1'];
    expect(res.batteries.map((b) => [b.site, b.name])).toEqual(
      order.map((n) => [{ e: 'east', n: 'north', s: 'south', w: 'west' }[n[0]!], n]),
    );
    const batteryIds = order.map((n) => ids[n]!);
    expect(res.batteries.map((b) => b.deviceId)).toEqual(batteryIds);
    const { states } = await ops.dispatch.getControlState({ deviceIds: batteryIds });
    const latest = new Map((await ops.readings.getLatestBessState({ deviceIds: batteryIds })).states.map((r) => [r.deviceId, r]));
    for (const b of res.batteries) {
      expect(b.control).toEqual(states.find((s) => s.deviceId === b.deviceId));
      expect([b.minSoePercent, b.maxSoePercent]).toEqual([10, 90]);
      expect(b.soePercent).toBe(latest.get(b.deviceId)?.soePercent);
      expect(b.reportedPowerKw).toBe(latest.get(b.deviceId)?.targetPowerKw);
    }
    expect(res.batteries.find((b) => b.name === 'n1')).toMatchObject({ soePercent: 50, reportedPowerKw: 40 });
    const w1 = res.batteries.find((b) => b.name === 'w1')!;
    expect([w1.soePercent, w1.reportedPowerKw]).toEqual([undefined, undefined]);
    expect((await fleet.getFleetSummary({})).batteries).toEqual([]);
    const east = await api.as(bound(['east'])).fleet.getFleetSummary({ includeBatteries: true });
    expect(east.batteries.map((b) => b.name)).toEqual(['e1', 'e2']);
  });

  it('refuses include_batteries for more batteries than one response may list, naming the field', async () => {
    const small = serveInMemory(database, testDb.config, { maxTelemetryAgeMs: LIMIT_MS, now: () => new Date(NOW), summaryBatteries: 2 });
    try {
      const err = await errorOf(small.as(UNRESTRICTED).fleet.getFleetSummary({ includeBatteries: true }));
      expect(err.code).toBe('InvalidArgument');
      expect(err.message).toMatch(/^include_batteries .*the selected sites have 9 batteries, more than 2: name fewer sites/);
      const east = await small.as(UNRESTRICTED).fleet.getFleetSummary({ sites: ['east'], includeBatteries: true });
      expect(east.batteries.map((b) => b.name)).toEqual(['e1', 'e2']);
    } finally {
      await small.close();
    }
  });

  it.each([
    ['more than 1000 sites', Array.from({ length: 1001 }, (_, i) => `s${i}`), 'sites must name at most 1000 sites'],
    ['an empty site', ['east', ' '], 'sites[1] must not be empty'],
  ])('refuses %s naming the field', async (_case, sites, message) => {
    const err = await errorOf(fleet.getFleetSummary({ sites }));
    expect(err.code).toBe('InvalidArgument');
    expect(err.message.startsWith(message)).toBe(true);
  });
});
