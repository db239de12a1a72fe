import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../support/server.ts';
import { recentMinute, registerDevice } from './helpers.ts';

const PROTO_ROOT = path.resolve(import.meta.dirname, '../../proto');

describe('StreamReadings from a plain grpc-js client', () => {
  let t: TestServer;
  let client: grpc.Client | undefined;

  beforeAll(async () => {
    t = await startTestServer('pglite');
  });
  afterAll(async () => {
    client?.close();
    await t?.stop();
  });

  it('streams batches and receives one ack per batch with its counts and rejections', async () => {
    const meterId = await registerDevice(t.server.database, 'meter');
    const definition = protoLoader.loadSync('powerplane/v1/telemetry.proto', {
      includeDirs: [PROTO_ROOT],
      keepCase: true,
      longs: String,
      enums: String,
      defaults: true,
      oneofs: true,
    });
    const pkg = grpc.loadPackageDefinition(definition) as any;
    client = new pkg.powerplane.v1.TelemetryService(`127.0.0.1:${t.server.address.port}`, grpc.credentials.createInsecure()) as grpc.Client;
    const call = (client as any).StreamReadings({ deadline: new Date(Date.now() + 20_000) }) as grpc.ClientDuplexStream<unknown, any>;
    const acks: any[] = [];
    const done = new Promise<void>((resolve, reject) => {
      call.on('data', (res) => acks.push(res.ack));
      call.on('error', reject);
      call.on('end', resolve);
    });
    const at = recentMinute(30);
    for (let seq = 1; seq <= 5; seq++) {
      const seconds = String(Math.floor(at / 1000) + seq);
      call.write({
        batch: {
          sequence: String(seq),
          meter_readings: [
            { device_id: meterId, time: { seconds, nanos: 0 }, power_total_active_kw: 10 * seq },
            { device_id: meterId, time: { seconds, nanos: 0 }, frequency_hz: 50, power_total_active_kw: 10 * seq },
          ],
          bess_readings: [{ device_id: meterId, time: { seconds, nanos: 0 }, soe_percent: 50 }],
        },
      });
    }
    call.end();
    await done;
    expect(acks.map((a) => a.sequence).sort()).toEqual(['1', '2', '3', '4', '5']);
    for (const ack of acks) {
      expect(ack).toMatchObject({ stored_count: 1, duplicate_count: 0, conflict_count: 1, rejected_count: 1 });
      expect(ack.rejections[0]).toMatchObject({
        kind: 'READING_KIND_BESS',
        index: 0,
        field: 'device_id',
        reason: 'names a meter device, not a bess',
      });
    }
  });
});
