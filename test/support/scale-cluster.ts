/**
 * Control scaled out, as an operator runs it: R `powerplane serve` processes (replicas) on
 * one PostgreSQL, each with its own replica id and, when asked, its own TCP fault proxy to
 * the database; simulated batteries in a process of their own with their write log; and
 * the means to crash a replica (SIGKILL), stop it gracefully (SIGTERM), cut it off from the
 * database, add one, read the lease rows, and check the write log for double writes.
 * Shared by the integration tests and `bench:scale`; it imports nothing from vitest.
 * `close()` stops every process and proxy it started, whatever state they are in.
 */
import pg from 'pg';
import { siteShard } from '../../src/cluster/shard.ts';
import { apiAt, type Api } from './api-clients.ts';
import { createConnectionOwners } from './connection-owners.ts';
import { startServeProcess, type ServeProcess } from './serve-process.ts';
import { startSimProcesses, type SimProcess } from './sim-process.ts';
import { startTcpProxy, type TcpProxy } from './tcp-proxy.ts';
import { interleavings, type Interleaving, type WriteSpan } from './write-spans.ts';

/** Options of {@link startScaleCluster}. */
export interface ScaleClusterOptions {
  /** URL of an empty database (its owner's): the first replicas migrate it. */
  readonly databaseUrl: string;
  /** Replicas started at once. */
  readonly replicas: number;
  /** Simulated SunSpec batteries. */
  readonly batteries: number;
  /** Simulator processes the batteries are spread over; default 1. */
  readonly simulatorProcesses?: number;
  /** Each replica reaches the database through a fault proxy of its own, so {@link ScaleCluster.partition} can cut it; default true. */
  readonly faultProxies?: boolean;
  /** `POWERPLANE_LEASE_MS` of every replica; default 1500 (the product's default). */
  readonly leaseMs?: number;
  /** More environment for every replica, after the cluster's own. */
  readonly env?: Readonly<Record<string, string>>;
  /** Flags for every replica's node, before the script (e.g. `--cpu-prof`). */
  readonly nodeArgs?: readonly string[];
  /** Replica ids are `<prefix>-<n>`; default `replica`. */
  readonly idPrefix?: string;
  /** How often the replicas' sockets are looked at to trace connections; default 500 ms. */
  readonly sampleEveryMs?: number;
  /** Bound on a replica's start, ms; default 110 000 (several start at once on two cores). */
  readonly startTimeoutMs?: number;
}

/** One replica of the cluster. */
export interface ClusterReplica {
  /** Its place in {@link ScaleCluster.replicas}, from 0. */
  readonly index: number;
  /** Its `POWERPLANE_REPLICA_ID`. */
  readonly id: string;
  readonly serve: ServeProcess;
  readonly api: Api;
  readonly proxy: TcpProxy | undefined;
  /** `running` until {@link ScaleCluster.kill} or {@link ScaleCluster.stop}. */
  readonly status: 'running' | 'killed' | 'stopped';
}

/** A row of `powerplane.shard_leases`. */
export interface LeaseRow {
  readonly shard: number;
  readonly owner: string | null;
  readonly epoch: number;
  readonly expiresAt: Date;
  readonly released: boolean;
  readonly changedAt: Date;
}

/** The running cluster. */
export interface ScaleCluster {
  readonly databaseUrl: string;
  readonly sim: SimProcess;
  /** Every replica ever started, in order, whatever its status. */
  readonly replicas: readonly ClusterReplica[];
  /** The replicas not killed or stopped. */
  running(): ClusterReplica[];
  /** Starts one more replica (it joins; the others shed it a share). */
  addReplica(): Promise<ClusterReplica>;
  /** SIGKILL, after a last look at its sockets (so its connections stay traced). */
  kill(replica: ClusterReplica): Promise<void>;
  /** SIGTERM, a graceful stop: resolves when it has exited. */
  stop(replica: ClusterReplica): Promise<void>;
  /** Cuts the replica off from the database: its proxy swallows everything, nothing is closed. Needs fault proxies. */
  partition(replica: ClusterReplica): void;
  /** Ends a {@link partition}. */
  heal(replica: ClusterReplica): void;
  /** Runs `text` on the database directly (not through any proxy). */
  query<R extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<R[]>;
  /** The fleet's shard count (`powerplane.cluster_settings`). */
  shardCount(): Promise<number>;
  /** Every lease row, by shard. */
  leases(): Promise<LeaseRow[]>;
  /** Ids of the rows of `powerplane.replicas` not expired. */
  liveReplicaIds(): Promise<string[]>;
  /** Each site's shard and that shard's lease row. */
  siteLeases(sites: readonly string[]): Promise<Map<string, LeaseRow>>;
  /** Every battery written by two epochs interleaved so far (see `write-spans.ts`). */
  doubleWrites(): Promise<Interleaving[]>;
  /** The replica whose connection wrote last to each battery (by `batteryKey`), undefined when not traced. */
  lastWriters(): Promise<Map<string, string | undefined>>;
  /** Stops every replica (SIGTERM, then SIGKILL after `graceMs`), proxy and the simulator. Idempotent; never throws. */
  close(graceMs?: number): Promise<void>;
}

/** Starts the simulator process and `replicas` replicas together; stops what it started if any fails. */
export async function startScaleCluster(options: ScaleClusterOptions): Promise<ScaleCluster> {
  const dbUrl = new URL(options.databaseUrl);
  const pool = new pg.Pool({ connectionString: options.databaseUrl, max: 2 });
  pool.on('error', () => undefined);
  const replicas: Array<ClusterReplica & { status: ClusterReplica['status'] }> = [];
  const proxies: TcpProxy[] = [];
  let sim: SimProcess | undefined;
  let sampler: NodeJS.Timeout | undefined;
  let owners: ReturnType<typeof createConnectionOwners> | undefined;
  let next = 0;
  let closing: Promise<void> | undefined;

  const running = () => replicas.filter((r) => r.status === 'running');
  const sample = () => owners?.sample(running().map((r) => ({ id: r.id, pid: r.serve.pid }))) ?? Promise.resolve();

  const startReplica = async (): Promise<ClusterReplica> => {
    const index = next++;
    const id = `${options.idPrefix ?? 'replica'}-${index}`;
    const proxy = options.faultProxies === false ? undefined : await startTcpProxy({ host: dbUrl.hostname, port: Number(dbUrl.port) });
    if (proxy) proxies.push(proxy);
    const url = new URL(dbUrl);
    if (proxy) url.port = String(proxy.port);
    const serve = await startServeProcess(
      {
        DATABASE_URL: url.toString(),
        POWERPLANE_REPLICA_ID: id,
        POWERPLANE_LEASE_MS: String(options.leaseMs ?? 1_500),
        POWERPLANE_MAX_TELEMETRY_AGE_MS: '3600000',
        POWERPLANE_HEALTH_PROBE_INTERVAL_MS: '1000',
        ...options.env,
      },
      options.startTimeoutMs ?? 110_000,
      options.nodeArgs,
    );
    const replica = { index, id, serve, api: apiAt(serve.baseUrl), proxy, status: 'running' as ClusterReplica['status'] };
    replicas[index] = replica;
    return replica;
  };

  const close = (graceMs = 10_000) =>
    (closing ??= (async () => {
      clearInterval(sampler);
      for (const proxy of proxies) proxy.heal();
      await Promise.allSettled(replicas.map((r) => r.serve.stop(graceMs)));
      await Promise.allSettled([...proxies.map((p) => p.close()), sim?.stop()]);
      await pool.end().catch(() => undefined);
    })());

  try {
    sim = await startSimProcesses(options.batteries, options.simulatorProcesses ?? 1);
    owners = createConnectionOwners([...new Set(sim.bess.map((e) => e.port))]);
    // Started together: they also race to apply the migrations, under the migrator's lock.
    const started = await Promise.allSettled(Array.from({ length: options.replicas }, () => startReplica()));
    const failed = started.find((s) => s.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
    sampler = setInterval(() => void sample().catch(() => undefined), options.sampleEveryMs ?? 500);
  } catch (err) {
    await close(2_000);
    throw err;
  }

  const query = async <R extends pg.QueryResultRow>(text: string, values?: unknown[]) => (await pool.query<R>(text, values)).rows;
  const leases = async (): Promise<LeaseRow[]> =>
    (
      await query<{ shard: number; owner: string | null; epoch: string; expires_at: Date; released: boolean; changed_at: Date }>(
        'select shard, owner, epoch, expires_at, released, changed_at from powerplane.shard_leases order by shard',
      )
    ).map((r) => ({
      shard: r.shard,
      owner: r.owner,
      epoch: Number(r.epoch),
      expiresAt: r.expires_at,
      released: r.released,
      changedAt: r.changed_at,
    }));
  const shardCount = async () => (await query<{ n: number }>('select shard_count as n from powerplane.cluster_settings'))[0]!.n;
  const theSim = sim!;

  return {
    databaseUrl: options.databaseUrl,
    sim: theSim,
    replicas,
    running,
    async addReplica() {
      return startReplica();
    },
    async kill(replica) {
      await sample().catch(() => undefined);
      (replica as { status: ClusterReplica['status'] }).status = 'killed';
      await replica.serve.kill();
    },
    async stop(replica) {
      await sample().catch(() => undefined);
      const stopping = replica.serve.stop();
      // Traced while it hands over: its writers may still write until they stop.
      const tracer = setInterval(() => void owners!.sample([{ id: replica.id, pid: replica.serve.pid }]).catch(() => undefined), 100);
      await stopping.finally(() => clearInterval(tracer));
      (replica as { status: ClusterReplica['status'] }).status = 'stopped';
    },
    partition(replica) {
      if (!replica.proxy) throw new Error('partition needs fault proxies (faultProxies: true)');
      replica.proxy.blackhole();
    },
    heal(replica) {
      replica.proxy?.heal();
    },
    query,
    shardCount,
    leases,
    async liveReplicaIds() {
      return (await query<{ id: string }>('select id from powerplane.replicas where expires_at > now() order by id')).map((r) => r.id);
    },
    async siteLeases(sites) {
      const [n, rows] = await Promise.all([shardCount(), leases()]);
      return new Map(sites.map((site) => [site, rows[siteShard(site, n)]!]));
    },
    async doubleWrites() {
      await sample().catch(() => undefined);
      return interleavings(await theSim.spans(), (span) => owners!.ownerOf(span));
    },
    async lastWriters() {
      await sample().catch(() => undefined);
      const latest = new Map<string, WriteSpan>();
      for (const span of await theSim.spans()) {
        const seen = latest.get(span.battery);
        if (!seen || span.lastSeq > seen.lastSeq) latest.set(span.battery, span);
      }
      return new Map([...latest].map(([battery, span]) => [battery, owners!.ownerOf(span)]));
    },
    close,
  };
}

/**
 * Whether `rows` are a fair share among `replicaIds`: every shard owned by one of them and
 * none holding more than ⌈shards ÷ replicas⌉ (the target each claims up to), so each holds
 * at least what the others leave.
 */
export function fairlyShared(rows: readonly LeaseRow[], replicaIds: readonly string[]): boolean {
  const target = Math.ceil(rows.length / replicaIds.length);
  const counts = new Map(replicaIds.map((id) => [id, 0]));
  for (const row of rows) {
    if (row.owner === null || !counts.has(row.owner)) return false;
    counts.set(row.owner, counts.get(row.owner)! + 1);
  }
  return [...counts.values()].every((n) => n <= target && n >= rows.length - target * (replicaIds.length - 1));
}
