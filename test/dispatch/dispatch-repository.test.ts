import { randomUUID } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSiteStates, type SiteStates } from '../../src/control/site-state.ts';
import * as repo from '../../src/dispatch/dispatch.repository.ts';
import type { DispatchTables } from '../../src/dispatch/dispatch.table.ts';
import { governingByTarget, type Instruction } from '../../src/dispatch/instruction.ts';
import { createSiteConfigs } from '../../src/dispatch/site-settings.ts';
import { createDispatch } from '../../src/dispatch/dispatch.ts';
import type { Device } from '../../src/registry/registered-device.ts';
import { createRegistry, type Registry } from '../../src/registry/registry.ts';
import type { Database } from '../../src/storage/database.ts';
import { EVERY_SITE } from '../../src/storage/site-scope.ts';
import { createTestDatabase, ENGINES, type TestDatabase } from '../support/databases.ts';
import { createTestBattery, TEST_BESS } from '../support/registry-devices.ts';

describe.each(ENGINES)("the control loop's reads on %s", (engine) => {
  let testDb: TestDatabase;
  let database: Database;
  let db: Kysely<DispatchTables>;
  let registry: Registry;
  let states: SiteStates;
  const now = new Date();
  const at = (offsetS: number) => new Date(now.getTime() + offsetS * 1_000);

  const battery = (site: string, name: string) => createTestBattery(registry, site, name);

  /** Stores instructions as a submit would (with their idempotency key), overriding fields of a default. */
  async function store(...specs: Array<Partial<Instruction>>): Promise<Instruction[]> {
    const instructions = specs.map((s, i): Instruction => ({
      id: randomUUID(),
      requestId: `r-${randomUUID()}`,
      target: { site: 'gov' },
      startTime: at(-60),
      endTime: at(600),
      command: { powerKw: 10 * (i + 1) },
      priority: 0,
      principal: 'trader',
      createdAt: at(-30),
      ...s,
    }));
    for (const i of instructions) {
      await repo.insertInstructions(db, [i], {
        principal: i.principal,
        method: 'SubmitDispatch',
        requestId: i.requestId,
        payloadSha256: i.id,
        response: new Uint8Array(),
      });
      if (i.cancelledAt) await repo.cancelInstruction(db, i.id, i.cancelReason ?? 'test', i.cancelledAt, 'operator');
    }
    return instructions;
  }

  beforeAll(async () => {
    testDb = await createTestDatabase(engine);
    database = await testDb.open();
    db = database.db.withTables<DispatchTables>();
    registry = createRegistry({ db: database.db });
    const dispatch = createDispatch({ db: database.db, registry, onChange: () => undefined });
    const siteConfigs = createSiteConfigs({ db: database.db, dispatch, onChange: () => undefined });
    states = createSiteStates({ db: database.db, siteConfigs, fullRefreshPeriods: 15 });
  });
  afterAll(async () => testDb?.drop());

  it("reads the site's and its batteries' instructions in force or to come, from which governingByTarget decides", async () => {
    const [b1, b2, other] = await Promise.all([battery('gov', 'b1'), battery('gov', 'b2'), battery('elsewhere', 'o1')]);
    const stored = await store(
      // Site-wide: priority wins, then the latest submitted, then the lowest id.
      { priority: 0, createdAt: at(-50) },
      { priority: 5, createdAt: at(-40) },
      { priority: 5, createdAt: at(-20), id: '00000000-0000-4000-8000-000000000002' },
      { priority: 5, createdAt: at(-20), id: '00000000-0000-4000-8000-000000000001' },
      // Not in force: cancelled, over, not started yet (each would otherwise win).
      { priority: 9, cancelledAt: at(-5) },
      { priority: 9, startTime: at(-120), endTime: at(-1) },
      { priority: 9, startTime: at(60) },
      // Battery-level, per battery.
      { target: { deviceId: b1.id }, priority: 1 },
      { target: { deviceId: b1.id }, priority: 2 },
      { target: { deviceId: b2.id }, priority: -3 },
      // Another site's, and a battery of another site.
      { target: { site: 'elsewhere' }, priority: 100 },
      { target: { deviceId: other.id }, priority: 100 },
    );
    const { instructions } = await states.read('gov', now);
    // Neither the cancelled nor the ended one, nor another site's; the one still to start is kept for its start.
    expect(new Set(instructions.map((i) => i.id))).toEqual(new Set([...stored.slice(0, 4), ...stored.slice(6, 10)].map((i) => i.id)));
    const expected = governingByTarget(stored.slice(0, 10), now);
    expect(expected.site?.id).toBe('00000000-0000-4000-8000-000000000001');
    expect(governingByTarget(instructions, now)).toEqual(expected);
  });

  it('reads each active battery of a site with its latest reading, override, stored source and its instruction, and meters', async () => {
    const [full, bare, inactive] = await Promise.all([battery('states', 'full'), battery('states', 'bare'), battery('states', 'gone')]);
    // A battery row written by another Flux tool, without Powerplane's spec.
    const {
      rows: [noSpec],
    } = await sql<{
      id: string;
    }>`insert into flux.mg_device_registry (name, type, site, metadata) values ('no-spec', 'bess', 'states', '{}') returning id`.execute(
      database.db,
    );
    await registry.deactivateDevice(inactive.id, EVERY_SITE);
    const meter = await registry.createDevice(
      { name: 'meter', type: 'meter', site: 'states', metadata: {}, meter: { modbus: TEST_BESS.modbus } },
      '',
      'test',
      undefined as never,
    );
    await sql`insert into flux.mg_meter_readings (time, device_id, power_total_active)
              values (${at(-30)}, ${meter.id}, 12), (${at(-5)}, ${meter.id}, -7.5)`.execute(database.db);
    await battery('other-site', 'x');
    const [instruction] = await store({ target: { site: 'states' }, cancelledAt: at(-2), cancelReason: 'trader changed their mind' });
    await sql`insert into flux.mg_bess_readings (time, device_id, soe, target_power, available_inverter_blocks, command_source)
              values (${at(-20)}, ${full.id}, 40, 5, 1, 1), (${at(-10)}, ${full.id}, 41.5, 6, 2, 2)`.execute(database.db);
    await repo.upsertOverride(db, {
      deviceId: full.id,
      powerKw: -12.5,
      expireTime: at(300),
      reason: 'test the inverter',
      principal: 'operator',
    });
    await repo.releaseOverride(db, full.id, 'supervisor', at(-1));
    await repo.recordSourceChanges(db, [
      {
        deviceId: full.id,
        source: 'DISPATCH',
        reason: 'following',
        cause: `instruction ${instruction!.id}`,
        instructionId: instruction!.id,
      },
    ]);

    const reads = await states.read('states', now);
    expect(reads.meters).toEqual([{ device_id: meter.id, time: at(-5), power_total_active: -7.5 }]);
    const batteries = reads.batteries;
    const byName = new Map(batteries.map((s) => [s.device.name, s]));
    expect([...byName.keys()].sort()).toEqual(['bare', 'full', 'no-spec']);
    expect(batteries.map((s) => s.device.id)).toEqual([full.id, bare.id, noSpec!.id].sort());
    const f = byName.get('full')!;
    expect(f.device).toEqual<Device>(full);
    expect(f.reading).toEqual({
      device_id: full.id,
      time: at(-10),
      soe: 41.5,
      target_power: 6,
      available_inverter_blocks: 2,
      command_source: 2,
    });
    expect(f.override).toEqual({
      powerKw: -12.5,
      expireTime: at(300),
      reason: 'test the inverter',
      principal: 'operator',
      releasedAt: at(-1),
      releasedBy: 'supervisor',
    });
    expect(f.stored).toEqual({ source: 'DISPATCH', instructionId: instruction!.id, cause: `instruction ${instruction!.id}` });
    expect(f.storedInstruction).toEqual({
      id: instruction!.id,
      endTime: instruction!.endTime,
      cancelledAt: at(-2),
      cancelledBy: 'operator',
      cancelReason: 'trader changed their mind',
    });
    expect(byName.get('bare')).toEqual({ device: bare });
    expect(byName.get('no-spec')!.device.bess).toBeUndefined();
    expect((await states.read('no such site', now)).batteries).toEqual([]);
  });
});
