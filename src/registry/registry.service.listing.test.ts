import { toBinary } from '@bufbuild/protobuf';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeviceSchema, DeviceType } from '../../gen/powerplane/v1/devices_pb.ts';
import { errorOf } from '../../test/support/api.ts';
import { ENGINES, type TestDatabase } from '../../test/support/databases.ts';
import { serveInMemory } from '../../test/support/services.ts';
import { encodePageToken } from '../page-token.ts';
import { UNRESTRICTED } from '../rpc/principal.ts';
import { battery, meter, serveRegistry, type RegistryClient, type RegistryUnderTest } from './registry.service.fixtures.ts';

/**
 * ListDevices in memory, over the services of `registry.service.fixtures.ts`: filters,
 * pages ended by count and by bytes, and page tokens and sizes it refuses.
 */

describe.each(ENGINES)('DeviceRegistryService in memory on %s', (engine) => {
  let registry: RegistryUnderTest;
  let testDb: TestDatabase;
  let client: RegistryClient;

  beforeAll(async () => {
    registry = await serveRegistry(engine);
    ({ testDb, client } = registry);
  });
  afterAll(() => registry?.close());

  it('filters by site, type and active flag and pages through the list', async () => {
    const site = 'paging';
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await client.createDevice({ device: battery({ site, name: `b${i}` }) })).device!.id);
    const meterId = (await client.createDevice({ device: meter({ site }) })).device!.id;
    await client.deactivateDevice({ id: ids[4]! });

    const seen: string[] = [];
    let pageToken = '';
    for (let pages = 0; pages < 10; pages++) {
      const page = await client.listDevices({ site, type: DeviceType.BESS, active: true, pageSize: 2, pageToken });
      expect(page.devices.length).toBeLessThanOrEqual(2);
      seen.push(...page.devices.map((d) => d.id));
      pageToken = page.nextPageToken;
      if (pageToken === '') break;
    }
    expect(seen).toEqual(ids.slice(0, 4));
    expect((await client.listDevices({ site, active: false })).devices.map((d) => d.id)).toEqual([ids[4]]);
    expect((await client.listDevices({ site, type: DeviceType.METER })).devices.map((d) => d.id)).toEqual([meterId]);
  });

  it('ends a page by bytes as well as by count, with no device lost or repeated', async () => {
    const site = 'paging-bytes';
    const note = 'x'.repeat(400);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++)
      ids.push((await client.createDevice({ device: battery({ site, name: `b${i}`, metadata: { note } }) })).device!.id);
    const size = toBinary(DeviceSchema, (await client.getDevice({ id: ids[0]! })).device!).length;
    // Room for two devices a page, not three.
    const small = serveInMemory(await testDb.open(), testDb.config, { pageBytes: size * 2 + size / 2 });
    try {
      const narrow = small.as(UNRESTRICTED).registry;
      const pages: string[][] = [];
      let pageToken = '';
      for (let i = 0; i < 10; i++) {
        const page = await narrow.listDevices({ site, pageSize: 100, pageToken });
        pages.push(page.devices.map((d) => d.id));
        pageToken = page.nextPageToken;
        if (pageToken === '') break;
      }
      expect(pages.map((p) => p.length)).toEqual([2, 2, 1]);
      expect(pages.flat()).toEqual(ids);
    } finally {
      await small.close();
    }
  });

  it('refuses a page token made for other filters, or not made by the API', async () => {
    const site = 'token-filters';
    for (let i = 0; i < 3; i++) await client.createDevice({ device: battery({ site, name: `b${i}` }) });
    const page = await client.listDevices({ site, pageSize: 1 });
    expect(page.nextPageToken).not.toBe('');
    expect(await errorOf(client.listDevices({ site: 'other', pageSize: 1, pageToken: page.nextPageToken }))).toMatchObject({
      code: 'InvalidArgument',
      message: expect.stringMatching(/^page_token was made for a listing with other filters/),
    });
    expect(await errorOf(client.listDevices({ pageToken: 'not-a-token!' }))).toMatchObject({
      code: 'InvalidArgument',
      message: expect.stringContaining('page_token'),
    });
    const edited = encodePageToken(['site', 'name', 'not-a-uuid'], {});
    expect(await errorOf(client.listDevices({ pageToken: edited }))).toMatchObject({
      code: 'InvalidArgument',
      message: expect.stringContaining('page_token'),
    });
  });

  it.each([
    [5000, 'must be from 1 to 1000'],
    [-1, 'must be from 1 to 1000'],
  ])('refuses a page size of %i naming page_size', async (pageSize, reason) => {
    expect(await errorOf(client.listDevices({ pageSize }))).toEqual({
      code: 'InvalidArgument',
      message: `page_size ${reason} (0 means 100) (got ${pageSize})`,
    });
  });
});
