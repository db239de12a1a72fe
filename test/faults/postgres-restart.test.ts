import { create } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Health, HealthCheckResponse_ServingStatus as Status } from '../../gen/grpc/health/v1/health_pb.ts';
import { DeviceType, RegisterProfile } from '../../gen/powerplane/v1/devices_pb.ts';
import { MeterReadingSchema } from '../../gen/powerplane/v1/telemetry_pb.ts';
import { toConfig } from '../../src/config.ts';
import { startServer, type Server } from '../../src/server/server.ts';
import { silentLog } from '../support/databases.ts';
import { startRestartablePostgres, type RestartablePostgres } from '../support/restartable-postgres.ts';
import { sleep, waitFor } from '../support/wait.ts';
import { apiAt, type Api } from '../support/api.ts';

/** Readings per batch; each batch's readings are 1 ms apart and never repeat across batches. */
const BATCH = 50;

interface Acked {
  readonly sequence: number;
  readonly at: number;
  /** Stored plus duplicate readings the ack reports: a retried batch may be a duplicate. */
  readonly accounted: number;
}

/**
 * An ingest client that behaves like an agent: each batch is sent until it is acknowledged
 * (a batch whose call failed is sent again, unchanged), and only then the next one.
 */
function startWriter(api: Api, meterId: string, baseMs: number) {
  const acked: Acked[] = [];
  const failures: Array<{ code: Code; message: string; at: number }> = [];
  let stopped = false;
  let lastSent = 0;
  const done = (async () => {
    for (let sequence = 1; !stopped; sequence++) {
      lastSent = sequence;
      const meterReadings = Array.from({ length: BATCH }, (_, i) =>
        create(MeterReadingSchema, {
          deviceId: meterId,
          time: timestampFromMs(baseMs + sequence * BATCH + i),
          powerTotalActiveKw: sequence,
          frequencyHz: 50,
        }),
      );
      for (let attempt = 0; !stopped; attempt++) {
        try {
          const { ack } = await api.telemetry.writeReadings({ batch: { sequence: BigInt(sequence), meterReadings } }, { timeoutMs: 3_000 });
          acked.push({ sequence, at: Date.now(), accounted: (ack?.storedCount ?? 0) + (ack?.duplicateCount ?? 0) });
          break;
        } catch (err) {
          const e = ConnectError.from(err);
          failures.push({ code: e.code, message: e.rawMessage, at: Date.now() });
          await sleep(50);
        }
      }
    }
  })();
  return {
    acked,
    failures,
    /** The last batch sent; it may be unacknowledged when the writer stopped. */
    lastSent: () => lastSent,
    async stop() {
      stopped = true;
      await done;
    },
  };
}

describe('PostgreSQL stopped and restarted during ingest', () => {
  let cluster: RestartablePostgres;
  let server: Server;
  let api: Api;

  beforeAll(async () => {
    // A cluster of this test's own: the shared one serves every other test file meanwhile.
    cluster = await startRestartablePostgres();
    const defaults = toConfig({ listen: '127.0.0.1:0', auth: 'off', databaseUrl: cluster.adminUrl });
    server = await startServer({ ...defaults, healthProbeIntervalMs: 100 }, { log: silentLog });
    api = apiAt(`http://127.0.0.1:${server.address.port}`);
  });
  afterAll(async () => {
    await server?.stop();
    await cluster?.stop();
  });

  it('acknowledges nothing while it is down, reports NOT_SERVING, and loses no acknowledged reading', async () => {
    const health = createClient(Health, createGrpcTransport({ baseUrl: `http://127.0.0.1:${server.address.port}` }));
    const { device } = await api.registry.createDevice({
      device: {
        name: 'grid',
        site: 'pg-restart',
        type: DeviceType.METER,
        spec: {
          case: 'meter',
          value: { modbus: { endpoint: { host: '127.0.0.1', port: 5020, unitId: 1 }, registerProfile: RegisterProfile.SUNSPEC } },
        },
      },
    });
    const baseMs = Math.floor(Date.now() / 60_000) * 60_000 - 30 * 60_000;
    const writer = startWriter(api, device!.id, baseMs);
    try {
      await waitFor('acks before the stop', () => writer.acked.length >= 5);

      // An immediate stop is a crash of PostgreSQL: sessions die mid-transaction.
      await cluster.stopServer('immediate');
      const downAt = Date.now();
      await waitFor('health NOT_SERVING', async () => (await health.check({})).status === Status.NOT_SERVING);
      expect((await fetch(`http://127.0.0.1:${server.address.port}/healthz`)).status).toBe(503);
      const failuresAtDown = writer.failures.length;
      await waitFor('calls refused while the database is down', () => writer.failures.length >= failuresAtDown + 3);
      const upAt = Date.now();
      const ackedWhileDown = writer.acked.filter((a) => a.at > downAt + 500 && a.at < upAt);
      await cluster.startServer();

      await waitFor('health SERVING again', async () => (await health.check({})).status === Status.SERVING, 20_000);
      const ackedBeforeUp = writer.acked.length;
      await waitFor('acks after the restart', () => writer.acked.length >= ackedBeforeUp + 5, 20_000);
      await writer.stop();

      // Ack after commit: with the database down no batch can have been committed.
      expect(ackedWhileDown).toEqual([]);
      // Inclusive: the failure that ends the wait above can fall in the very millisecond of upAt.
      const whileDown = writer.failures.filter((f) => f.at >= downAt && f.at <= upAt);
      expect(whileDown.length).toBeGreaterThanOrEqual(3);
      // Refused cleanly, as UNAVAILABLE (or cut by the call's own deadline), never a masked INTERNAL.
      expect(whileDown.filter((f) => f.code !== Code.Unavailable && f.code !== Code.DeadlineExceeded)).toEqual([]);
      expect(whileDown.some((f) => f.code === Code.Unavailable)).toBe(true);
      expect(whileDown.map((f) => f.message).join(' ')).not.toMatch(/ECONN|127\.0\.0\.1|select|insert|copy/i);

      // Every acknowledged reading is stored, once, whole batches only; nothing was sent
      // that is neither acknowledged nor the one batch still in flight when the writer stopped.
      expect(writer.acked.every((a) => a.accounted === BATCH)).toBe(true);
      const client = new pg.Client({ connectionString: cluster.adminUrl });
      await client.connect();
      try {
        const { rows } = await client.query<{ sequence: number; rows: number; times: number }>(
          `select power_total_active::int as sequence, count(*)::int as rows, count(distinct time)::int as times
             from flux.mg_meter_readings where device_id = $1 group by 1 order by 1`,
          [device!.id],
        );
        const ackedSequences = writer.acked.map((a) => a.sequence);
        expect(new Set(ackedSequences).size).toBe(ackedSequences.length);
        const stored = rows.map((r) => r.sequence);
        expect(stored.filter((s) => !ackedSequences.includes(s) && s !== writer.lastSent())).toEqual([]);
        expect(ackedSequences.filter((s) => !stored.includes(s))).toEqual([]);
        expect(rows.filter((r) => r.rows !== BATCH || r.times !== BATCH)).toEqual([]);
      } finally {
        await client.end();
      }
    } finally {
      await writer.stop();
    }
  });
});
