import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BessSpec } from '../../src/registry/registered-device.ts';
import { createRegistry, type Registry } from '../../src/registry/registry.ts';
import type { Database } from '../../src/storage/database.ts';
import { EVERY_SITE } from '../../src/storage/site-scope.ts';
import { createTestDatabase, ENGINES, type TestDatabase } from '../support/databases.ts';
import { createTestBattery, TEST_BESS } from '../support/registry-devices.ts';

/** A site's rating, as a site-wide submit is checked against it, summed in the database. */
describe.each(ENGINES)("a site's rating on %s", (engine) => {
  let testDb: TestDatabase;
  let database: Database;
  let registry: Registry;
  // The batteries of these cases discharge up to 120 kW, so charge and discharge sums differ.
  const create = (name: string, site: string, bess?: Partial<BessSpec>) =>
    bess
      ? createTestBattery(registry, site, name, { ratedDischargePowerKw: 120, ...bess })
      : registry.createDevice({ name, type: 'meter', site, metadata: {}, meter: TEST_BESS }, '', 'test', undefined as never);

  beforeAll(async () => {
    testDb = await createTestDatabase(engine);
    database = await testDb.open();
    registry = createRegistry({ db: database.db });
  });
  afterAll(async () => testDb?.drop());

  it("counts the site's active batteries and sums their ratings, as the listed batteries would", async () => {
    await create('a', 'rated', {});
    await create('b', 'rated', { ratedChargePowerKw: 30.5, ratedDischargePowerKw: 0.5 });
    const gone = await create('c', 'rated', { ratedChargePowerKw: 1_000, ratedDischargePowerKw: 1_000 });
    await registry.deactivateDevice(gone.id, EVERY_SITE);
    await create('meter', 'rated');
    await create('elsewhere', 'other', {});
    // A battery row written by another Flux tool, without Powerplane's specification: it rates 0.
    const flux = '{"bess": {"rated_charge_power_kw": "9"}}';
    await sql`insert into flux.mg_device_registry (name, type, site, metadata) values ('no-spec', 'bess', 'rated', ${flux}::jsonb)`.execute(
      database.db,
    );
    const listed = (await registry.listDevices({ site: 'rated', type: 'bess', active: true }, 100, '')).devices;
    expect(await registry.siteRating('rated')).toEqual({
      batteries: listed.length,
      ratedChargePowerKw: listed.reduce((sum, d) => sum + (d.bess?.ratedChargePowerKw ?? 0), 0),
      ratedDischargePowerKw: listed.reduce((sum, d) => sum + (d.bess?.ratedDischargePowerKw ?? 0), 0),
    });
    expect(await registry.siteRating('rated')).toEqual({ batteries: 3, ratedChargePowerKw: 130.5, ratedDischargePowerKw: 120.5 });
    expect(await registry.siteRating('no such site')).toEqual({ batteries: 0, ratedChargePowerKw: 0, ratedDischargePowerKw: 0 });
  });
});
