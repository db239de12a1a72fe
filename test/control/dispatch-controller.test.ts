import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFakeClock, settle, type FakeClock } from '../../src/clock.fixtures.ts';
import { startController, type Controller } from '../../src/control/controller.ts';
import { createDispatch, type Dispatch } from '../../src/dispatch/dispatch.ts';
import type { Instruction } from '../../src/dispatch/instruction.ts';
import { createMarketData } from '../../src/dispatch/market-data.ts';
import { createSetpointBus } from '../../src/control/setpoint-bus.ts';
import { createSiteConfigs } from '../../src/dispatch/site-settings.ts';
import type { SetpointWriter } from '../../src/modbus/setpoint-writer.ts';
import type { SetpointEvent } from '../../src/modbus/types.ts';
import type { Device } from '../../src/registry/registered-device.ts';
import { createRegistry, type Registry } from '../../src/registry/registry.ts';
import type { Database } from '../../src/storage/database.ts';
import type { ResponseCodec } from '../../src/storage/idempotency.ts';
import { createTestDatabase, ENGINES, silentLog, type TestDatabase } from '../support/databases.ts';
import { holdAllShards } from '../support/leases.ts';
import { waitFor } from '../support/wait.ts';

/** What the controller asked of one battery's writer, and a way to answer as the device would. */
interface WriterLog {
  calls: string[];
  stopped: boolean;
  emit(seq: number, phase: SetpointEvent['phase']): void;
}

const PERIOD_MS = 4_000;
const json = <T>(): ResponseCodec<T> => ({
  encode: (value) => new TextEncoder().encode(JSON.stringify(value)),
  decode: (bytes) => JSON.parse(new TextDecoder().decode(bytes)) as T,
});

/**
 * The control loop over a real database, with a fake clock (wall time moves with it) and
 * writers that only record what they are told: what it plans, stores, writes and stops is
 * checked one period at a time.
 */
describe.each(ENGINES)('control loop on a fake clock on %s', (engine) => {
  let testDatabase: TestDatabase;
  let database: Database;
  let registry: Registry;
  let dispatch: Dispatch;
  let clock: FakeClock;
  let controller: Controller | undefined;
  let batteryId: string;
  const writers = new Map<string, WriterLog>();
  const site = `fake-clock-${engine}`;
  const wallStart = Date.now();
  const wall = () => new Date(wallStart + clock.now());

  const writerFactory = (device: Device, onEvent: (e: SetpointEvent) => void): SetpointWriter => {
    let seq = 0;
    const log: WriterLog = {
      calls: [],
      stopped: false,
      emit: (s, phase) => onEvent({ deviceKey: device.id, seq: s, targetPowerKw: 0, phase, at: wall(), elapsedMs: 0 }),
    };
    writers.set(device.id, log);
    return {
      setTarget: (kw) => (log.calls.push(`set ${kw}`), ++seq),
      clear: () => (log.calls.push('clear'), ++seq),
      stop: () => {
        log.stopped = true;
        return Promise.resolve();
      },
    };
  };

  async function rows<T>(query: ReturnType<typeof sql<T>>): Promise<T[]> {
    return (await query.execute(database.db)).rows;
  }

  beforeAll(async () => {
    testDatabase = await createTestDatabase(engine);
    database = await testDatabase.open();
    clock = createFakeClock(0);
    registry = createRegistry({ db: database.db, onChange: (s) => controller?.refresh(s, 'registry') });
    dispatch = createDispatch({ db: database.db, registry, onChange: (s, reason) => controller?.refresh(s, reason), now: wall });
    const device = await registry.createDevice(
      {
        name: 'b1',
        type: 'bess',
        site,
        metadata: {},
        bess: {
          ratedChargePowerKw: 100,
          ratedDischargePowerKw: 100,
          capacityKwh: 200,
          minSoePercent: 5,
          maxSoePercent: 95,
          inverterBlockCount: 1,
          rampRateKwPerS: 0,
          reversionTimeoutS: 30,
          modbus: { host: '127.0.0.1', port: 502, unitId: 1, registerProfile: 'sunspec', pollingIntervalMs: 1000 },
        },
      },
      '',
      'unrestricted',
      json<Device>(),
    );
    batteryId = device.id;
    await sql`insert into flux.mg_bess_readings (time, device_id, soe, available_inverter_blocks, command_source)
              values (${wall()}, ${batteryId}, 50, 1, 1)`.execute(database.db);
  });

  afterAll(async () => {
    await controller?.stop();
    await testDatabase?.drop();
  });

  it('releases an idle battery on its first period and stores that it is under local control', async () => {
    controller = startController({
      db: database.db,
      ...(await holdAllShards(database.db)),
      bus: createSetpointBus(),
      log: silentLog,
      writerFactory,
      clock,
      now: wall,
      siteConfigs: createSiteConfigs({ db: database.db, dispatch, onChange: (s) => controller?.refresh(s, 'config') }),
      marketData: createMarketData({ db: database.db }),
      options: { controlPeriodMs: PERIOD_MS, maxTelemetryAgeMs: 60_000 },
    });
    await waitFor('the first plan released the battery', () => writers.get(batteryId)?.calls.length === 1);
    expect(writers.get(batteryId)!.calls).toEqual(['clear']);
    await waitFor(
      'the source stored',
      async () =>
        (await rows(sql<{ source: number }>`select source from powerplane.command_source_state where device_id = ${batteryId}`)).length ===
        1,
    );
    // The setpoint's steps reach the audit table in the recorder's next batch, on the same clock.
    writers.get(batteryId)!.emit(1, 'verified');
    await clock.advance(100);
    await waitFor(
      'the release audited',
      async () =>
        (await rows(sql<{ phase: string }>`select phase from powerplane.setpoint_events where device_id = ${batteryId} order by id`))
          .map((r) => r.phase)
          .join() === 'PLANNED,VERIFIED',
    );
  });

  it('writes a dispatched power when told of a submit', async () => {
    await dispatch.submit(
      {
        requestId: `${site}-1`,
        target: { deviceId: batteryId },
        priority: 0,
        intervals: [
          { startTime: new Date(wall().getTime() - 1_000), endTime: new Date(wall().getTime() + 600_000), command: { powerKw: 40 } },
        ],
      },
      { principal: 'trader', owner: 'trader', sites: '*' },
      json<Instruction[]>(),
    );
    await waitFor('the dispatched power written', () => writers.get(batteryId)!.calls.includes('set 40'));
    expect(writers.get(batteryId)!.calls).toEqual(['clear', 'set 40']);
  });

  it('stops the writer of a battery no plan covered for three periods, on the period timer', async () => {
    await registry.deactivateDevice(batteryId, '*');
    // The last plan ran before the first period; its lease ends 12 s after it.
    await clock.advance(3 * PERIOD_MS);
    await settle();
    expect(writers.get(batteryId)!.stopped).toBe(false);
    await clock.advance(PERIOD_MS);
    expect(writers.get(batteryId)!.stopped).toBe(true);
    expect(writers.get(batteryId)!.calls).toEqual(['clear', 'set 40']);
  });
});

describe('control loop stop', () => {
  it('waits for planning hung on the database no longer than its bound, on the injected clock', async () => {
    const testDatabase = await createTestDatabase('pglite');
    const database = await testDatabase.open();
    try {
      const clock = createFakeClock(0);
      let queries = 0;
      // Every query the controller sends is answered, and its result never handed back.
      const hung = database.db.withPlugin({
        transformQuery: ({ node }) => node,
        transformResult: () => (queries++, new Promise(() => undefined)),
      });
      const dispatch = createDispatch({ db: database.db, registry: createRegistry({ db: database.db }), onChange: () => undefined });
      const controller = startController({
        db: hung,
        ...(await holdAllShards(database.db)),
        bus: createSetpointBus(),
        log: silentLog,
        clock,
        siteConfigs: createSiteConfigs({ db: database.db, dispatch, onChange: () => undefined }),
        marketData: createMarketData({ db: database.db }),
      });
      // The period's first query (the sites to plan) hangs: planning is now in flight.
      await waitFor('the first period to query the database', () => queries === 1);
      let stopped = false;
      const stopping = controller.stop().then(() => (stopped = true));
      await settle();
      await clock.advance(4_999);
      expect(stopped).toBe(false);
      await clock.advance(1);
      await stopping;
      expect(stopped).toBe(true);
      expect(clock.pending()).toBe(0);
    } finally {
      await testDatabase.drop();
    }
  });
});
