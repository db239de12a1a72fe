import type { MessageInitShape } from '@bufbuild/protobuf';
import { timestampFromDate, timestampFromMs } from '@bufbuild/protobuf/wkt';
import { createClient, type Client } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeviceRegistryService } from '../../gen/powerplane/v1/devices_pb.ts';
import {
  ControlMode,
  DispatchAction,
  DispatchService,
  DispatchState,
  SetpointPhase,
  SubmitDispatchRequestSchema,
} from '../../gen/powerplane/v1/dispatch_pb.ts';
import { CommandSource } from '../../gen/powerplane/v1/telemetry_pb.ts';
import { toConfig } from '../../src/config.ts';
import { msLeftInSettlementPeriod } from '../../src/planner/niv-chase.ts';
import { startSimulator, type Simulator } from '../../src/simulator/simulator.ts';
import { errorOf } from '../support/api.ts';
import { ENGINES } from '../support/databases.ts';
import { registerBattery } from '../support/fleet.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

type SubmitRequest = MessageInitShape<typeof SubmitDispatchRequestSchema>;

async function eventually<T>(read: () => Promise<T> | T, accept: (value: T) => boolean, what: string, attempts = 150): Promise<T> {
  let last: T | undefined;
  for (let i = 0; i < attempts; i++) {
    last = await read();
    if (accept(last)) return last;
    await new Promise((resolve) => setTimeout(resolve, 40));
  }
  throw new Error(`timed out waiting for ${what}; last value ${JSON.stringify(last)}`);
}

describe.each(ENGINES)('dispatch end to end on %s', (engine) => {
  let sim: Simulator;
  let t: TestServer;
  let dispatch: Client<typeof DispatchService>;
  let registry: Client<typeof DeviceRegistryService>;
  const site = 'alpha';
  const ids: string[] = [];

  /** Writes a fresh battery reading for every battery, as an agent would stream it. */
  async function feedTelemetry(soe = 50, ageMs = 0): Promise<void> {
    const time = new Date(Date.now() - ageMs);
    for (const id of ids) {
      await sql`insert into flux.mg_bess_readings (time, device_id, soe, available_inverter_blocks, command_source)
                values (${time}, ${id}, ${soe}, 2, ${CommandSource.DISPATCH}) on conflict do nothing`.execute(t.server.database.db);
    }
  }

  const wset = (i: number) => sim.bess[i]!.state();

  /** Waits until battery `i` has received no Modbus write for four control periods. */
  async function writesSettle(i: number): Promise<void> {
    const { port, unitId } = sim.bess[i]!.endpoint;
    const count = () => sim.writeLog.filter((w) => w.port === port && w.unitId === unitId).length;
    let last = -1;
    await eventually(
      async () => {
        const seen = count();
        const quiet = seen === last;
        last = seen;
        await new Promise((resolve) => setTimeout(resolve, 1000));
        return quiet;
      },
      (quiet) => quiet,
      `battery ${i} writes to settle`,
      30,
    );
  }

  /** Writes and setpoint events so far, taken once every battery is quiet: the refusal cases compare against it. */
  let refusalBaseline: { writes: number; events: number } | undefined;
  async function snapshot(): Promise<{ writes: number; events: number }> {
    const { rows } = await sql<{ n: number }>`select count(*)::int as n from powerplane.setpoint_events`.execute(t.server.database.db);
    return { writes: sim.writeLog.length, events: rows[0]!.n };
  }
  async function baselineBeforeRefusals(): Promise<void> {
    if (refusalBaseline) return;
    await Promise.all(ids.map((_, i) => writesSettle(i)));
    refusalBaseline = await snapshot();
  }

  beforeAll(async () => {
    sim = await startSimulator({ bess: 3, bessConfig: (i) => ({ wsetSf: i === 1 ? 1 : 0 }) });
    const defaults = toConfig({});
    t = await startTestServer(engine, {
      dispatch: { ...defaults.dispatch, controlPeriodMs: 250, heartbeatIntervalMs: 300, maxTelemetryAgeMs: 60_000 },
    });
    const transport = createGrpcTransport({ baseUrl: t.baseUrl });
    dispatch = createClient(DispatchService, transport);
    registry = createClient(DeviceRegistryService, transport);
    for (const [i, device] of sim.bess.entries()) {
      const spec = { minSoePercent: 5, maxSoePercent: 95, inverterBlockCount: 2, reversionTimeoutS: 5 };
      ids.push(await registerBattery(registry, i < 2 ? site : 'beta', `bess-${i}`, device.endpoint, spec));
    }
    await feedTelemetry();
    // The control loop drives batteries once this replica holds shard leases.
    await eventually(
      () => t.server.controlsBatteries(),
      (leading) => leading,
      'shard leases',
      250,
    );
  });
  afterAll(async () => {
    await t?.stop();
    await sim?.stop();
  });

  it('splits a site dispatch across its batteries, each holding its scaled WSet, and watchers see it verified', async () => {
    const watch = new AbortController();
    const phases: SetpointPhase[] = [];
    const watching = (async () => {
      try {
        for await (const res of dispatch.watchSetpoints({ site }, { signal: watch.signal })) {
          for (const event of res.events) if (event.targetPowerKw === 60) phases.push(event.phase);
        }
      } catch {
        // aborted below
      }
    })();
    // A second watcher asks for verified events only.
    const verifiedOnly: SetpointPhase[] = [];
    const watchingVerified = (async () => {
      try {
        for await (const res of dispatch.watchSetpoints({ site, phases: [SetpointPhase.VERIFIED] }, { signal: watch.signal }))
          verifiedOnly.push(...res.events.map((e) => e.phase));
      } catch {
        // aborted below
      }
    })();
    await eventually(
      async () => 0,
      () => true,
      'watch open',
      1,
    );
    const { instructions } = await dispatch.submitDispatch({
      requestId: 'site-60',
      target: { case: 'site', value: site },
      intervals: [
        {
          startTime: timestampFromMs(Date.now() - 1_000),
          endTime: timestampFromMs(Date.now() + 4_000),
          command: { case: 'powerKw', value: 120 },
        },
      ],
    });
    expect(instructions).toHaveLength(1);
    expect(instructions[0]!.state).toBe(DispatchState.ACTIVE);
    await eventually(
      () => [wset(0), wset(1)] as const,
      ([a, b]) => a.wsetEna === 1 && a.wsetW === 60_000 && b.wsetEna === 1 && b.wsetW === 60_000,
      'both batteries at 60 kW',
    );
    // Battery 1 has WSet_SF = 1: it received a tenth of the watts as its raw register value.
    const raw = (i: number) =>
      sim.writeLog
        .filter((w) => w.port === sim.bess[i]!.endpoint.port && w.unitId === sim.bess[i]!.endpoint.unitId)
        .flatMap((w) => w.values);
    expect(raw(1)).toContain(6_000);
    expect(raw(1)).not.toContain(60_000);
    expect(raw(0)).toContain(60_000);
    expect(wset(2).wsetEna).not.toBe(1);
    await eventually(
      async () => phases,
      (p) => p.includes(SetpointPhase.VERIFIED),
      'a verified event',
    );
    expect(phases).toContain(SetpointPhase.PLANNED);
    expect(phases).toContain(SetpointPhase.WRITTEN);
    const state = await dispatch.getControlState({ site });
    expect(state.states.map((s) => s.intendedSource)).toEqual([CommandSource.DISPATCH, CommandSource.DISPATCH]);
    expect(state.states.every((s) => s.activeInstructionId === instructions[0]!.id)).toBe(true);
    await eventually(
      async () => verifiedOnly,
      (v) => v.length >= 2,
      'verified events on the filtered watch',
    );
    expect(new Set(verifiedOnly)).toEqual(new Set([SetpointPhase.VERIFIED]));
    watch.abort();
    await Promise.all([watching, watchingVerified]);

    await eventually(
      () => [wset(0), wset(1)] as const,
      ([a, b]) => a.wsetEna === 0 && b.wsetEna === 0,
      'release at the window end',
      200,
    );
    const after = await dispatch.getControlState({ site });
    expect(after.states.map((s) => s.intendedSource)).toEqual([CommandSource.LOCAL, CommandSource.LOCAL]);
    // The batteries' last readings still report dispatch (remote) control: a visible mismatch.
    expect(after.states.map((s) => s.sourceMismatch)).toEqual([true, true]);
    const metrics = await (await fetch(`${t.baseUrl}/metrics`)).text();
    expect(metrics).toContain('powerplane_command_source_mismatch{site="alpha"} 2');
    expect((await dispatch.getDispatch({ id: instructions[0]!.id })).instruction?.state).toBe(DispatchState.COMPLETED);
  });

  it('lets a manual override win and restores dispatch when it is released', async () => {
    await feedTelemetry();
    const { instructions } = await dispatch.submitDispatch({
      requestId: 'site-discharge-max',
      target: { case: 'site', value: site },
      intervals: [
        {
          startTime: timestampFromMs(Date.now() - 500),
          endTime: timestampFromMs(Date.now() + 60_000),
          command: { case: 'action', value: DispatchAction.DISCHARGE_MAX },
        },
      ],
    });
    await eventually(
      () => wset(0),
      (s) => s.wsetEna === 1 && s.wsetW === 100_000,
      'discharge max on battery 0',
    );
    const manual = await dispatch.setControlMode({
      deviceId: ids[0]!,
      mode: ControlMode.MANUAL,
      manualPowerKw: -25,
      expireTime: timestampFromMs(Date.now() + 60_000),
      reason: 'site test',
    });
    expect(manual.state?.deviceId).toBe(ids[0]);
    await eventually(
      () => wset(0),
      (s) => s.wsetW === -25_000,
      'manual -25 kW',
    );
    expect((await dispatch.getControlState({ deviceIds: [ids[0]!] })).states[0]?.intendedSource).toBe(CommandSource.MANUAL);
    await dispatch.setControlMode({ deviceId: ids[0]!, mode: ControlMode.AUTOMATIC });
    await eventually(
      () => wset(0),
      (s) => s.wsetW === 100_000,
      'dispatch restored',
    );
    await dispatch.cancelDispatch({ id: instructions[0]!.id, reason: 'test over' });
    await eventually(
      () => [wset(0), wset(1)] as const,
      ([a, b]) => a.wsetEna === 0 && b.wsetEna === 0,
      'released after cancel',
    );
    expect((await dispatch.getDispatch({ id: instructions[0]!.id })).instruction?.state).toBe(DispatchState.CANCELLED);
  });

  it('holds a battery whose telemetry is stale and says why', async () => {
    await sql`delete from flux.mg_bess_readings`.execute(t.server.database.db);
    await feedTelemetry(50, 10 * 60_000);
    await dispatch.submitDispatch({
      requestId: 'stale',
      target: { case: 'deviceId', value: ids[0]! },
      intervals: [
        {
          startTime: timestampFromMs(Date.now() - 500),
          endTime: timestampFromMs(Date.now() + 60_000),
          command: { case: 'powerKw', value: 30 },
        },
      ],
    });
    const [state] = (
      await eventually(
        () => dispatch.getControlState({ deviceIds: [ids[0]!] }),
        (s) => s.states[0]?.intendedSource === CommandSource.FAILSAFE,
        'failsafe',
      )
    ).states;
    expect(state?.reason).toMatch(/stale/);
    expect(wset(0).wsetEna).not.toBe(1);
    const list = await dispatch.listDispatches({ deviceId: ids[0]!, state: DispatchState.ACTIVE });
    await dispatch.cancelDispatch({ id: list.instructions[0]!.id });
    await feedTelemetry();
    // Stale telemetry made every battery held (and released with a write); let the loop see
    // the fresh readings and finish those writes so later tests count only their own.
    await eventually(
      () => dispatch.getControlState({ deviceIds: ids }),
      (s) => s.states.every((x) => x.intendedSource !== CommandSource.FAILSAFE),
      'fresh telemetry seen',
    );
    await writesSettle(2);
  });

  it('writes once for a retried request id and nothing for a changed payload under it', async () => {
    const request = {
      requestId: 'retry-me',
      target: { case: 'site' as const, value: 'beta' },
      intervals: [
        {
          startTime: timestampFromMs(Date.now() + 600_000),
          endTime: timestampFromMs(Date.now() + 900_000),
          command: { case: 'powerKw' as const, value: 10 },
        },
      ],
    };
    const first = await dispatch.submitDispatch(request);
    const again = await dispatch.submitDispatch(request);
    expect(again.instructions.map((i) => i.id)).toEqual(first.instructions.map((i) => i.id));
    expect(first.instructions[0]?.state).toBe(DispatchState.PENDING);
    const changed = await errorOf(
      dispatch.submitDispatch({ ...request, intervals: [{ ...request.intervals[0]!, command: { case: 'powerKw', value: 11 } }] }),
    );
    expect(changed).toMatchObject({ code: 'AlreadyExists' });
    expect(changed.message).toContain('request_id');
    expect((await dispatch.listDispatches({ site: 'beta' })).instructions).toHaveLength(1);
  });

  it('stores one schedule for concurrent submits with one request id, and refuses a concurrent other payload', async () => {
    const at = Date.now() + 3_600_000;
    const request = (kw: number, requestId: string) => ({
      requestId,
      target: { case: 'site' as const, value: 'beta' },
      intervals: [
        { startTime: timestampFromMs(at), endTime: timestampFromMs(at + 60_000), command: { case: 'powerKw' as const, value: kw } },
      ],
    });
    const same = await Promise.all(Array.from({ length: 5 }, () => dispatch.submitDispatch(request(5, 'concurrent-same'))));
    expect(new Set(same.map((r) => r.instructions[0]!.id)).size).toBe(1);
    const raced = await Promise.allSettled([
      dispatch.submitDispatch(request(6, 'concurrent-race')),
      dispatch.submitDispatch(request(7, 'concurrent-race')),
    ]);
    expect(raced.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(await errorOf(Promise.reject((raced.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason))).toMatchObject({
      code: 'AlreadyExists',
    });
    const stored = (await dispatch.listDispatches({ site: 'beta', pageSize: 1000 })).instructions.filter((i) =>
      i.requestId.startsWith('concurrent-'),
    );
    expect(stored).toHaveLength(2);
    for (const i of stored) await dispatch.cancelDispatch({ id: i.id });
  });

  it.each([
    ['an unknown site', { target: { case: 'site', value: 'nowhere' } }, 'NotFound', 'site'],
    ['an unknown battery', { target: { case: 'deviceId', value: '00000000-0000-4000-8000-000000000000' } }, 'NotFound', 'device_id'],
    ['a malformed battery id', { target: { case: 'deviceId', value: 'x1' } }, 'InvalidArgument', 'device_id'],
    ['a missing request id', { requestId: '' }, 'InvalidArgument', 'request_id'],
    ['a NaN power', { power: Number.NaN }, 'InvalidArgument', 'intervals[0].power_kw'],
    ['power beyond the fleet rating', { power: 250 }, 'InvalidArgument', 'intervals[0].power_kw'],
    ['charge beyond the fleet rating', { power: -201 }, 'InvalidArgument', 'intervals[0].power_kw'],
    ['an end before the start', { end: -10_000 }, 'InvalidArgument', 'intervals[0].end_time'],
    ['a window already over', { start: -20_000, end: 10_000 }, 'InvalidArgument', 'intervals[0].end_time is already over'],
    ['an unspecified action', { action: DispatchAction.UNSPECIFIED }, 'InvalidArgument', 'intervals[0].action'],
  ] as const)('rejects %s naming the field, planning and writing nothing', async (_case, change, code, field) => {
    await baselineBeforeRefusals();
    const countBefore = (await dispatch.listDispatches({ pageSize: 1000 })).instructions.length;
    const c = change as { target?: never; requestId?: string; power?: number; end?: number; start?: number; action?: DispatchAction };
    const startMs = Date.now() + (c.start ?? 60_000);
    const result = await errorOf(
      dispatch.submitDispatch({
        requestId: c.requestId ?? `bad-${field}-${code}`,
        target: c.target ?? { case: 'site', value: site },
        intervals: [
          {
            startTime: timestampFromMs(startMs),
            endTime: timestampFromMs(c.end !== undefined ? startMs + c.end : startMs + 60_000),
            command: c.action !== undefined ? { case: 'action', value: c.action } : { case: 'powerKw', value: c.power ?? 10 },
          },
        ],
      }),
    );
    expect(result.code).toBe(code);
    expect(result.message).toContain(field);
    expect((await dispatch.listDispatches({ pageSize: 1000 })).instructions).toHaveLength(countBefore);
  });

  /** A valid one-interval schedule for site alpha starting at `start` (ms), to be spoiled by a case. */
  const schedule = (start: number, end = start + 60_000) => ({
    startTime: timestampFromMs(start),
    endTime: timestampFromMs(end),
    command: { case: 'powerKw' as const, value: 10 },
  });

  it.each([
    ['a missing target', (_: number) => ({ target: { case: undefined } }), 'target'],
    ['a request id over 100 characters', (_: number) => ({ requestId: 'x'.repeat(101) }), 'request_id'],
    ['a priority out of range', (_: number) => ({ priority: 1001 }), 'priority'],
    ['no intervals', (_: number) => ({ intervals: [] }), 'intervals'],
    [
      'more than 1000 intervals',
      (start: number) => ({ intervals: Array.from({ length: 1001 }, (_, i) => schedule(start + i * 60_000)) }),
      'intervals',
    ],
    ['a missing start time', (start: number) => ({ intervals: [{ ...schedule(start), startTime: undefined }] }), 'intervals[0].start_time'],
    ['a missing end time', (start: number) => ({ intervals: [{ ...schedule(start), endTime: undefined }] }), 'intervals[0].end_time'],
    [
      'a missing command',
      (start: number) => ({ intervals: [{ ...schedule(start), command: { case: undefined } }] }),
      'intervals[0].command',
    ],
    ['overlapping intervals', (start: number) => ({ intervals: [schedule(start), schedule(start + 30_000)] }), 'intervals[1].start_time'],
  ] as const)('rejects a schedule with %s naming the field, storing nothing', async (_case, change, field) => {
    await baselineBeforeRefusals();
    const countBefore = (await dispatch.listDispatches({ pageSize: 1000 })).instructions.length;
    const start = Date.now() + 60_000;
    const request: SubmitRequest = {
      requestId: `bad-shape-${field}`,
      target: { case: 'site', value: site },
      priority: 0,
      intervals: [schedule(start)],
      ...change(start),
    };
    const result = await errorOf(dispatch.submitDispatch(request));
    expect(result.code).toBe('InvalidArgument');
    expect(result.message).toContain(field);
    expect((await dispatch.listDispatches({ pageSize: 1000 })).instructions).toHaveLength(countBefore);
  });

  it('planned and wrote nothing for any of the refused dispatches above', async () => {
    expect(refusalBaseline).toBeDefined();
    // Four control periods: anything a refusal had set going would be planned and written by now.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const after = await snapshot();
    expect(sim.writeLog.slice(refusalBaseline!.writes)).toEqual([]);
    expect(after.events).toBe(refusalBaseline!.events);
  });

  it('rejects an override without an expiry, or one more than 7 days ahead, and keeps the battery automatic', async () => {
    const base = { deviceId: ids[1]!, mode: ControlMode.MANUAL, manualPowerKw: 10, reason: 'r' };
    expect(await errorOf(dispatch.setControlMode(base))).toMatchObject({
      code: 'InvalidArgument',
      message: expect.stringContaining('expire_time'),
    });
    const tooFar = timestampFromMs(Date.now() + 7 * 86_400_000 + 60_000);
    expect(await errorOf(dispatch.setControlMode({ ...base, expireTime: tooFar }))).toMatchObject({
      code: 'InvalidArgument',
      message: expect.stringContaining('expire_time'),
    });
    expect((await dispatch.getControlState({ deviceIds: [ids[1]!] })).states[0]?.intendedSource).not.toBe(CommandSource.MANUAL);
  });

  it('rejects bad market-data queries naming the field', async () => {
    const start = timestampFromMs(Date.UTC(2026, 0, 1));
    expect(await errorOf(dispatch.listMarketData({ startTime: start, endTime: start }))).toMatchObject({
      code: 'InvalidArgument',
      message: expect.stringContaining('end_time'),
    });
    expect(
      await errorOf(
        dispatch.listMarketData({
          startTime: start,
          endTime: timestampFromMs(Date.UTC(2026, 0, 2)),
          types: ['niv_estimate', 'spot_guess'],
        }),
      ),
    ).toMatchObject({
      code: 'InvalidArgument',
      message: expect.stringContaining('types[1]'),
    });
  });

  it('rejects bad state-of-energy targets and list filters naming the field, keeping the old settings', async () => {
    const before = (await dispatch.getSiteConfig({ site: 'beta' })).config;
    expect(
      await errorOf(dispatch.setSiteConfig({ config: { site: 'beta', soeTarget: { soePercent: 101, maxPowerKw: 10 } } })),
    ).toMatchObject({
      code: 'InvalidArgument',
      message: expect.stringContaining('config.soe_target.soe_percent'),
    });
    expect(
      await errorOf(dispatch.setSiteConfig({ config: { site: 'beta', soeTarget: { soePercent: 50, maxPowerKw: -1 } } })),
    ).toMatchObject({
      code: 'InvalidArgument',
      message: expect.stringContaining('config.soe_target.max_power_kw'),
    });
    expect((await dispatch.getSiteConfig({ site: 'beta' })).config).toEqual(before);
    expect(await errorOf(dispatch.listDispatches({ state: 99 as DispatchState }))).toMatchObject({
      code: 'InvalidArgument',
      message: expect.stringContaining('state'),
    });
    const many = Array.from({ length: 1001 }, (_, i) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`);
    expect(await errorOf(dispatch.getControlState({ deviceIds: many }))).toMatchObject({
      code: 'InvalidArgument',
      message: expect.stringContaining('device_ids'),
    });
  });

  it('rejects bad control-mode requests naming the field', async () => {
    const base = {
      deviceId: ids[0]!,
      mode: ControlMode.MANUAL,
      manualPowerKw: 10,
      expireTime: timestampFromMs(Date.now() + 60_000),
      reason: 'r',
    };
    const overrides = async () =>
      (await sql<{ n: number }>`select count(*)::int as n from powerplane.control_overrides`.execute(t.server.database.db)).rows[0]!.n;
    const overridesBefore = await overrides();
    expect(await errorOf(dispatch.setControlMode({ ...base, mode: ControlMode.UNSPECIFIED }))).toMatchObject({
      code: 'InvalidArgument',
      message: expect.stringContaining('mode'),
    });
    expect(await errorOf(dispatch.setControlMode({ ...base, manualPowerKw: 500 }))).toMatchObject({
      message: expect.stringContaining('manual_power_kw'),
    });
    expect(await errorOf(dispatch.setControlMode({ ...base, expireTime: timestampFromDate(new Date(Date.now() - 1000)) }))).toMatchObject({
      message: expect.stringContaining('expire_time'),
    });
    expect(await errorOf(dispatch.setControlMode({ ...base, reason: '' }))).toMatchObject({ message: expect.stringContaining('reason') });
    expect(await errorOf(dispatch.setControlMode({ ...base, deviceId: 'nope' }))).toMatchObject({
      message: expect.stringContaining('device_id'),
    });
    expect(await overrides()).toBe(overridesBefore);
  });

  it('chases NIV from market data: discharges into a short system and charges from a long one', async () => {
    await feedTelemetry();
    await dispatch.setSiteConfig({
      config: {
        site: 'beta',
        nivChase: {
          enabled: true,
          nivThresholdMw: 100,
          shortPriceThreshold: 50,
          longPriceThreshold: 0,
          shortTargetSoePercent: 48,
          longTargetSoePercent: 52,
        },
      },
    });
    expect((await dispatch.getSiteConfig({ site: 'beta' })).config?.nivChase?.enabled).toBe(true);
    /** 2 % of 200 kWh moved by the end of the settlement period, in W, at `at`. */
    const expectedW = (at: number) => Math.min(100_000, (4 / (Math.max(250, msLeftInSettlementPeriod(new Date(at))) / 3_600_000)) * 1000);
    const within = (w: number | undefined, from: number, to: number, sign: 1 | -1) => {
      const [a, b] = [expectedW(from), expectedW(to)];
      return w !== undefined && Math.sign(w) === sign && Math.abs(w) >= Math.min(a, b) - 1 && Math.abs(w) <= Math.max(a, b) + 1;
    };

    let from = Date.now();
    await dispatch.publishMarketData({
      points: [
        { time: timestampFromMs(from - 60_000), type: 'niv_estimate', value: 300 },
        { time: timestampFromMs(from - 60_000), type: 'imbalance_price', value: 120 },
      ],
    });
    await dispatch.setSiteConfig({ config: (await dispatch.getSiteConfig({ site: 'beta' })).config! });
    const short = await eventually(
      () => wset(2),
      (st) => st.wsetEna === 1 && within(st.wsetW, from, Date.now(), 1),
      'NIV discharge',
    );
    expect(short.wsetW).toBeGreaterThan(0);

    from = Date.now();
    await dispatch.publishMarketData({
      points: [
        { time: timestampFromMs(from - 30_000), type: 'niv_estimate', value: -300 },
        { time: timestampFromMs(from - 30_000), type: 'imbalance_price', value: -10 },
      ],
    });
    await dispatch.setSiteConfig({ config: (await dispatch.getSiteConfig({ site: 'beta' })).config! });
    const long = await eventually(
      () => wset(2),
      (st) => st.wsetEna === 1 && within(st.wsetW, from, Date.now(), -1),
      'NIV charge',
    );
    expect(long.wsetW).toBeLessThan(0);

    await dispatch.setSiteConfig({ config: { site: 'beta' } });
    await eventually(
      () => wset(2),
      (st) => st.wsetEna === 0,
      'released when NIV chase is off',
    );
  });

  it('rejects bad site settings naming the field', async () => {
    expect(await errorOf(dispatch.setSiteConfig({ config: { site: 'beta', importLimitKw: -1 } }))).toMatchObject({
      code: 'InvalidArgument',
      message: expect.stringContaining('config.import_limit_kw'),
    });
    expect(
      await errorOf(
        dispatch.setSiteConfig({
          config: { site: 'beta', nivChase: { enabled: true, nivThresholdMw: 1, shortPriceThreshold: Number.NaN, longPriceThreshold: 0 } },
        }),
      ),
    ).toMatchObject({
      message: expect.stringContaining('config.niv_chase.short_price_threshold'),
    });
    expect(await errorOf(dispatch.setSiteConfig({ config: { site: 'nowhere' } }))).toMatchObject({
      code: 'NotFound',
      message: expect.stringContaining('config.site'),
    });
    expect(await errorOf(dispatch.setSiteConfig({}))).toMatchObject({
      code: 'InvalidArgument',
      message: expect.stringContaining('config'),
    });
  });

  it('answers bad reads and impossible changes with the right code, naming the field', async () => {
    const unknown = '00000000-0000-4000-8000-000000000000';
    expect(await errorOf(dispatch.getDispatch({ id: unknown }))).toMatchObject({
      code: 'NotFound',
      message: expect.stringContaining(unknown),
    });
    expect(await errorOf(dispatch.cancelDispatch({ id: 'x' }))).toMatchObject({
      code: 'InvalidArgument',
      message: expect.stringContaining('id'),
    });
    expect(await errorOf(dispatch.listDispatches({ deviceId: 'x' }))).toMatchObject({
      code: 'InvalidArgument',
      message: expect.stringContaining('device_id'),
    });
    expect(await errorOf(dispatch.listDispatches({ pageToken: 'junk' }))).toMatchObject({
      code: 'InvalidArgument',
      message: expect.stringContaining('page_token'),
    });
    expect(await errorOf(dispatch.getControlState({}))).toMatchObject({
      code: 'InvalidArgument',
      message: expect.stringContaining('site'),
    });
    expect(await errorOf(dispatch.getControlState({ site: 'nowhere' }))).toMatchObject({
      code: 'NotFound',
      message: expect.stringContaining('site'),
    });
    expect(await errorOf(dispatch.getControlState({ deviceIds: [unknown] }))).toMatchObject({
      code: 'NotFound',
      message: expect.stringContaining('device_ids[0]'),
    });
    expect(await errorOf(dispatch.setControlMode({ deviceId: unknown, mode: ControlMode.AUTOMATIC }))).toMatchObject({
      code: 'NotFound',
      message: expect.stringContaining('device_id'),
    });
    // A streaming call's bad input is mapped like a unary one's, not masked as INTERNAL.
    const watch = (async () => {
      for await (const _ of dispatch.watchSetpoints({ deviceId: 'x' })) break;
    })();
    expect(await errorOf(watch)).toMatchObject({ code: 'InvalidArgument', message: expect.stringContaining('device_id') });
    const badPhase = (async () => {
      for await (const _ of dispatch.watchSetpoints({ site, phases: [SetpointPhase.VERIFIED, SetpointPhase.UNSPECIFIED] })) break;
    })();
    expect(await errorOf(badPhase)).toMatchObject({ code: 'InvalidArgument', message: expect.stringContaining('phases[1]') });

    const { instructions } = await dispatch.submitDispatch({
      requestId: 'short-window',
      target: { case: 'site', value: 'beta' },
      intervals: [
        {
          startTime: timestampFromMs(Date.now() - 1_000),
          endTime: timestampFromMs(Date.now() + 300),
          command: { case: 'powerKw', value: 1 },
        },
      ],
    });
    await eventually(
      async () => (await dispatch.getDispatch({ id: instructions[0]!.id })).instruction?.state,
      (st) => st === DispatchState.COMPLETED,
      'completion',
    );
    expect(await errorOf(dispatch.cancelDispatch({ id: instructions[0]!.id }))).toMatchObject({
      code: 'FailedPrecondition',
      message: expect.stringContaining('completed'),
    });
  });

  it('keeps market data revisions and answers the latest', async () => {
    const time = timestampFromMs(Date.UTC(2026, 0, 1, 12, 0));
    const first = await dispatch.publishMarketData({
      points: [
        { time, type: 'niv_estimate', value: 120.5 },
        { time, type: 'imbalance_price', value: 85 },
      ],
    });
    expect(first).toMatchObject({ storedCount: 2, unchangedCount: 0, revisedCount: 0 });
    const same = await dispatch.publishMarketData({ points: [{ time, type: 'niv_estimate', value: 120.5 }] });
    expect(same).toMatchObject({ storedCount: 0, unchangedCount: 1, revisedCount: 0 });
    const revised = await dispatch.publishMarketData({ points: [{ time, type: 'niv_estimate', value: -40 }] });
    expect(revised).toMatchObject({ storedCount: 0, unchangedCount: 0, revisedCount: 1 });
    const listed = await dispatch.listMarketData({ startTime: time, endTime: timestampFromMs(Date.UTC(2026, 0, 1, 13)) });
    expect(listed.points.map((p) => [p.type, p.value])).toEqual([
      ['niv_estimate', -40],
      ['imbalance_price', 85],
    ]);
    expect(await errorOf(dispatch.publishMarketData({ points: [{ time, type: 'spot_guess', value: 1 }] }))).toMatchObject({
      code: 'InvalidArgument',
      message: expect.stringContaining('points[0].type'),
    });
    // A batch with one bad point is refused whole: its good points are not stored either.
    const fresh = timestampFromMs(Date.UTC(2026, 0, 1, 12, 30));
    expect(
      await errorOf(
        dispatch.publishMarketData({
          points: [
            { time: fresh, type: 'imbalance_price', value: 1 },
            { time: fresh, type: 'niv_estimate', value: Number.POSITIVE_INFINITY },
          ],
        }),
      ),
    ).toMatchObject({
      code: 'InvalidArgument',
      message: expect.stringContaining('points[1].value'),
    });
    expect((await dispatch.listMarketData({ startTime: time, endTime: timestampFromMs(Date.UTC(2026, 0, 1, 13)) })).points).toHaveLength(2);
  });
});
