import { timestampDate, timestampFromMs } from '@bufbuild/protobuf/wkt';
import { createClient, type Client } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeviceRegistryService } from '../../gen/powerplane/v1/devices_pb.ts';
import { ControlMode, DispatchService } from '../../gen/powerplane/v1/dispatch_pb.ts';
import { CommandSource } from '../../gen/powerplane/v1/telemetry_pb.ts';
import { bearer } from '../../src/auth/bearer.ts';
import { createTokenStore } from '../../src/auth/tokens.ts';
import { toConfig } from '../../src/config.ts';
import type { SetpointEventsTable } from '../../src/dispatch/dispatch.table.ts';
import { startSimulator, type Simulator } from '../../src/simulator/simulator.ts';
import { ENGINES } from '../support/databases.ts';
import { registerBattery } from '../support/fleet.ts';
import { startTestServer, type TestServer } from '../support/server.ts';
import { sleep, waitFor } from '../support/wait.ts';

/** A row of `powerplane.command_source_history`, as the tests read it. */
interface HistoryRow {
  source: number;
  previous_source: number | null;
  reason: string;
  instruction_id: string | null;
  principal: string | null;
  changed_at: Date;
}

/** A row of `powerplane.setpoint_events`, as the tests read it. */
type EventRow = Pick<
  SetpointEventsTable,
  'setpoint_id' | 'phase' | 'target_power_kw' | 'command_source' | 'instruction_id' | 'principal' | 'reason'
>;

describe.each(ENGINES)('dispatch control loop: sources, causes and shortfalls on %s', (engine) => {
  let sim: Simulator;
  let t: TestServer;
  /** Clients per token: `admin` registers and publishes, `a` and `b` are two operators. */
  const api: Record<'admin' | 'a' | 'b', { registry: Client<typeof DeviceRegistryService>; dispatch: Client<typeof DispatchService> }> =
    {} as never;
  const principal: Record<'a' | 'b', string> = {} as never;
  /** Battery i is alone on site `sites[i]`, so the tests do not disturb each other. */
  const sites = ['ctl', 'soe', 'niv', 'short', 'ramp'] as const;
  const ids: string[] = [];

  const db = () => t.server.database.db;
  const wset = (i: number) => sim.bess[i]!.state();

  /** Writes a fresh reading of battery `i`, as its agent would stream it. */
  async function report(i: number, options: { soe?: number; blocks?: number; source?: CommandSource } = {}): Promise<void> {
    await sql`insert into flux.mg_bess_readings (time, device_id, soe, available_inverter_blocks, command_source)
              values (${new Date()}, ${ids[i]}, ${options.soe ?? 50}, ${options.blocks ?? 2}, ${options.source ?? CommandSource.DISPATCH})
              on conflict do nothing`.execute(db());
  }

  async function history(i: number): Promise<HistoryRow[]> {
    const { rows } = await sql<HistoryRow>`
      select source, previous_source, reason, instruction_id, principal, changed_at
      from powerplane.command_source_history where device_id = ${ids[i]} order by id`.execute(db());
    return rows;
  }

  async function events(i: number): Promise<EventRow[]> {
    const { rows } = await sql<EventRow>`
      select setpoint_id, phase, target_power_kw, command_source, instruction_id, principal, reason
      from powerplane.setpoint_events where device_id = ${ids[i]} order by id`.execute(db());
    return rows;
  }

  async function metric(name: string, site: string): Promise<number | undefined> {
    const text = await (await fetch(`${t.baseUrl}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`${name}{site="${site}"} `));
    return line === undefined ? undefined : Number(line.split(' ')[1]);
  }

  const window = (fromMs: number, toMs: number) => ({
    startTime: timestampFromMs(Date.now() + fromMs),
    endTime: timestampFromMs(Date.now() + toMs),
  });

  beforeAll(async () => {
    sim = await startSimulator({ bess: sites.length });
    const defaults = toConfig({ listen: '127.0.0.1:0', dataDir: 'memory://', tokenCacheMs: '0' });
    t = await startTestServer(engine, {
      // /metrics public: the gauges read here are the subject, not who may read them.
      auth: { ...defaults.auth, enabled: true, metricsAuth: false },
      // Off: the tests make several control changes a second as one principal.
      limits: { ...defaults.limits, dispatchRatePerS: 0, marketDataRatePerS: 0 },
      dispatch: { ...defaults.dispatch, controlPeriodMs: 250, heartbeatIntervalMs: 300, maxTelemetryAgeMs: 600_000 },
    });
    const tokens = createTokenStore({ db: db(), cacheMs: 0 });
    const everything = ['registry:admin', 'readings:read', 'dispatch:write', 'control:write', 'marketdata:write'];
    for (const name of ['admin', 'a', 'b'] as const) {
      const { secret, info } = await tokens.create(
        { name, scopes: name === 'admin' ? everything : ['readings:read', 'dispatch:write', 'control:write'], sites: [] },
        'test',
      );
      const transport = createGrpcTransport({ baseUrl: t.baseUrl, interceptors: [bearer(secret)] });
      api[name] = { registry: createClient(DeviceRegistryService, transport), dispatch: createClient(DispatchService, transport) };
      if (name !== 'admin') principal[name] = `token:${info.id}`;
    }
    for (const [i, device] of sim.bess.entries()) {
      const ramp = sites[i] === 'ramp' ? { rampRateKwPerS: 10 } : {};
      ids.push(
        await registerBattery(api.admin.registry, sites[i]!, `bess-${i}`, device.endpoint, {
          minSoePercent: 5,
          maxSoePercent: 95,
          inverterBlockCount: 2,
          reversionTimeoutS: 5,
          ...ramp,
        }),
      );
      await report(i);
    }
    await waitFor('shard leases', () => t.server.controlsBatteries(), 30_000);
  });
  afterAll(async () => {
    await t?.stop();
    await sim?.stop();
  });

  it('records who caused every change of intended source, and the cause on every setpoint event', async () => {
    await report(0);
    const { instructions } = await api.a.dispatch.submitDispatch({
      requestId: 'history',
      target: { case: 'deviceId', value: ids[0]! },
      intervals: [{ ...window(-1_000, 120_000), command: { case: 'powerKw', value: 40 } }],
    });
    const id = instructions[0]!.id;
    await waitFor('dispatch 40 kW', () => wset(0).wsetEna === 1 && wset(0).wsetW === 40_000);
    const manual = (who: 'a' | 'b', kw: number) =>
      api[who].dispatch.setControlMode({
        deviceId: ids[0]!,
        mode: ControlMode.MANUAL,
        manualPowerKw: kw,
        expireTime: timestampFromMs(Date.now() + 60_000),
        reason: `test by ${who}`,
      });
    await manual('a', -20);
    await waitFor('manual -20 kW', () => wset(0).wsetW === -20_000);
    await manual('b', -30);
    await waitFor('manual -30 kW', () => wset(0).wsetW === -30_000);
    await api.a.dispatch.setControlMode({ deviceId: ids[0]!, mode: ControlMode.AUTOMATIC, reason: 'done' });
    await waitFor('dispatch restored', () => wset(0).wsetW === 40_000);
    await api.a.dispatch.cancelDispatch({ id, reason: 'end of test' });
    await waitFor('released', () => wset(0).wsetEna === 0 && wset(0).wsetW === 0);

    const rows = await history(0);
    const fromDispatch = rows.slice(rows.findIndex((r) => r.source === CommandSource.DISPATCH));
    // The first row's previous source is LOCAL when the loop had planned the battery before
    // the submit arrived, FAILSAFE when it planned it before its first reading was stored
    // (the loop drives batteries as soon as the replica holds its leases), and null (none
    // recorded yet) when the submit came first.
    expect([null, CommandSource.LOCAL, CommandSource.FAILSAFE]).toContain(fromDispatch[0]?.previous_source);
    const previousOf = (r: (typeof rows)[number], i: number) =>
      i === 0 ? 'LOCAL' : r.previous_source === null ? null : CommandSource[r.previous_source];
    expect(fromDispatch.map((r, i) => [CommandSource[r.source], previousOf(r, i), r.instruction_id, r.principal])).toEqual([
      ['DISPATCH', 'LOCAL', id, principal.a],
      ['MANUAL', 'DISPATCH', null, principal.a],
      ['MANUAL', 'MANUAL', null, principal.b],
      ['DISPATCH', 'MANUAL', id, principal.a],
      ['LOCAL', 'DISPATCH', null, principal.a],
    ]);
    expect(fromDispatch.map((r) => r.reason)).toEqual([
      `following instruction ${id}`,
      expect.stringMatching(new RegExp(`^manual override -20 kW until .* by ${principal.a} \\(test by a\\)$`)),
      expect.stringMatching(new RegExp(`^manual override -30 kW until .* by ${principal.b} \\(test by b\\)$`)),
      `manual override released by ${principal.a}; following instruction ${id}`,
      `instruction ${id} cancelled by ${principal.a} (end of test); no active instruction`,
    ]);
    const times = fromDispatch.map((r) => r.changed_at.getTime());
    expect(times).toEqual([...times].sort((x, y) => x - y));

    // Every event of a setpoint carries its cause: the instruction and its submitter, or
    // the operator of the override, from PLANNED to VERIFIED.
    const all = await events(0);
    const verified = (kw: number) => all.some((e) => e.target_power_kw === kw && e.phase === 'VERIFIED');
    // What followed the dispatch's last setpoint: the release after the cancel. (The battery
    // was released at 0 kW before the dispatch too, so a verified 0 kW alone is not it.)
    const afterDispatch = () => all.slice(all.findLastIndex((e) => e.phase === 'PLANNED' && e.target_power_kw === 40) + 1);
    const isRelease = (e: EventRow) => e.target_power_kw === 0 && e.command_source === CommandSource.LOCAL;
    await waitFor('the events recorded', async () => {
      const latest = await events(0);
      all.splice(0, all.length, ...latest);
      return verified(40) && verified(-20) && verified(-30) && afterDispatch().some((e) => isRelease(e) && e.phase === 'VERIFIED');
    });
    const of = (kw: number) => all.filter((e) => e.target_power_kw === kw);
    expect(of(40).map((e) => [e.instruction_id, e.principal, CommandSource[e.command_source]])).toEqual(
      of(40).map(() => [id, principal.a, 'DISPATCH']),
    );
    expect(new Set(of(40).map((e) => e.phase))).toEqual(new Set(['PLANNED', 'WRITTEN', 'VERIFIED']));
    expect(
      of(-20).every((e) => e.principal === principal.a && e.instruction_id === null && e.command_source === CommandSource.MANUAL),
    ).toBe(true);
    expect(
      of(-30).every((e) => e.principal === principal.b && e.instruction_id === null && e.command_source === CommandSource.MANUAL),
    ).toBe(true);
    // The release after the cancel follows nothing: it names who cancelled and why.
    const release = afterDispatch().find((e) => isRelease(e) && e.phase === 'PLANNED')!;
    expect(release).toMatchObject({ command_source: CommandSource.LOCAL, instruction_id: null, principal: principal.a });
    expect(release.reason).toContain(`instruction ${id} cancelled by ${principal.a}`);
  }, 90_000);

  it('returns a battery to the next instruction when one ends or is cancelled, and to local control at 0 kW after the last', async () => {
    await report(0);
    const submit = (requestId: string, priority: number, kw: number, endMs: number) =>
      api.a.dispatch.submitDispatch({
        requestId,
        priority,
        target: { case: 'deviceId', value: ids[0]! },
        intervals: [{ ...window(-1_000, endMs), command: { case: 'powerKw', value: kw } }],
      });
    const low = (await submit('low', 0, 10, 12_000)).instructions[0]!;
    const high = (await submit('high', 5, 30, 120_000)).instructions[0]!;
    await waitFor('the higher priority governs', () => wset(0).wsetEna === 1 && wset(0).wsetW === 30_000);
    await api.b.dispatch.cancelDispatch({ id: high.id });
    await waitFor('the lower one takes over', () => wset(0).wsetEna === 1 && wset(0).wsetW === 10_000);
    const [during] = (await api.a.dispatch.getControlState({ deviceIds: [ids[0]!] })).states;
    expect(during).toMatchObject({ intendedSource: CommandSource.DISPATCH, activeInstructionId: low.id, sourceMismatch: false });
    expect(during!.reason).toBe(`instruction ${high.id} cancelled by ${principal.b}; following instruction ${low.id}`);
    await waitFor("released at the lower one's end", () => wset(0).wsetEna === 0 && wset(0).wsetW === 0, 30_000);
    let after: Awaited<ReturnType<typeof api.a.dispatch.getControlState>>['states'][number] | undefined;
    await waitFor('the state showing the release', async () => {
      [after] = (await api.a.dispatch.getControlState({ deviceIds: [ids[0]!] })).states;
      return after?.targetPowerKw === 0;
    });
    expect(after?.intendedSource).toBe(CommandSource.LOCAL);
    expect(after!.activeInstructionId).toBe('');
    expect(after!.reason).toBe(
      `instruction ${low.id} ended at ${timestampDate(low.interval!.endTime!).toISOString()}; no active instruction`,
    );
  });

  it('follows the intervals of one schedule in turn', async () => {
    await report(0);
    const { instructions } = await api.a.dispatch.submitDispatch({
      requestId: 'two-intervals',
      target: { case: 'deviceId', value: ids[0]! },
      intervals: [
        { ...window(-500, 2_500), command: { case: 'powerKw', value: 15 } },
        { ...window(2_500, 5_000), command: { case: 'powerKw', value: -15 } },
      ],
    });
    const [first, second] = instructions.map((i) => i.id);
    await waitFor('interval 2', () => wset(0).wsetEna === 1 && wset(0).wsetW === -15_000, 30_000);
    await waitFor('released after interval 2', () => wset(0).wsetEna === 0, 30_000);
    await waitFor('the events recorded', async () => (await events(0)).some((e) => e.instruction_id === second && e.phase === 'VERIFIED'));
    const followed = (await events(0)).filter((e) => e.phase === 'VERIFIED' && (e.instruction_id === first || e.instruction_id === second));
    expect(followed.map((e) => [e.instruction_id, e.target_power_kw])).toEqual([
      [first, 15],
      [second, -15],
    ]);
  });

  it('counts a battery driven by the SoE target as dispatched, naming the component, with no mismatch', async () => {
    await report(1, { soe: 50, source: CommandSource.DISPATCH });
    await api.admin.dispatch.setSiteConfig({ config: { site: 'soe', soeTarget: { enabled: true, soePercent: 60, maxPowerKw: 20 } } });
    await waitFor('charging toward the SoE target', () => wset(1).wsetEna === 1 && wset(1).wsetW === -20_000);
    // Setpoint events are recorded in batches, so the state's last setpoint may lag the write.
    let state: Awaited<ReturnType<typeof api.admin.dispatch.getControlState>>['states'][number] | undefined;
    await waitFor('the state showing -20 kW', async () => {
      [state] = (await api.admin.dispatch.getControlState({ site: 'soe' })).states;
      return state?.targetPowerKw === -20;
    });
    expect(state).toMatchObject({ intendedSource: CommandSource.DISPATCH, sourceMismatch: false });
    expect(state!.reason).toContain('soe_target');
    expect(await metric('powerplane_command_source_mismatch', 'soe')).toBe(0);
    const last = (await history(1)).at(-1)!;
    expect([last.source, last.reason, last.instruction_id]).toEqual([CommandSource.DISPATCH, 'following soe_target', null]);

    await api.admin.dispatch.setSiteConfig({ config: { site: 'soe' } });
    await waitFor('released when the target is off', () => wset(1).wsetEna === 0);
    const [released] = (await api.admin.dispatch.getControlState({ site: 'soe' })).states;
    expect(released?.intendedSource).toBe(CommandSource.LOCAL);
    // Released, while the battery's last reading still says remote control: a true mismatch.
    expect(await metric('powerplane_command_source_mismatch', 'soe')).toBe(1);
    await report(1, { source: CommandSource.LOCAL });
    await waitFor(
      'no mismatch once the battery reports local control',
      async () => (await metric('powerplane_command_source_mismatch', 'soe')) === 0,
    );
  });

  it('ignores a NIV estimate older than a settlement period and chases a fresh one', async () => {
    await report(2, { soe: 50 });
    const stale = Date.now() - 2 * 3_600_000;
    await api.admin.dispatch.publishMarketData({
      points: [
        { time: timestampFromMs(stale), type: 'niv_estimate', value: 300 },
        { time: timestampFromMs(stale), type: 'imbalance_price', value: 120 },
      ],
    });
    await api.admin.dispatch.setSiteConfig({
      config: { site: 'niv', nivChase: { enabled: true, nivThresholdMw: 100, shortPriceThreshold: 50, longPriceThreshold: 0 } },
    });
    const writesBefore = sim.writeLog.length;
    // Twelve control periods: the loop plans the site with NIV chase on and the old signals.
    await sleep(3_000);
    expect(wset(2).wsetEna).not.toBe(1);
    const { port, unitId } = sim.bess[2]!.endpoint;
    expect(sim.writeLog.slice(writesBefore).filter((w) => w.port === port && w.unitId === unitId)).toEqual([]);
    expect((await api.admin.dispatch.getControlState({ site: 'niv' })).states[0]?.intendedSource).toBe(CommandSource.LOCAL);

    const fresh = Date.now() - 60_000;
    await api.admin.dispatch.publishMarketData({
      points: [
        { time: timestampFromMs(fresh), type: 'niv_estimate', value: 300 },
        { time: timestampFromMs(fresh), type: 'imbalance_price', value: 120 },
      ],
    });
    await waitFor('NIV discharge', () => wset(2).wsetEna === 1 && (wset(2).wsetW ?? 0) > 0);
    const [chasing] = (await api.admin.dispatch.getControlState({ site: 'niv' })).states;
    expect(chasing).toMatchObject({ intendedSource: CommandSource.DISPATCH, reason: 'following niv_chase' });
    await api.admin.dispatch.setSiteConfig({ config: { site: 'niv' } });
    await waitFor('released when NIV chase is off', () => wset(2).wsetEna === 0);
  });

  it('ramps from the power a battery was verified to hold, not from setpoints that failed', async () => {
    const i = sites.indexOf('ramp');
    const device = sim.bess[i]!;
    await report(i);
    // The battery refuses every write (exception 04) while the request stands.
    device.faults.exceptionCode = 4;
    await api.a.dispatch.submitDispatch({
      requestId: 'ramp',
      target: { case: 'deviceId', value: ids[i]! },
      intervals: [{ ...window(-1_000, 120_000), command: { case: 'powerKw', value: 100 } }],
    });
    await waitFor('failed setpoints', async () => (await events(i)).filter((e) => e.phase === 'FAILED').length >= 4);
    const before = sim.writeLog.length;
    delete device.faults.exceptionCode;
    await waitFor('a verified setpoint', async () => (await events(i)).some((e) => e.phase === 'VERIFIED' && e.target_power_kw > 0));
    // One step is 10 kW/s × 0.25 s = 2.5 kW. Ramping from the failed plans instead would have
    // sent the battery, still at 0 kW, a step of several times that at once.
    const { port, unitId } = device.endpoint;
    const first = sim.writeLog.slice(before).find((w) => w.port === port && w.unitId === unitId && w.values.length === 4);
    expect(first).toBeDefined();
    const watts = (first!.values[2]! << 16) | first!.values[3]!;
    expect(watts).toBeGreaterThan(0);
    expect(watts).toBeLessThanOrEqual(2_500);
    await api.a.dispatch.cancelDispatch({ id: (await api.a.dispatch.listDispatches({ deviceId: ids[i]! })).instructions[0]!.id });
  });

  it('exports what a site cannot deliver now, and clears it when the request ends', async () => {
    // One of two inverter blocks available: 50 of the battery's 100 kW.
    await report(3, { blocks: 1 });
    const { instructions } = await api.a.dispatch.submitDispatch({
      requestId: 'beyond',
      target: { case: 'site', value: 'short' },
      intervals: [{ ...window(-1_000, 120_000), command: { case: 'powerKw', value: 100 } }],
    });
    await waitFor('50 kW delivered', () => wset(3).wsetEna === 1 && wset(3).wsetW === 50_000);
    await waitFor('the shortfall exported', async () => (await metric('powerplane_dispatch_undelivered_kw', 'short')) === 50);
    expect(await metric('powerplane_dispatch_requested_kw', 'short')).toBe(100);
    expect(await metric('powerplane_dispatch_planned_kw', 'short')).toBe(50);
    await api.a.dispatch.cancelDispatch({ id: instructions[0]!.id });
    await waitFor('nothing undelivered once cancelled', async () => (await metric('powerplane_dispatch_undelivered_kw', 'short')) === 0);
    expect(await metric('powerplane_dispatch_requested_kw', 'short')).toBe(0);
    expect(wset(3).wsetEna).toBe(0);
  });
});
