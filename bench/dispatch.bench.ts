/**
 * `npm run bench:dispatch [-- --quick] [-- --fleet N]`: from one SubmitDispatch to verified setpoints.
 *  1. baselines: the same fleet, and the single battery, driven by setpoint writers directly
 *     (no API, no database, no planner): time until every battery's setpoint is verified;
 *  2. fleet: a control plane on a throwaway PostgreSQL, N (default 1000) simulated SunSpec
 *     batteries (`powerplane simulate` in its own process, as batteries are other machines)
 *     in one site; per round one SubmitDispatch for the site, then the time until each
 *     battery reports VERIFIED on WatchSetpoints (p50/p99/max over batteries and rounds);
 *  3. single: one battery in its own site, submit → verified, p50/p99, once the fleet's
 *     instruction is cancelled and its batteries released (an otherwise idle control plane).
 * The batteries are registered through the registry itself, as an administrator's tool would,
 * not through CreateDevice: a fleet of thousands would otherwise wait on the registry's rate limit.
 * Binds 127.0.0.1 port 0 only, bounds every loop and stops everything it starts. The last
 * line is one JSON object with the headline figures.
 */
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { createClient, type Client } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { sql } from 'kysely';
import { CommandSource } from '../gen/powerplane/v1/telemetry_pb.ts';
import { DispatchService, DispatchState, SetpointPhase } from '../gen/powerplane/v1/dispatch_pb.ts';
import { createSetpointWriter } from '../src/modbus/setpoint-writer.ts';
import type { ModbusEndpoint } from '../src/modbus/types.ts';
import { createLogger } from '../src/logger.ts';
import { createRegistry } from '../src/registry/registry.ts';
import { DEVICE_DEFAULTS } from '../src/registry/registered-device.ts';
import { openDatabase, type Database } from '../src/storage/database.ts';
import { migrate } from '../src/storage/migrator.ts';
import { startPostgresCluster } from '../test/support/postgres-cluster.ts';
import { startServerProcess, stopServerProcess } from './support/server-process.ts';
import { startSimulatorProcess } from './support/simulator-process.ts';
import { percentile } from './support/stats.ts';
import { createBenchDatabase } from './support/bench-database.ts';

const quick = process.argv.includes('--quick');
const fleetArg = process.argv.indexOf('--fleet');
const FLEET = fleetArg >= 0 ? Number(process.argv[fleetArg + 1]) : 1000;
if (!Number.isInteger(FLEET) || FLEET < 1 || FLEET > 20_000)
  throw new Error(`--fleet must be a whole number from 1 to 20000, not ${process.argv[fleetArg + 1]}`);
const ROUNDS = quick ? 3 : 10;
const SINGLE_ROUNDS = quick ? 30 : 200;
/**
 * Longest wait for a warm-up round: it also waits out the first period's making of every
 * writer (a connection and a SunSpec discovery each), which on a busy 2-core machine has
 * taken over 30 s for 1000 batteries.
 */
const WARMUP_MS = 60_000 + 60 * FLEET;

const fmt = (n: number) => n.toFixed(1);
const stats = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return { p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted.at(-1) ?? Number.NaN };
};

/** Drives `devices` with bare setpoint writers for `rounds` rounds; each round's time until all are verified. */
async function baseline(devices: ModbusEndpoint[], rounds: number): Promise<number[]> {
  const totals: number[] = [];
  const waiting = new Map<string, () => void>();
  const writers = devices.map((endpoint, i) =>
    createSetpointWriter({
      deviceKey: `bess-${i}`,
      endpoint,
      profile: { kind: 'sunspec' },
      reversionTimeoutS: 30,
      heartbeatIntervalMs: 10_000,
      onEvent: (e) => {
        if (e.phase === 'verified') waiting.get(`bess-${i}:${e.targetPowerKw}`)?.();
      },
    }),
  );
  try {
    for (let round = 0; round <= rounds; round++) {
      const kw = round % 2 === 0 ? 40 : -40;
      const started = performance.now();
      await Promise.all(
        writers.map((w, i) => {
          const done = new Promise<void>((resolve) => waiting.set(`bess-${i}:${kw}`, resolve));
          w.setTarget(kw);
          return done;
        }),
      );
      if (round > 0) totals.push(performance.now() - started);
    }
  } finally {
    await Promise.all(writers.map((w) => w.stop()));
  }
  return totals;
}

/** Registers one battery per endpoint in `site` through the registry domain (no RPC, no rate limit); their ids. */
async function register(database: Database, devices: ModbusEndpoint[], site: string): Promise<string[]> {
  const registry = createRegistry({ db: database.db });
  const ids: string[] = [];
  for (let i = 0; i < devices.length; i += 50) {
    const chunk = devices.slice(i, i + 50);
    const created = await Promise.all(
      chunk.map((endpoint, j) =>
        registry.createDevice(
          {
            name: `${site}-${i + j}`,
            type: 'bess',
            site,
            metadata: {},
            bess: {
              ratedChargePowerKw: 100,
              ratedDischargePowerKw: 100,
              capacityKwh: 200,
              minSoePercent: 0,
              maxSoePercent: DEVICE_DEFAULTS.maxSoePercent,
              inverterBlockCount: 1,
              rampRateKwPerS: 0,
              reversionTimeoutS: 30,
              modbus: { ...endpoint, registerProfile: 'sunspec', pollingIntervalMs: DEVICE_DEFAULTS.pollingIntervalMs },
            },
          },
          '',
          'bench',
          { encode: () => new Uint8Array(), decode: () => undefined as never },
        ),
      ),
    );
    ids.push(...created.map((d) => d.id));
  }
  return ids;
}

/** Waits (at most 60 s) until every battery of `site` is released to local control. */
async function fleetReleased(dispatch: Client<typeof DispatchService>, site: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const { states } = await dispatch.getControlState({ site });
    if (states.every((s) => s.intendedSource === CommandSource.LOCAL)) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('the fleet was not released within 60 s');
}

/** Submits `kw` for `site` and resolves with each battery's submit → verified time. */
async function dispatchRound(
  dispatch: Client<typeof DispatchService>,
  site: string,
  ids: string[],
  kw: number,
  round: string,
  timeoutMs = 30_000,
): Promise<number[]> {
  const pending = new Set(ids);
  const times: number[] = [];
  const watch = new AbortController();
  let started = 0;
  const verified = (async () => {
    for await (const res of dispatch.watchSetpoints({ site, phases: [SetpointPhase.VERIFIED] }, { signal: watch.signal })) {
      for (const e of res.events) {
        if (started && e.phase === SetpointPhase.VERIFIED && Math.abs(e.targetPowerKw - kw) < 1e-6 && pending.delete(e.deviceId)) {
          times.push(performance.now() - started);
          if (pending.size === 0) return;
        }
      }
    }
  })();
  await new Promise((resolve) => setTimeout(resolve, 50));
  started = performance.now();
  const deadline = setTimeout(() => watch.abort(), timeoutMs);
  await dispatch.submitDispatch({
    requestId: `${site}-${round}`,
    target: { case: 'site', value: site },
    intervals: [
      {
        startTime: timestampFromMs(Date.now() - 1_000),
        endTime: timestampFromMs(Date.now() + 600_000),
        command: { case: 'powerKw', value: kw * ids.length },
      },
    ],
  });
  await verified.catch(() => undefined);
  clearTimeout(deadline);
  watch.abort();
  if (pending.size > 0) throw new Error(`${pending.size} batteries never verified in round ${round}`);
  return times;
}

/**
 * Warm-up rounds until one verifies every battery, at most three: the first may also wait
 * out the making of every writer, and on a busy machine a watch can be cut while thousands
 * of them connect. Only the rounds after it are measured.
 */
async function warmUp(dispatch: Client<typeof DispatchService>, site: string, ids: string[], kw: number): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await dispatchRound(dispatch, site, ids, kw + attempt, `warmup-${attempt}`, WARMUP_MS);
      return;
    } catch (err) {
      if (attempt === 3) throw err;
      console.log(`warm-up   ${site} attempt ${attempt} failed (${(err as Error).message}); again`);
    }
  }
}

async function main(): Promise<void> {
  console.log(`bench:dispatch ${quick ? '(quick)' : ''}: fleet ${FLEET}, ${ROUNDS} rounds; single ${SINGLE_ROUNDS} rounds`);
  // The batteries live in a process of their own, as real ones are other machines.
  const sim = await startSimulatorProcess(FLEET + 1);
  const cluster = await startPostgresCluster();
  let server: Awaited<ReturnType<typeof startServerProcess>> | undefined;
  try {
    const fleetDevices = sim.bess.slice(0, FLEET);
    const base = stats(await baseline(fleetDevices, ROUNDS));
    console.log(`baseline  writers only, ${FLEET} batteries: all verified in p50 ${fmt(base.p50)} ms, p99 ${fmt(base.p99)} ms`);
    const singleBase = stats(await baseline([sim.bess[FLEET]!], SINGLE_ROUNDS));
    console.log(`baseline  writer only, one battery: verified in p50 ${fmt(singleBase.p50)} ms, p99 ${fmt(singleBase.p99)} ms`);

    const url = await createBenchDatabase(cluster.adminUrl);
    // The fleet is in the registry, with a fresh reading per battery, before the control plane
    // starts: its first period plans every battery (and makes every writer) at once.
    const database = await openDatabase({ kind: 'postgres', url }, { log: createLogger('silent'), poolSize: 4 });
    let fleetIds: string[];
    let singleId: string;
    try {
      await migrate(database, createLogger('silent'));
      fleetIds = await register(database, fleetDevices, 'fleet');
      [singleId] = (await register(database, [sim.bess[FLEET]!], 'single')) as [string];
      await sql`insert into flux.mg_bess_readings (time, device_id, soe, available_inverter_blocks, command_source)
                select now(), id, 50, 1, 2 from unnest(${[...fleetIds, singleId]}::uuid[]) as id`.execute(database.db);
    } finally {
      await database.close();
    }
    // The control plane in a process of its own too, as trading clients are other machines;
    // it reports its port once it runs the control loop (a few seconds on PostgreSQL).
    server = await startServerProcess({
      DATABASE_URL: url.toString(),
      POWERPLANE_AUTH: 'off',
      POWERPLANE_LOG_LEVEL: 'error',
      POWERPLANE_CONTROL_PERIOD_MS: '4000',
      POWERPLANE_MAX_TELEMETRY_AGE_MS: '3600000',
      BENCH_WAIT_FOR_CONTROL: '1',
    });
    const transport = createGrpcTransport({ baseUrl: `http://127.0.0.1:${server.port}` });
    const dispatch = createClient(DispatchService, transport);

    await warmUp(dispatch, 'fleet', fleetIds, 10);
    const fleetTimes: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const times = await dispatchRound(dispatch, 'fleet', fleetIds, round % 2 === 0 ? 40 : -40, `r${round}`);
      const s = stats(times);
      console.log(`fleet     round ${round + 1}: ${FLEET} verified, p50 ${fmt(s.p50)} ms, p99 ${fmt(s.p99)} ms, max ${fmt(s.max)} ms`);
      fleetTimes.push(...times);
    }
    const fleet = stats(fleetTimes);

    // The single battery is measured on an otherwise idle control plane: the fleet's last
    // instruction is cancelled and its batteries released first, so their heartbeats (1000
    // Modbus writes a second in this process) are not what the single figure measures.
    const active = await dispatch.listDispatches({ site: 'fleet', state: DispatchState.ACTIVE, pageSize: 1000 });
    for (const instruction of active.instructions) await dispatch.cancelDispatch({ id: instruction.id, reason: 'fleet rounds over' });
    await fleetReleased(dispatch, 'fleet');

    await warmUp(dispatch, 'single', [singleId], 5);
    const singleTimes: number[] = [];
    for (let round = 0; round < SINGLE_ROUNDS; round++) {
      singleTimes.push(...(await dispatchRound(dispatch, 'single', [singleId], round % 2 === 0 ? 20 : -20, `s${round}`)));
    }
    const single = stats(singleTimes);
    console.log(
      `fleet     ${FLEET} batteries × ${ROUNDS}: p50 ${fmt(fleet.p50)} ms, p99 ${fmt(fleet.p99)} ms, max ${fmt(fleet.max)} ms ` +
        `(baseline p99 ${fmt(base.p99)} ms, ratio ${fmt(fleet.p99 / base.p99)}×)`,
    );
    console.log(
      `single    submit → verified: p50 ${fmt(single.p50)} ms, p99 ${fmt(single.p99)} ms (baseline p50 ${fmt(singleBase.p50)} ms)`,
    );
    console.log(
      JSON.stringify({
        fleet: FLEET,
        fleet_verified_p50_ms: Number(fmt(fleet.p50)),
        fleet_verified_p99_ms: Number(fmt(fleet.p99)),
        fleet_verified_max_ms: Number(fmt(fleet.max)),
        baseline_fleet_p99_ms: Number(fmt(base.p99)),
        single_p50_ms: Number(fmt(single.p50)),
        single_p99_ms: Number(fmt(single.p99)),
        baseline_single_p50_ms: Number(fmt(singleBase.p50)),
      }),
    );
  } finally {
    if (server) await stopServerProcess(server.child);
    await cluster.stop();
    await sim.stop();
  }
}

await main();
