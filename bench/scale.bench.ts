/**
 * `npm run bench:scale [-- --quick] [--replicas R]`: control scaled out over R replicas
 * (default 3) of `powerplane serve` on one throwaway PostgreSQL, S sites × B batteries
 * (quick 30 × 20, full 100 × 50) simulated in processes of their own (one per 1000), one
 * edge agent per site in another (streaming to the replicas round-robin, never to the one
 * killed), and a few one-battery probe sites for single submits. In order:
 *  1. fleet: one SubmitDispatch per site at once, round-robin over the replicas, until
 *     every battery is verified (VERIFIED on WatchSetpoints, watched on every replica, a
 *     battery counting from its first arrival); a warm-up round, then the timed rounds;
 *  2. owner and follower: single-battery submits on the probe sites, each made on, and
 *     watched on, the replica owning the site, then on another one;
 *  3. failover: SIGKILL one replica; per battery of its sites, the time until it is
 *     verified again at the same power; batteries whose reversion timer fired (simulator
 *     state); shards that changed owner;
 *  4. single replica: the others stopped gracefully, the same fleet rounds on the one left.
 * `double_writes` counts batteries written by two epochs interleaved over the whole run
 * (`test/support/write-spans.ts`). Replicas run with the product's defaults (lease 1.5 s,
 * Modbus timeout 1 s, control period 4 s). Binds 127.0.0.1 port 0 only, bounds every
 * wait, stops everything it starts; the last line is one JSON object.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startPostgresCluster, type PostgresCluster } from '../test/support/postgres-cluster.ts';
import { fairlyShared, startScaleCluster, type ClusterReplica, type ScaleCluster } from '../test/support/scale-cluster.ts';
import { registerSites, submitPower, type FleetSite } from '../test/support/scale-fleet.ts';
import { startSimProcess, type SimProcess } from '../test/support/sim-process.ts';
import { watchVerified, type VerifiedWatch } from '../test/support/verified-watch.ts';
import { sleep, waitFor } from '../test/support/wait.ts';
import { percentile } from './support/stats.ts';
import { createBenchDatabase } from './support/bench-database.ts';

const { values: args } = parseArgs({ options: { quick: { type: 'boolean' }, replicas: { type: 'string' } }, strict: true });
const quick = args.quick === true;
const REPLICAS = Number(args.replicas ?? 3);
if (!Number.isInteger(REPLICAS) || REPLICAS < 1 || REPLICAS > 8)
  throw new RangeError(`--replicas must be an integer 1..8 (got ${args.replicas})`);
const SITES = quick ? 30 : 100;
const PER_SITE = quick ? 20 : 50;
const PROBES = 4;
const ROUNDS = quick ? 2 : 5;
const SINGLES = quick ? 10 : 30;
/** Short enough that a slow failover shows as reverted batteries (the issue's example); the product's default is 30 s. */
const REVERSION_TIMEOUT_S = 6;
const POLL_MS = quick ? 5_000 : 10_000;
const KW = 30;

const fmt = (n: number, digits = 1) => Number(n.toFixed(digits));
const p = (values: number[], q: number) =>
  percentile(
    [...values].sort((a, b) => a - b),
    q,
  );
const say = (line: string) => console.log(line);

interface Run {
  cluster: ScaleCluster;
  fleet: FleetSite[];
  probes: FleetSite[];
  watch: VerifiedWatch;
  /** The power each battery was last sent, kW. */
  kw: Map<string, number>;
}

/** One SubmitDispatch per site at once, round-robin over `via`; each battery's submit → verified, ms. */
async function fleetRound(run: Run, via: ClusterReplica[], kwPerBattery: number, tag: string): Promise<number[]> {
  const ids = run.fleet.flatMap((s) => s.batteries.map((b) => b.id));
  for (const id of ids) run.kw.set(id, kwPerBattery);
  const started = performance.now();
  const verified = run.watch.verified(ids, (id) => run.kw.get(id)!, { arrivedAfter: started }, 120_000);
  // A submit that fails ends the round with its own error; the watch's later one is not the news.
  verified.catch(() => undefined);
  await Promise.all(
    run.fleet.map((s, n) => submitPower(via[n % via.length]!.api, { site: s.site }, kwPerBattery * s.batteries.length, `${tag}-${s.site}`)),
  );
  return [...(await verified.catch((err: Error) => explain(run, ids, err))).values()].map((at) => at - started);
}

/** Says what became of the batteries a round waited for in vain, then rethrows `err`. */
async function explain(run: Run, ids: string[], err: Error): Promise<never> {
  const missing = (
    await Promise.all(
      ids.map((id) =>
        run.watch
          .verified([id], (i) => run.kw.get(i)!, {}, 1)
          .then(
            () => undefined,
            () => id,
          ),
      ),
    )
  ).filter((id): id is string => id !== undefined);
  const sites = run.fleet.filter((s) => s.batteries.some((b) => missing.includes(b.id)));
  const owners = await run.cluster.siteLeases(sites.map((s) => s.site));
  const states = await run.cluster.sim.states();
  for (const site of sites) {
    const b = site.batteries.find((x) => missing.includes(x.id))!;
    const events = await run.cluster.query<{
      phase: string;
      target_power_kw: number;
      replica: string | null;
      epoch: string | null;
      at: Date;
    }>(`select phase, target_power_kw, replica, epoch, at from powerplane.setpoint_events where device_id = $1 order by id desc limit 4`, [
      b.id,
    ]);
    const lease = owners.get(site.site)!;
    say(
      `missing  ${site.site}: ${site.batteries.filter((x) => missing.includes(x.id)).length} batteries; shard ${lease.shard} ` +
        `owner ${lease.owner} epoch ${lease.epoch}; ` +
        `battery ${b.index} at ${states[b.index]!.wsetW} W (wanted ${run.kw.get(b.id)! * 1_000}); ` +
        `its last events: ${events.map((e) => `${e.phase} ${e.target_power_kw} kW by ${e.replica}/${e.epoch}`).join(', ')}`,
    );
  }
  throw err;
}

async function fleetRounds(run: Run, via: ClusterReplica[], label: string): Promise<number[]> {
  await fleetRound(run, via, KW / 3, `${label}-warmup`);
  const times: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const t = await fleetRound(run, via, round % 2 === 0 ? KW : -KW, `${label}-${round}`);
    say(
      `${label.padEnd(8)} round ${round + 1}: ${t.length} verified, ` +
        `p50 ${fmt(p(t, 50))} ms, p99 ${fmt(p(t, 99))} ms, max ${fmt(p(t, 100))} ms`,
    );
    times.push(...t);
  }
  return times;
}

/** Single-battery submits on the probe sites, alternately on the owner and on another replica, each watched where it was made. */
async function ownerAndFollower(run: Run): Promise<{ owner: number[]; follower: number[] }> {
  const owner: number[] = [];
  const follower: number[] = [];
  const running = run.cluster.running();
  const watches = running.map((r) => watchVerified([r.api]));
  try {
    await sleep(500);
    for (let i = 0; i < SINGLES; i++) {
      const probe = run.probes[i % run.probes.length]!;
      const battery = probe.batteries[0]!;
      const ownerId = (await run.cluster.siteLeases([probe.site])).get(probe.site)!.owner;
      const o = running.findIndex((r) => r.id === ownerId);
      for (const [into, at] of [
        [owner, o],
        [follower, (o + 1) % running.length],
      ] as const) {
        const kw = run.kw.get(battery.id) === 10 ? -10 : 10;
        run.kw.set(battery.id, kw);
        const started = performance.now();
        const verified = watches[at]!.verified([battery.id], () => kw, { arrivedAfter: started }, 30_000);
        await submitPower(running[at]!.api, { deviceId: battery.id }, kw, `single-${i}-${at}-${o}`);
        into.push((await verified).get(battery.id)! - started);
      }
    }
  } finally {
    for (const w of watches) w.close();
  }
  return { owner, follower };
}

/** SIGKILLs the last running replica and measures how its batteries come back. */
async function failover(run: Run) {
  const { cluster } = run;
  const victim = cluster.running().at(-1)!;
  const all = [...run.fleet, ...run.probes];
  const owners = await cluster.siteLeases(all.map((s) => s.site));
  const lost = all.filter((s) => owners.get(s.site)!.owner === victim.id).flatMap((s) => s.batteries);
  const before = await cluster.leases();
  const reversionsBefore = await cluster.sim.states();
  const sinceMs = Date.now();
  const killed = performance.now();
  await cluster.kill(victim);
  const times = await run.watch.verified(
    lost.map((b) => b.id),
    (id) => run.kw.get(id)!,
    { sinceMs },
    60_000,
  );
  const live = cluster.running().map((r) => r.id);
  await waitFor('the survivors to hold every shard', async () => fairlyShared(await cluster.leases(), live), 30_000, 200);
  // A battery whose timer fires between the last write and its reversion timeout is counted by the next states().
  await sleep(1_000);
  const after = await cluster.leases();
  const statesAfter = await cluster.sim.states();
  return {
    victim: victim.id,
    victimShards: before.filter((l) => l.owner === victim.id).length,
    batteries: lost.length,
    seconds: [...times.values()].map((at) => (at - killed) / 1_000),
    reverted: statesAfter.filter((s, i) => s.reversions > reversionsBefore[i]!.reversions).length,
    moved: after.filter((l) => l.owner !== before[l.shard]!.owner).length,
  };
}

async function main(): Promise<void> {
  say(`bench:scale${quick ? ' (quick)' : ''}: ${REPLICAS} replicas, ${SITES} sites × ${PER_SITE} batteries, ${ROUNDS} rounds`);
  let pgCluster: PostgresCluster | undefined;
  let cluster: ScaleCluster | undefined;
  let agents: SimProcess | undefined;
  let watch: VerifiedWatch | undefined;
  const stopAll = async () => {
    watch?.close();
    await agents?.stop();
    await cluster?.close();
    await pgCluster?.stop();
  };
  process.once('SIGINT', () => void stopAll().then(() => process.exit(130)));
  try {
    pgCluster = await startPostgresCluster();
    const url = await createBenchDatabase(pgCluster.adminUrl);
    let t = performance.now();
    cluster = await startScaleCluster({
      databaseUrl: url,
      replicas: REPLICAS,
      batteries: SITES * PER_SITE + PROBES,
      // A process per 1000 batteries, so one event loop does not answer the whole fleet.
      simulatorProcesses: Math.ceil((SITES * PER_SITE) / 1_000),
      faultProxies: false,
      sampleEveryMs: 1_000,
      env: { POWERPLANE_LOG_LEVEL: 'info' },
      // e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`: profiles of the replicas stopped gracefully.
      nodeArgs: (process.env.BENCH_SERVER_NODE_ARGS ?? '').split(' ').filter(Boolean),
    });
    const ids = cluster.running().map((r) => r.id);
    await waitFor('the shards shared among the replicas', async () => fairlyShared(await cluster!.leases(), ids), 60_000, 200);
    say(`setup    ${REPLICAS} replicas serving, shards shared, in ${fmt((performance.now() - t) / 1_000)} s`);

    t = performance.now();
    const apis = cluster.running().map((r) => r.api);
    const plan = [
      ...Array.from({ length: SITES }, (_, n) => ({ site: `site-${String(n).padStart(3, '0')}`, batteries: PER_SITE })),
      ...Array.from({ length: PROBES }, (_, n) => ({ site: `probe-${n}`, batteries: 1 })),
    ];
    const sites = await registerSites(apis, cluster.sim.bess, plan, { spec: { reversionTimeoutS: REVERSION_TIMEOUT_S } });
    const fleet = sites.slice(0, SITES);
    const probes = sites.slice(SITES);
    // Agents stream to every replica but the one the failover kills.
    const targets = cluster.running().slice(0, Math.max(1, REPLICAS - 1));
    agents = await startSimProcess(0);
    await agents.startAgents(
      sites.map((s, n) => ({
        site: s.site,
        url: targets[n % targets.length]!.serve.baseUrl,
        batteries: s.batteries.map((b) => ({ deviceId: b.id, endpoint: b.endpoint })),
      })),
      POLL_MS,
    );
    const allIds = sites.flatMap((s) => s.batteries.map((b) => b.id));
    // One reading per battery seeded as the agents' first, so no battery waits for its
    // agent's first poll; the agents' own readings keep coming in beside the rounds.
    await cluster.query(
      `insert into flux.mg_bess_readings (time, device_id, soe, available_inverter_blocks, command_source)
       select now(), id, 50, 1, 2 from unnest($1::uuid[]) as id`,
      [allIds],
    );
    // Rows beyond the seeded one are the agents'.
    const reporting = async () =>
      (
        await cluster!.query<{ n: number }>(
          `select count(*)::int as n from (select device_id from flux.mg_bess_readings
           where device_id = any($1) group by device_id having count(*) > 1) reported`,
          [allIds],
        )
      )[0]!.n;
    say(`setup    ${allIds.length} batteries registered, one agent per site started, ` + `in ${fmt((performance.now() - t) / 1_000)} s`);

    watch = watchVerified(apis);
    await sleep(500);
    const run: Run = { cluster, fleet, probes, watch, kw: new Map() };
    const fleetTimes = await fleetRounds(run, cluster.running(), 'fleet');
    const single = REPLICAS > 1 ? await ownerAndFollower(run) : { owner: [], follower: [] };
    if (REPLICAS > 1)
      say(
        `submit   one battery, submit → verified where submitted: owner p50 ${fmt(p(single.owner, 50))} ms, ` +
          `follower p50 ${fmt(p(single.follower, 50))} ms (${single.owner.length} each)`,
      );
    const fo = REPLICAS > 1 ? await failover(run) : undefined;
    if (fo)
      say(
        `failover SIGKILL ${fo.victim} (${fo.victimShards} shards, ${fo.batteries} batteries): verified again in ` +
          `p50 ${fmt(p(fo.seconds, 50), 2)} s, p99 ${fmt(p(fo.seconds, 99), 2)} s, max ${fmt(p(fo.seconds, 100), 2)} s; ` +
          `${fo.reverted} reverted; ${fo.moved} shards changed owner`,
      );

    // The same fleet on one replica: the others hand their shards over as they stop.
    const [last, ...others] = cluster.running();
    for (const r of others) await cluster.stop(r);
    await waitFor('one replica holding every shard', async () => fairlyShared(await cluster!.leases(), [last!.id]), 30_000, 200);
    const oneTimes = await fleetRounds(run, [last!], 'single');

    say(`agents   batteries with readings stored from their agent: ${await reporting()} of ${allIds.length}`);
    const doubles = await cluster.doubleWrites();
    const n = SITES * PER_SITE;
    say(
      `fleet    ${n} batteries on ${REPLICAS} replicas: p50 ${fmt(p(fleetTimes, 50))} ms, p99 ${fmt(p(fleetTimes, 99))} ms; ` +
        `on one replica: p50 ${fmt(p(oneTimes, 50))} ms, p99 ${fmt(p(oneTimes, 99))} ms`,
    );
    say(
      JSON.stringify({
        replicas: REPLICAS,
        batteries: n,
        fleet_p99_ms: fmt(p(fleetTimes, 99)),
        single_replica_fleet_p99_ms: fmt(p(oneTimes, 99)),
        follower_submit_p50_ms: fo ? fmt(p(single.follower, 50)) : null,
        owner_submit_p50_ms: fo ? fmt(p(single.owner, 50)) : null,
        failover_p99_s: fo ? fmt(p(fo.seconds, 99), 2) : null,
        reverted_during_failover: fo ? fo.reverted : null,
        double_writes: doubles.length,
        moved_shards: fo ? fo.moved : null,
      }),
    );
  } finally {
    if (cluster) await summarize(cluster).catch(() => undefined);
    await stopAll();
  }
}

/** Shard owner changes over the run and each replica’s most frequent warnings and errors: where to look when a figure is off. */
async function summarize(cluster: ScaleCluster): Promise<void> {
  const leases = await cluster.leases();
  say(`leases   ${leases.reduce((sum, l) => sum + l.epoch, 0)} changes of owner over ${leases.length} shards in the run`);
  const doubles = await cluster.doubleWrites();
  say(`writes   batteries written by two replicas interleaved in the run: ${doubles.length}`);
  for (const d of doubles.slice(0, 5))
    say(
      `double   battery ${d.battery}: ${d.olderWriter} wrote again after ${d.newerWriter} began ` +
        `(connections ${d.older.connection}, ${d.newer.connection})`,
    );
  for (const r of cluster.replicas) {
    const counts = new Map<string, number>();
    for (const line of r.serve.logs) {
      if (Number(line.level) < 40) continue;
      const why = line.reason ?? line.why ?? line.err;
      const key = why === undefined ? (line.msg ?? '') : `${line.msg} (${String(why).slice(0, 60)})`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    const top = [...counts].sort((a, b) => b[1] - a[1]).slice(0, 4);
    if (top.length > 0) say(`logs     ${r.id} (${r.status}) warnings and errors: ${top.map(([msg, n]) => `${n}× ${msg}`).join('; ')}`);
    sayLeaseTimings(r);
    if (process.env.BENCH_SCALE_LOG_DIR)
      await writeFile(path.join(process.env.BENCH_SCALE_LOG_DIR, `${r.id}.log`), r.serve.logs.map((l) => JSON.stringify(l)).join('\n'));
  }
}

/** Where the time of a replica's late or failed renewals went: the statement, the database, the event loop. */
function sayLeaseTimings(r: ClusterReplica): void {
  const late = r.serve.logs.filter((l) => typeof l.msg === 'string' && /^lease renewal (late|failed)/.test(l.msg));
  const field = (name: string) => late.map((l) => Number(l[name])).filter(Number.isFinite);
  const range = (name: string) => {
    const v = field(name);
    return v.length ? `p50 ${fmt(p(v, 50), 0)}, max ${fmt(p(v, 100), 0)} ms` : 'none';
  };
  const expired = r.serve.logs.filter((l) => l.msg === 'shards lost' && l.why === 'expired').length;
  say(
    `renewals ${r.id}: ${late.length} late or failed, ${expired} expiries; statement ${range('statementMs')}, ` +
      `in the database ${range('dbMs')}, timer late ${range('tickLateMs')}, event loop stalled ${range('loopDelayMaxMs')}`,
  );
}

await main();
