import { randomUUID } from 'node:crypto';
import { sql, type Kysely, type KyselyPlugin } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSiteStates, READ_AHEAD_MS, type SiteStates } from '../../src/control/site-state.ts';
import * as repo from '../../src/dispatch/dispatch.repository.ts';
import type { DispatchTables } from '../../src/dispatch/dispatch.table.ts';
import type { Instruction } from '../../src/dispatch/instruction.ts';
import type { SiteConfig, SiteConfigs } from '../../src/dispatch/site-settings.ts';
import type { Device } from '../../src/registry/registered-device.ts';
import { createRegistry, type Registry } from '../../src/registry/registry.ts';
import type { Database } from '../../src/storage/database.ts';
import { EVERY_SITE } from '../../src/storage/site-scope.ts';
import { createTestDatabase, ENGINES, type TestDatabase } from '../support/databases.ts';
import { createTestBattery } from '../support/registry-devices.ts';
import { waitFor } from '../support/wait.ts';

const FULL_REFRESH_PERIODS = 4;

/** `db` counting the reads of latest battery readings that have ended. */
function countingReadings(db: Kysely<object>): { db: Kysely<object>; ended(): number } {
  let ended = 0;
  const executor = db.getExecutor();
  const readsReadings = new WeakSet<object>();
  const plugin: KyselyPlugin = {
    transformQuery(args) {
      if (executor.compileQuery(args.node, args.queryId).sql.includes('flux.mg_bess_readings b')) readsReadings.add(args.queryId);
      return args.node;
    },
    transformResult: async (args) => {
      if (readsReadings.has(args.queryId)) ended++;
      return args.result;
    },
  };
  return { db: db.withPlugin(plugin), ended: () => ended };
}

/**
 * The owner's in-memory site state over a real database: what each announced change makes
 * the next read see, what the periodic whole read catches when an announcement was missed,
 * and that the latest readings are read every time.
 */
describe.each(ENGINES)('site state in memory on %s', (engine) => {
  let testDb: TestDatabase;
  let database: Database;
  let registry: Registry;
  /** Site settings as stored; `get` counts its calls and may be held to model a read in flight. */
  const configs = new Map<string, SiteConfig>();
  let configReads = 0;
  let holdConfig: Promise<void> | undefined;
  const siteConfigs: Pick<SiteConfigs, 'get'> = {
    async get(site) {
      configReads++;
      const config = configs.get(site) ?? { site, avoidImport: false, avoidExport: false };
      await holdConfig;
      return config;
    },
  };
  const now = new Date();
  const at = (offsetS: number) => new Date(now.getTime() + offsetS * 1_000);
  const db = () => database.db.withTables<DispatchTables>();

  const battery = (site: string, name: string): Promise<Device> => createTestBattery(registry, site, name);

  /** An instruction for `target`, not stored. */
  const unstored = (target: Instruction['target'], powerKw: number): Instruction => ({
    id: randomUUID(),
    requestId: randomUUID(),
    target,
    startTime: at(-60),
    endTime: at(600),
    command: { powerKw },
    priority: 0,
    principal: 'trader',
    createdAt: now,
  });

  /** Stores a battery reading of `soe` taken at `time`. */
  const reading = (deviceId: string, time: Date, soe: number) =>
    sql`insert into flux.mg_bess_readings (time, device_id, soe, available_inverter_blocks, command_source)
        values (${time}, ${deviceId}, ${soe}, 1, 2)`.execute(database.db);

  async function submit(target: Instruction['target'], powerKw: number): Promise<Instruction> {
    const instruction: Instruction = {
      id: randomUUID(),
      requestId: randomUUID(),
      target,
      startTime: at(-60),
      endTime: at(600),
      command: { powerKw },
      priority: 0,
      principal: 'trader',
      createdAt: now,
    };
    await repo.insertInstructions(db(), [instruction], {
      principal: 'trader',
      method: 'SubmitDispatch',
      requestId: instruction.requestId,
      payloadSha256: instruction.id,
      response: new Uint8Array(),
    });
    return instruction;
  }

  /** A site with one battery, read once (so it is in memory), and a fresh state for it. */
  async function siteInMemory(name: string, through = database.db): Promise<{ site: string; device: Device; states: SiteStates }> {
    const site = `${name}-${engine}`;
    const device = await battery(site, 'b1');
    const states = createSiteStates({ db: through, siteConfigs, fullRefreshPeriods: FULL_REFRESH_PERIODS });
    await states.read(site, now);
    return { site, device, states };
  }

  beforeAll(async () => {
    testDb = await createTestDatabase(engine);
    database = await testDb.open();
    registry = createRegistry({ db: database.db });
  });
  afterAll(async () => testDb?.drop());

  it('sees a submitted instruction on the read after an instruction change is announced, not before', async () => {
    const { site, states } = await siteInMemory('instruction');
    const instruction = await submit({ site }, 30);
    expect((await states.read(site, now)).instructions).toEqual([]);
    states.refresh(site, 'override');
    expect((await states.read(site, now)).instructions).toEqual([]);
    states.refresh(site, 'instruction');
    expect((await states.read(site, now)).instructions).toEqual([instruction]);
  });

  it('sees a cancel as the departure of the battery that followed the instruction, naming who cancelled it', async () => {
    const { site, device, states } = await siteInMemory('cancel');
    const instruction = await submit({ deviceId: device.id }, 20);
    states.refresh(site, 'instruction');
    expect((await states.read(site, now)).instructions.map((i) => i.id)).toEqual([instruction.id]);
    const change = { deviceId: device.id, source: 'DISPATCH' as const, reason: 'following', cause: `instruction ${instruction.id}` };
    await repo.recordSourceChanges(db(), [{ ...change, instructionId: instruction.id }]);
    states.recorded(site, [{ ...change, instructionId: instruction.id }]);
    await repo.cancelInstruction(db(), instruction.id, 'changed my mind', at(-1), 'trader-2');
    states.refresh(site, 'instruction');
    const reads = await states.read(site, now);
    expect(reads.instructions).toEqual([]);
    expect(reads.batteries[0]!.storedInstruction).toEqual({
      id: instruction.id,
      endTime: instruction.endTime,
      cancelledAt: at(-1),
      cancelledBy: 'trader-2',
      cancelReason: 'changed my mind',
    });
  });

  it('sees an override on the read after an override change is announced, and its expiry as a boundary', async () => {
    const { site, device, states } = await siteInMemory('override');
    await repo.upsertOverride(db(), { deviceId: device.id, powerKw: -5, expireTime: at(120), reason: 'test', principal: 'operator' });
    expect((await states.read(site, now)).batteries[0]!.override).toBeUndefined();
    states.refresh(site, 'override');
    const reads = await states.read(site, now);
    expect(reads.batteries[0]!.override).toEqual({ powerKw: -5, expireTime: at(120), reason: 'test', principal: 'operator' });
    expect(reads.nextBoundary([device.id], now)).toEqual(at(120));
  });

  it('sees new site settings on the read after a settings change is announced', async () => {
    const { site, states } = await siteInMemory('config');
    configs.set(site, { site, importLimitKw: 50, avoidImport: true, avoidExport: false });
    expect((await states.read(site, now)).config.importLimitKw).toBeUndefined();
    states.refresh(site, 'config');
    expect((await states.read(site, now)).config).toEqual(configs.get(site));
  });

  it('tells the settings it holds only while they are read and not marked stale', async () => {
    const { site, states } = await siteInMemory('known-config');
    expect(states.knownConfig('never-read')).toBeUndefined();
    expect(states.knownConfig(site)).toEqual({ site, avoidImport: false, avoidExport: false });
    configs.set(site, { site, exportLimitKw: 10, avoidImport: false, avoidExport: false });
    states.refresh(site, 'config');
    expect(states.knownConfig(site)).toBeUndefined();
    await states.read(site, now);
    expect(states.knownConfig(site)).toEqual(configs.get(site));
  });

  it('sees a new battery, its override and source after a registry change is announced, and a deactivated one gone', async () => {
    const { site, device, states } = await siteInMemory('registry');
    const added = await battery(site, 'b2');
    await repo.upsertOverride(db(), { deviceId: added.id, powerKw: 7, expireTime: at(60), reason: 'new', principal: 'operator' });
    await repo.recordSourceChanges(db(), [{ deviceId: added.id, source: 'MANUAL', reason: 'manual', cause: 'manual 7 kW' }]);
    expect((await states.read(site, now)).batteries.map((b) => b.device.id)).toEqual([device.id]);
    states.refresh(site, 'registry');
    const reads = await states.read(site, now);
    expect(reads.batteries.map((b) => b.device.id)).toEqual([device.id, added.id].sort());
    const b2 = reads.batteries.find((b) => b.device.id === added.id)!;
    expect(b2.override?.powerKw).toBe(7);
    expect(b2.stored).toEqual({ source: 'MANUAL', cause: 'manual 7 kW' });
    await registry.deactivateDevice(added.id, EVERY_SITE);
    states.refresh(site, 'registry');
    expect((await states.read(site, now)).batteries.map((b) => b.device.id)).toEqual([device.id]);
  });

  it('reads the latest readings every time, with no announcement', async () => {
    const { site, device, states } = await siteInMemory('readings');
    expect((await states.read(site, now)).batteries[0]!.reading).toBeUndefined();
    await sql`insert into flux.mg_bess_readings (time, device_id, soe, available_inverter_blocks, command_source)
              values (${at(-2)}, ${device.id}, 61, 1, 2)`.execute(database.db);
    expect((await states.read(site, now)).batteries[0]!.reading).toMatchObject({ time: at(-2), soe: 61, command_source: 2 });
  });

  it('catches every change whose announcement was missed once the site is read whole, within the refresh periods', async () => {
    const { site, device, states } = await siteInMemory('missed');
    await battery(site, 'b2');
    const instruction = await submit({ site }, 10);
    await repo.upsertOverride(db(), { deviceId: device.id, powerKw: 3, expireTime: at(90), reason: 'missed', principal: 'operator' });
    await repo.recordSourceChanges(db(), [{ deviceId: device.id, source: 'LOCAL', reason: 'elsewhere', cause: 'local idle' }]);
    configs.set(site, { site, exportLimitKw: 80, avoidImport: false, avoidExport: false });
    const seen = async () => {
      const reads = await states.read(site, now);
      return {
        batteries: reads.batteries.length,
        instructions: reads.instructions.map((i) => i.id),
        override: reads.batteries.find((b) => b.device.id === device.id)?.override?.powerKw,
        stored: reads.batteries.find((b) => b.device.id === device.id)?.stored?.cause,
        exportLimitKw: reads.config.exportLimitKw,
      };
    };
    const stale = { batteries: 1, instructions: [], override: undefined, stored: undefined, exportLimitKw: undefined };
    const fresh = { batteries: 2, instructions: [instruction.id], override: 3, stored: 'local idle', exportLimitKw: 80 };
    let caughtAfter: number | undefined;
    for (let period = 1; period <= FULL_REFRESH_PERIODS && caughtAfter === undefined; period++) {
      states.period();
      const got = await seen();
      if (got.batteries === 2) {
        expect(got).toEqual(fresh);
        caughtAfter = period;
      } else {
        expect(got).toEqual(stale);
      }
    }
    expect(caughtAfter).toBeDefined();
    // And again a whole refresh later, not in the periods between.
    await repo.releaseOverride(db(), device.id, 'operator', at(-1));
    const releasedBy = async () => (await states.read(site, now)).batteries.find((b) => b.device.id === device.id)?.override?.releasedBy;
    for (let period = 1; period < FULL_REFRESH_PERIODS; period++) {
      states.period();
      expect(await releasedBy()).toBeUndefined();
    }
    states.period();
    expect(await releasedBy()).toBe('operator');
  });

  it('reads every site whole again after a resync, and a forgotten site afresh', async () => {
    const { site, states } = await siteInMemory('resync');
    const first = await submit({ site }, 10);
    states.refreshAll();
    expect((await states.read(site, now)).instructions.map((i) => i.id)).toEqual([first.id]);
    const second = await submit({ site }, 20);
    states.forget((s) => s === site);
    expect(new Set((await states.read(site, now)).instructions.map((i) => i.id))).toEqual(new Set([first.id, second.id]));
  });

  it('keeps the sources the controller recorded without reading them back', async () => {
    const { site, device, states } = await siteInMemory('recorded');
    states.recorded(site, [{ deviceId: device.id, source: 'FAILSAFE', reason: 'stale telemetry', cause: 'failsafe' }]);
    expect((await states.read(site, now)).batteries[0]!.stored).toEqual({ source: 'FAILSAFE', cause: 'failsafe' });
  });

  it('reads a part again when its change is announced while that part is being read', async () => {
    const { site, states } = await siteInMemory('in-flight');
    let release!: () => void;
    holdConfig = new Promise((resolve) => (release = resolve));
    states.refresh(site, 'config');
    const before = configReads;
    const reading = states.read(site, now);
    // The settings read has begun (and holds the old settings) when the change and its announcement come.
    await waitFor('the settings read to begin', () => configReads === before + 1);
    configs.set(site, { site, importLimitKw: 5, avoidImport: false, avoidExport: false });
    states.refresh(site, 'config');
    release();
    holdConfig = undefined;
    expect((await reading).config.importLimitKw).toBeUndefined();
    expect((await states.read(site, now)).config.importLimitKw).toBe(5);
    expect(configReads).toBe(before + 2);
  });

  it('keeps the instructions submitted on this replica without reading them back', async () => {
    const { site, states } = await siteInMemory('submitted');
    const stored = await submit({ site }, 10);
    // Never stored: it can only come from memory.
    const kept = unstored({ site }, 20);
    states.submitted(site, [kept], states.submitMark());
    expect((await states.read(site, now)).instructions).toEqual([kept]);
    states.refresh(site, 'instruction');
    expect((await states.read(site, now)).instructions).toEqual([stored]);
  });

  it('reads the instructions again when one is submitted while they are stale or being read', async () => {
    const { site, states } = await siteInMemory('submitted-stale');
    const first = await submit({ site }, 10);
    states.refresh(site, 'instruction');
    states.submitted(site, [unstored({ site }, 20)], states.submitMark());
    expect((await states.read(site, now)).instructions).toEqual([first]);

    let release!: () => void;
    holdConfig = new Promise((resolve) => (release = resolve));
    states.refresh(site, 'registry');
    const before = configReads;
    const reading = states.read(site, now);
    await waitFor('the whole read to begin', () => configReads === before + 1);
    states.submitted(site, [unstored({ site }, 30)], states.submitMark());
    release();
    holdConfig = undefined;
    await reading;
    // Stored after that read and never announced: only a read of the instructions finds it.
    const second = await submit({ site }, 40);
    expect(new Set((await states.read(site, now)).instructions.map((i) => i.id))).toEqual(new Set([first.id, second.id]));
  });

  it('reads the instructions again when they changed between the start of a submit and its store', async () => {
    const { site, states } = await siteInMemory('submitted-since');
    const stored = await submit({ site }, 10);
    const since = states.submitMark();
    // Meanwhile a change of the site's instructions (a cancel on any replica) is announced and read.
    states.refresh(site, 'instruction');
    expect((await states.read(site, now)).instructions).toEqual([stored]);
    // The submit's own instructions, as it stored them, are not trusted over that read.
    states.submitted(site, [unstored({ site }, 20)], since);
    expect((await states.read(site, now)).instructions).toEqual([stored]);
  });

  it('uses readings read ahead by the next read within the read-ahead time, and reads them again after it', async () => {
    const counted = countingReadings(database.db);
    const { site, device, states } = await siteInMemory('read-ahead', counted.db);
    await reading(device.id, at(-30), 40);
    let reads = counted.ended();
    states.readAhead(site, now);
    await waitFor('the read ahead to end', () => counted.ended() === reads + 1);
    // Stored after the read ahead: the next read, using it, does not see it.
    await reading(device.id, at(-20), 41);
    expect((await states.read(site, new Date(now.getTime() + 10))).batteries[0]!.reading?.soe).toBe(40);
    expect(counted.ended()).toBe(reads + 1);
    // Used once: the read after reads them.
    expect((await states.read(site, now)).batteries[0]!.reading?.soe).toBe(41);

    reads = counted.ended();
    states.readAhead(site, now);
    await waitFor('the read ahead to end', () => counted.ended() === reads + 1);
    await reading(device.id, at(-10), 42);
    expect((await states.read(site, new Date(now.getTime() + READ_AHEAD_MS + 1))).batteries[0]!.reading?.soe).toBe(42);
  });

  it('reads the readings again when the devices changed since they were read ahead', async () => {
    const counted = countingReadings(database.db);
    const { site, device, states } = await siteInMemory('read-ahead-devices', counted.db);
    await reading(device.id, at(-30), 50);
    const reads = counted.ended();
    states.readAhead(site, now);
    await waitFor('the read ahead to end', () => counted.ended() === reads + 1);
    const added = await battery(site, 'b2');
    await reading(added.id, at(-20), 51);
    states.refresh(site, 'registry');
    const batteries = (await states.read(site, now)).batteries;
    expect(batteries.map((b) => b.reading?.soe)).toEqual(batteries.map((b) => (b.device.id === added.id ? 51 : 50)));
  });
});
