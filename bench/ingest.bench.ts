/**
 * `npm run bench:ingest [-- --quick]`: simulated agents stream meter readings over real
 * gRPC (grpc-js, batches pre-encoded as an agent's spool would hold them) into a real
 * Powerplane server backed by a throwaway PostgreSQL; then a raw binary COPY of the same
 * number of rows into the same table; then the same ingest on PGlite. Prints figures and
 * ends with one JSON line.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import * as grpc from '@grpc/grpc-js';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { MeterReadingSchema, StreamReadingsRequestSchema, StreamReadingsResponseSchema } from '../gen/powerplane/v1/telemetry_pb.ts';
import { encodeMeterCopy } from '../src/telemetry/copy-binary.ts';
import { type MeterRow } from '../src/telemetry/reading-batch.ts';
import { METER_QUANTITIES } from '../src/storage/reading-columns.ts';
import { startPostgresCluster } from '../test/support/postgres-cluster.ts';
import { startServerProcess, stopServerProcess } from './support/server-process.ts';
import { percentile } from './support/stats.ts';
import { createBenchDatabase } from './support/bench-database.ts';

const quick = process.argv.includes('--quick');
const AGENTS = Number(process.env.BENCH_AGENTS ?? 4);
const BATCH = 1_000;
const WINDOW = Number(process.env.BENCH_WINDOW ?? 4);
const BATCHES_PER_AGENT = quick ? 40 : 150;
const PGLITE_BATCHES_PER_AGENT = quick ? 5 : 15;
const DEVICES_PER_AGENT = 10;

interface RunResult {
  readonly readings: number;
  readonly seconds: number;
  readonly latenciesMs: number[];
  /** CPU the agents (this process) used while streaming, µs. */
  readonly agentsCpuMicros: number;
}

/** A plausible meter reading's quantities, as float32 values. */
function quantities(i: number): number[] {
  return METER_QUANTITIES.map((_, q) => Math.fround(q < 13 ? 50 + ((i * 7 + q) % 100) / 10 : 1_000 + i * 0.01 + q));
}

async function registerMeters(url: string | undefined, port: number, count: number): Promise<string[]> {
  void port;
  if (!url) throw new Error('no database url');
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ id: string }>(
      `insert into flux.mg_device_registry (name, type, site)
       select 'bench-meter-' || g, 'meter', 'bench' from generate_series(1, $1) g
       returning id::text as id`,
      [count],
    );
    return rows.map((r) => r.id);
  } finally {
    await client.end();
  }
}

/** Pre-encodes each agent's batches: readings 1 ms apart per device, inside the backfill window. */
function encodeAgentBatches(devices: string[], agent: number, batches: number, baseMs: number): Buffer[] {
  const mine = devices.slice(agent * DEVICES_PER_AGENT, (agent + 1) * DEVICES_PER_AGENT);
  const out: Buffer[] = [];
  for (let b = 0; b < batches; b++) {
    const meterReadings = [];
    for (let i = 0; i < BATCH; i++) {
      const n = b * BATCH + i;
      const q = quantities(n);
      meterReadings.push(
        create(MeterReadingSchema, {
          deviceId: mine[n % mine.length]!,
          time: timestampFromMs(baseMs + Math.floor(n / mine.length)),
          frequencyHz: q[0],
          voltageLineAverageV: q[1],
          currentPhaseAA: q[2],
          currentPhaseBA: q[3],
          currentPhaseCA: q[4],
          currentPhaseAverageA: q[5],
          powerPhaseAActiveKw: q[6],
          powerPhaseBActiveKw: q[7],
          powerPhaseCActiveKw: q[8],
          powerTotalActiveKw: q[9],
          powerTotalReactiveKvar: q[10],
          powerTotalApparentKva: q[11],
          powerFactorTotal: q[12],
          energyImportedActiveKwh: q[13],
          energyExportedActiveKwh: q[14],
          energyImportedPhaseAActiveKwh: q[15],
          energyExportedPhaseAActiveKwh: q[16],
          energyImportedPhaseBActiveKwh: q[17],
          energyExportedPhaseBActiveKwh: q[18],
          energyImportedPhaseCActiveKwh: q[19],
          energyExportedPhaseCActiveKwh: q[20],
          energyImportedReactiveKvarh: q[21],
          energyExportedReactiveKvarh: q[22],
          energyImportedApparentKvah: q[23],
          energyExportedApparentKvah: q[24],
        }),
      );
    }
    const request = create(StreamReadingsRequestSchema, { message: { case: 'batch', value: { sequence: BigInt(b + 1), meterReadings } } });
    out.push(Buffer.from(toBinary(StreamReadingsRequestSchema, request)));
  }
  return out;
}

/**
 * One agent: keeps up to WINDOW batches unacknowledged, records each ack's latency.
 * Agents send batches protobuf-encoded before the clock starts (every reading distinct),
 * through grpc-js with an identity serializer: real agents encode at the sites, not on
 * the control plane's two cores, so the bench keeps their cost off the server's machine
 * (it prints the few µs per reading the agents still use for HTTP/2 and acks).
 */
function runAgent(port: number, batches: Buffer[], latencies: number[]): Promise<number> {
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const call = client.makeBidiStreamRequest(
    '/powerplane.v1.TelemetryService/StreamReadings',
    (b: Buffer) => b,
    (b: Buffer) => fromBinary(StreamReadingsResponseSchema, b),
  );
  const sentAt = new Map<bigint, number>();
  let next = 0;
  let acked = 0;
  let stored = 0;
  const send = () => {
    while (next < batches.length && next - acked < WINDOW) {
      sentAt.set(BigInt(next + 1), performance.now());
      call.write(batches[next]!);
      next++;
    }
    if (next === batches.length && acked === batches.length) call.end();
  };
  return new Promise((resolve, reject) => {
    call.on('data', (res: ReturnType<typeof fromBinary<typeof StreamReadingsResponseSchema>>) => {
      if (res.message.case !== 'ack') return;
      const ack = res.message.value;
      latencies.push(performance.now() - sentAt.get(ack.sequence)!);
      stored += ack.storedCount + ack.duplicateCount;
      acked++;
      send();
    });
    call.on('error', (err) => {
      client.close();
      reject(err);
    });
    call.on('end', () => {
      client.close();
      resolve(stored);
    });
    send();
  });
}

async function runIngest(port: number, devices: string[], batchesPerAgent: number, baseMs: number): Promise<RunResult> {
  const encoded = Array.from({ length: AGENTS }, (_, a) => encodeAgentBatches(devices, a, batchesPerAgent, baseMs));
  const latencies: number[] = [];
  const started = performance.now();
  const cpu = process.cpuUsage();
  const stored = await Promise.all(encoded.map((batches) => runAgent(port, batches, latencies)));
  const seconds = (performance.now() - started) / 1_000;
  const used = process.cpuUsage(cpu);
  const readings = stored.reduce((a, b) => a + b, 0);
  if (readings !== AGENTS * batchesPerAgent * BATCH)
    throw new Error(`acknowledged ${readings} readings, expected ${AGENTS * batchesPerAgent * BATCH}`);
  return { readings, seconds, latenciesMs: latencies.sort((a, b) => a - b), agentsCpuMicros: used.user + used.system };
}

/** Raw binary COPY of `count` fresh meter rows into flux.mg_meter_readings, 50k rows per COPY. */
async function runCopy(url: string, devices: string[], count: number, baseMs: number): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const columns = ['device_id', '"time"', ...METER_QUANTITIES.map((q) => q.column)].join(', ');
  const chunks: Buffer[] = [];
  for (let offset = 0; offset < count; offset += 50_000) {
    const rows: MeterRow[] = [];
    for (let n = offset; n < Math.min(count, offset + 50_000); n++) {
      rows.push({
        deviceId: devices[n % devices.length]!,
        timeMicros: (baseMs + Math.floor(n / devices.length)) * 1_000,
        values: quantities(n),
      });
    }
    chunks.push(encodeMeterCopy(rows, false));
  }
  const started = performance.now();
  for (const chunk of chunks) {
    await pipeline(Readable.from([chunk]), client.query(copyFrom(`copy flux.mg_meter_readings (${columns}) from stdin (format binary)`)));
  }
  const seconds = (performance.now() - started) / 1_000;
  await client.end();
  return count / seconds;
}

/** CPU seconds (user + system) a process has used so far; NaN where /proc is absent. */
function cpuSeconds(pid: number | undefined): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return Number.NaN;
  }
}

/** Empties the readings table, so the gRPC run and the COPY baseline both start from the same (empty) table and indexes. */
async function truncateMeterReadings(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query('truncate flux.mg_meter_readings');
    await client.query('checkpoint');
  } finally {
    await client.end();
  }
}

function report(label: string, run: RunResult): void {
  const perS = Math.round(run.readings / run.seconds);
  const p50 = percentile(run.latenciesMs, 50).toFixed(1);
  const p99 = percentile(run.latenciesMs, 99).toFixed(1);
  console.log(
    `${label}: ${run.readings} readings in ${run.seconds.toFixed(2)} s = ${perS} readings/s; ack latency p50 ${p50} ms, p99 ${p99} ms`,
  );
}

async function main(): Promise<void> {
  const cluster = await startPostgresCluster();
  const children: ChildProcess[] = [];
  try {
    const url = await createBenchDatabase(cluster.adminUrl);
    console.log(
      `PostgreSQL (throwaway, fsync off) at ${url}; ` +
        `${AGENTS} agents × ${BATCHES_PER_AGENT} batches × ${BATCH} meter readings, ${WINDOW} batches unacked per agent`,
    );
    console.log(
      'agents send pre-encoded protobuf batches (encoded before timing; real agents encode at the sites, not on this machine); ' +
        'the table is truncated before the gRPC run and before the COPY baseline',
    );

    const pgServer = await startServerProcess({ DATABASE_URL: url });
    children.push(pgServer.child);
    const devices = await registerMeters(url, pgServer.port, AGENTS * DEVICES_PER_AGENT);
    const now = Date.now();
    await runIngest(pgServer.port, devices, Math.max(2, Math.floor(BATCHES_PER_AGENT / 10)), now - 3 * 86_400_000);
    await truncateMeterReadings(url);
    const cpuBefore = cpuSeconds(pgServer.child.pid);
    const grpcRun = await runIngest(pgServer.port, devices, BATCHES_PER_AGENT, now - 2 * 86_400_000);
    const serverCpu = cpuSeconds(pgServer.child.pid) - cpuBefore;
    report('gRPC ingest into PostgreSQL', grpcRun);
    const serverMicrosPerReading = ((serverCpu * 1e6) / grpcRun.readings).toFixed(1);
    const agentsMicrosPerReading = (grpcRun.agentsCpuMicros / grpcRun.readings).toFixed(1);
    console.log(
      `  server process CPU: ${serverCpu.toFixed(2)} s = ${serverMicrosPerReading} µs per reading; ` +
        `agents (this process) ${agentsMicrosPerReading} µs per reading`,
    );
    await stopServerProcess(pgServer.child);

    await truncateMeterReadings(url);
    const copyRate = await runCopy(url, devices, grpcRun.readings, now - 1 * 86_400_000);
    console.log(`raw binary COPY of ${grpcRun.readings} rows into flux.mg_meter_readings: ${Math.round(copyRate)} rows/s`);
    const grpcRate = grpcRun.readings / grpcRun.seconds;
    console.log(
      `ratio gRPC / COPY: ${(grpcRate / copyRate).toFixed(2)} (${Math.round(grpcRate)} readings/s beside ${Math.round(copyRate)} rows/s; ` +
        "the share of a bare COPY's speed that ingest keeps with validation, idempotency and acks after commit)",
    );

    const pgliteServer = await startServerProcess({ POWERPLANE_DATA_DIR: 'memory://' });
    children.push(pgliteServer.child);
    const liteDevices = await registerPglite(pgliteServer.port);
    const liteRun = await runIngest(pgliteServer.port, liteDevices, PGLITE_BATCHES_PER_AGENT, now - 2 * 86_400_000);
    report('gRPC ingest into PGlite', liteRun);
    await stopServerProcess(pgliteServer.child);

    console.log(
      JSON.stringify({
        grpc_readings_per_s: Math.round(grpcRate),
        copy_rows_per_s: Math.round(copyRate),
        ratio: Number((grpcRate / copyRate).toFixed(3)),
        ack_p50_ms: Number(percentile(grpcRun.latenciesMs, 50).toFixed(2)),
        ack_p99_ms: Number(percentile(grpcRun.latenciesMs, 99).toFixed(2)),
        pglite_readings_per_s: Math.round(liteRun.readings / liteRun.seconds),
      }),
    );
  } finally {
    for (const child of children) await stopServerProcess(child).catch(() => undefined);
    await cluster.stop();
  }
}

/** PGlite lives inside the server process, so its meters are registered over the API. */
async function registerPglite(port: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < AGENTS * DEVICES_PER_AGENT; i++) {
    const res = await fetch(`http://127.0.0.1:${port}/powerplane.v1.DeviceRegistryService/CreateDevice`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        device: {
          name: `bench-meter-${i}`,
          site: 'bench',
          type: 'DEVICE_TYPE_METER',
          meter: { modbus: { endpoint: { host: '127.0.0.1' }, registerProfile: 'REGISTER_PROFILE_SUNSPEC' } },
        },
      }),
    });
    if (!res.ok) throw new Error(`registering a PGlite meter failed: ${res.status} ${await res.text()}`);
    ids.push(((await res.json()) as { device: { id: string } }).device.id);
  }
  return ids;
}

await main();
