import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { createClient } from '@connectrpc/connect';
import { connectNodeAdapter, createGrpcTransport } from '@connectrpc/connect-node';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TelemetryService } from '../../gen/powerplane/v1/telemetry_pb.ts';
import { toConfig } from '../../src/config.ts';
import type { Database } from '../../src/storage/database.ts';
import { createDeviceCache } from '../../src/telemetry/device-cache.ts';
import { createGroupWriter } from '../../src/telemetry/group-writer.ts';
import { createIngest, type Ingest } from '../../src/telemetry/ingest.ts';
import { createTelemetryMetrics } from '../../src/telemetry/telemetry.metrics.ts';
import { createWriteSessions, findDeviceFacts, type WriteSessions } from '../../src/telemetry/telemetry.repository.ts';
import { createTelemetryService } from '../../src/telemetry/telemetry.service.ts';
import { createTestDatabase, ENGINES, silentLog, type TestDatabase } from '../support/databases.ts';
import { batch, meterReading, recentMinute, registerDevice } from './helpers.ts';

const PER_STREAM = 3;
const GLOBAL = 5;
const STREAMS = 3;
const BATCHES_PER_STREAM = 40;

/** Write sessions whose every transaction waits until the test opens the gate. */
function gatedSessions(inner: WriteSessions) {
  let open = false;
  let waiters: (() => void)[] = [];
  return {
    sessions: {
      async run(fn) {
        if (!open) await new Promise<void>((resolve) => waiters.push(resolve));
        return inner.run(fn);
      },
      close: () => inner.close(),
    } satisfies WriteSessions,
    openGate() {
      open = true;
      for (const w of waiters) w();
      waiters = [];
    },
  };
}

describe.each(ENGINES)('flow control against a stalled database on %s', (engine) => {
  let testDatabase: TestDatabase;
  let database: Database;
  let server: http2.Http2Server;
  let ingest: Ingest;
  let gate: ReturnType<typeof gatedSessions>;
  let calls = 0;
  let peakCalls = 0;
  let inHand = 0;
  let port = 0;
  const sessions = new Set<http2.ServerHttp2Session>();

  beforeAll(async () => {
    testDatabase = await createTestDatabase(engine);
    database = await testDatabase.open();
    const base = toConfig({ listen: '127.0.0.1:0' }).telemetry;
    const config = { ...base, maxBatchesInFlightPerStream: PER_STREAM, maxBatchesInFlight: GLOBAL };
    const url = testDatabase.config.kind === 'postgres' ? testDatabase.config.url : undefined;
    gate = gatedSessions(createWriteSessions(database, url, 2, silentLog));
    const writer = createGroupWriter({ sessions: gate.sessions, workers: 2, maxGroupReadings: 1_000, log: silentLog });
    const devices = createDeviceCache({ lookup: (ids) => findDeviceFacts(database, ids), ttlMs: 5_000 });
    const real = createIngest({ config, devices, writer, metrics: createTelemetryMetrics(new Registry()), log: silentLog });
    ingest = {
      ...real,
      inFlight: real.inFlight,
      async writeBatch(b) {
        calls++;
        inHand++;
        peakCalls = Math.max(peakCalls, inHand);
        try {
          return await real.writeBatch(b);
        } finally {
          inHand--;
        }
      },
    };
    const handler = connectNodeAdapter({ routes: (router) => router.service(TelemetryService, createTelemetryService(ingest, silentLog)) });
    server = http2.createServer(handler);
    server.on('session', (session) => {
      sessions.add(session);
      session.on('close', () => sessions.delete(session));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    gate?.openGate();
    for (const session of sessions) session.destroy();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    await gate?.sessions.close();
    await testDatabase?.drop();
  });

  it('reads no more batches than the bounds while the database is stalled, then acks every one', async () => {
    const meterId = await registerDevice(database, 'meter');
    const at = recentMinute(200);
    const client = createClient(TelemetryService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }));
    let offered = 0;
    const streams = Array.from({ length: STREAMS }, async (_, s) => {
      async function* flood() {
        for (let b = 0; b < BATCHES_PER_STREAM; b++) {
          offered++;
          const readings = Array.from({ length: 50 }, (_, i) => meterReading(meterId, at + ((s * BATCHES_PER_STREAM + b) * 50 + i) * 10));
          yield { message: { case: 'batch' as const, value: batch(b + 1, { meter: readings }) } };
        }
      }
      const acks: bigint[] = [];
      for await (const res of client.streamReadings(flood())) if (res.message.case === 'ack') acks.push(res.message.value.sequence);
      return acks;
    });

    // Wait (bounded) until the server holds as many batches as it may, then let the
    // event loop run many more turns: it must not read further while nothing commits.
    for (let i = 0; i < 1_000 && calls < GLOBAL; i++) await new Promise((r) => setTimeout(r, 5));
    expect(calls).toBe(GLOBAL);
    for (let i = 0; i < 200; i++) await new Promise((r) => setImmediate(r));
    expect(calls).toBe(GLOBAL);
    expect(ingest.inFlight.inUse).toBe(GLOBAL);
    expect(offered).toBeLessThan(STREAMS * BATCHES_PER_STREAM);

    gate.openGate();
    const acks = await Promise.all(streams);
    for (const list of acks)
      expect([...list].sort((a, b) => Number(a - b))).toEqual(Array.from({ length: BATCHES_PER_STREAM }, (_, i) => BigInt(i + 1)));
    expect(peakCalls).toBeLessThanOrEqual(GLOBAL);
    expect(ingest.inFlight.peak).toBeLessThanOrEqual(GLOBAL);
    const rows = await database.withSession((s) =>
      s.query<{ n: number }>(`select count(*)::int as n from flux.mg_meter_readings where device_id = $1`, [meterId]),
    );
    expect(rows[0]!.n).toBe(STREAMS * BATCHES_PER_STREAM * 50);
  });
});
