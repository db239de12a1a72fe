import { Code, ConnectError, createClient, type Client } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RetryInfoSchema } from '../../gen/google/rpc/error_details_pb.ts';
import { TelemetryService, type ReadingBatch, type StreamReadingsRequest } from '../../gen/powerplane/v1/telemetry_pb.ts';
import { createTokenStore } from '../../src/auth/tokens.ts';
import { toConfig } from '../../src/config.ts';
import { ENGINES } from '../support/databases.ts';
import { startTestServer, type TestServer } from '../support/server.ts';
import { batch, countRows, meterReading, recentMinute, registerDevice } from './helpers.ts';

const base = toConfig({ listen: '127.0.0.1:0' });

/** The delay a refusal's RetryInfo asks for, ms. */
function retryDelayMs(err: ConnectError): number {
  const [info] = err.findDetails(RetryInfoSchema);
  expect(info?.retryDelay).toBeDefined();
  return Number(info!.retryDelay!.seconds) * 1000 + info!.retryDelay!.nanos / 1e6;
}

describe.each(ENGINES)('the per-caller ingest rate limit on %s', (engine) => {
  let t: TestServer;
  let meterId: string;
  const secrets: Record<string, string> = {};
  let telemetry: Client<typeof TelemetryService>;
  const as = (agent: string) => ({ headers: { authorization: `Bearer ${secrets[agent]}` } });
  let slot = 0;
  /** `n` meter readings at times no other call of this file uses. */
  const readings = (n: number) => Array.from({ length: n }, () => meterReading(meterId, recentMinute(60) + slot++ * 1_000));

  beforeAll(async () => {
    // One reading a second and bursts of ten: a second batch of a burst is refused at once,
    // whatever the machine's speed, and the wait it is told is seconds, not milliseconds.
    t = await startTestServer(engine, {
      auth: { ...base.auth, enabled: true, adminTokenFile: undefined },
      telemetry: { ...base.telemetry, ingestReadingsPerS: 1, ingestBurst: 10, maxBatchReadings: 10 },
    });
    meterId = await registerDevice(t.server.database, 'meter');
    const tokens = createTokenStore({ db: (await t.testDatabase.open()).db, cacheMs: 60_000 });
    for (const agent of ['write-a', 'write-b', 'stream-c']) {
      secrets[agent] = (await tokens.create({ name: agent, scopes: ['telemetry:write'], sites: ['site-t'] }, 'ingest limit test')).secret;
    }
    telemetry = createClient(TelemetryService, createGrpcTransport({ baseUrl: t.baseUrl }));
  });
  afterAll(() => t?.stop());

  it("refuses a WriteReadings batch over the caller's rate whole, with RetryInfo and retry-after, and spares another caller", async () => {
    const before = await countRows(t.server.database, 'flux.mg_meter_readings', meterId);
    expect((await telemetry.writeReadings({ batch: batch(1, { meter: readings(10) }) }, as('write-a'))).ack?.storedCount).toBe(10);

    const refused = await telemetry.writeReadings({ batch: batch(2, { meter: readings(5) }) }, as('write-a')).then(
      () => undefined,
      (err: unknown) => ConnectError.from(err),
    );
    expect(refused?.code).toBe(Code.ResourceExhausted);
    expect(refused!.rawMessage).toMatch(
      /^rate limit for ingest of readings exceeded \(1 per second with bursts of 10 per caller\) - retry after \d+ ms$/,
    );
    // Five readings at one a second, less what refilled meanwhile.
    const delay = retryDelayMs(refused!);
    expect(delay).toBeGreaterThan(0);
    expect(delay).toBeLessThanOrEqual(5_000);
    expect(Number(refused!.metadata.get('retry-after'))).toBe(Math.max(1, Math.ceil(delay / 1000)));
    expect(await countRows(t.server.database, 'flux.mg_meter_readings', meterId)).toBe(before + 10);

    // Another caller has a budget of its own.
    expect((await telemetry.writeReadings({ batch: batch(3, { meter: readings(10) }) }, as('write-b'))).ack?.storedCount).toBe(10);
  });

  it('ends a StreamReadings stream at the batch over the rate, after acknowledging the batches admitted before it', async () => {
    const before = await countRows(t.server.database, 'flux.mg_meter_readings', meterId);
    const batches: ReadingBatch[] = [batch(1, { meter: readings(4) }), batch(2, { meter: readings(4) }), batch(3, { meter: readings(4) })];
    let serverDone: () => void = () => undefined;
    const done = new Promise<void>((resolve) => (serverDone = resolve));
    // The client keeps its side open until the server has answered, as an agent does.
    async function* requests(): AsyncGenerator<StreamReadingsRequest> {
      for (const b of batches) yield { $typeName: 'powerplane.v1.StreamReadingsRequest', message: { case: 'batch', value: b } };
      await done;
    }
    const acked: bigint[] = [];
    let failure: ConnectError | undefined;
    try {
      for await (const res of telemetry.streamReadings(requests(), as('stream-c'))) {
        if (res.message.case === 'ack') acked.push(res.message.value.sequence);
      }
    } catch (err) {
      failure = ConnectError.from(err);
    } finally {
      serverDone();
    }
    expect(failure?.code).toBe(Code.ResourceExhausted);
    expect(retryDelayMs(failure!)).toBeGreaterThan(0);
    expect(failure!.metadata.get('retry-after')).toMatch(/^\d+$/);
    // Eight of the ten readings of the burst went in; the third batch was neither stored nor acknowledged.
    expect(acked.sort()).toEqual([1n, 2n]);
    expect(await countRows(t.server.database, 'flux.mg_meter_readings', meterId)).toBe(before + 8);
  });
});
