import { createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TelemetryService, type ReadingBatch } from '../../gen/powerplane/v1/telemetry_pb.ts';
import { ENGINES } from '../support/databases.ts';
import { startTestServer, type TestServer } from '../support/server.ts';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.ts';
import { batch, meterReading, recentMinute, registerDevice } from './helpers.ts';

const BATCHES = 30;
const PER_BATCH = 40;

describe.each(ENGINES)('an agent cut off mid-stream and replaying on %s', (engine) => {
  let t: TestServer;
  let proxy: TcpProxy;

  beforeAll(async () => {
    t = await startTestServer(engine);
    proxy = await startTcpProxy({ host: '127.0.0.1', port: t.server.address.port });
  });
  afterAll(async () => {
    await proxy?.close();
    await t?.stop();
  });

  it('ends with every acknowledged reading stored exactly once and none missing', async () => {
    const meterId = await registerDevice(t.server.database, 'meter');
    const base = recentMinute(120);
    const batches: ReadingBatch[] = Array.from({ length: BATCHES }, (_, b) =>
      batch(b + 1, {
        meter: Array.from({ length: PER_BATCH }, (_, i) =>
          meterReading(meterId, base + (b * PER_BATCH + i) * 1_000, { energyImportedActiveKwh: b * PER_BATCH + i }),
        ),
      }),
    );
    const acked = new Map<bigint, { stored: number; duplicate: number }>();
    let cuts = 0;

    for (let attempt = 0; attempt < 5 && acked.size < BATCHES; attempt++) {
      const pending = batches.filter((b) => !acked.has(b.sequence));
      const transport = createGrpcTransport({ baseUrl: `http://127.0.0.1:${proxy.port}` });
      const client = createClient(TelemetryService, transport);
      let ackedThisStream = 0;
      let enoughAcks: () => void = () => undefined;
      const halfway = new Promise<void>((resolve) => (enoughAcks = resolve));
      const cutThisTime = attempt === 0;
      async function* requests() {
        for (const [i, b] of pending.entries()) {
          yield { message: { case: 'batch' as const, value: b } };
          if (cutThisTime && i === 9) {
            await halfway;
            proxy.cut();
            cuts++;
          }
        }
      }
      try {
        for await (const res of client.streamReadings(requests())) {
          if (res.message.case !== 'ack') continue;
          const ack = res.message.value;
          acked.set(ack.sequence, { stored: ack.storedCount, duplicate: ack.duplicateCount });
          ackedThisStream++;
          if (ackedThisStream >= 4) enoughAcks();
        }
      } catch {
        // The cut ends the stream with an error; the agent reconnects and replays what was not acknowledged.
      }
      proxy.restore();
    }

    expect(cuts).toBe(1);
    expect(acked.size).toBe(BATCHES);
    for (const [, ack] of acked) expect(ack.stored + ack.duplicate).toBe(PER_BATCH);
    const rows = await t.server.database.withSession((s) =>
      s.query<{ n: number; keys: number; first: number; last: number }>(
        `select count(*)::int as n, count(distinct "time")::int as keys,
           min(energy_imported_active)::int as first, max(energy_imported_active)::int as last
         from flux.mg_meter_readings where device_id = $1`,
        [meterId],
      ),
    );
    expect(rows[0]).toEqual({ n: BATCHES * PER_BATCH, keys: BATCHES * PER_BATCH, first: 0, last: BATCHES * PER_BATCH - 1 });
  });
});
