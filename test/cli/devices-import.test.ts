import { Code, ConnectError } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeviceType, RegisterProfile, UpsertOutcome } from '../../gen/powerplane/v1/devices_pb.ts';
import { CSV_COLUMNS, devicesFromCsv } from '../../src/cli/device-csv.ts';
import { DeviceFileError, type DeviceFile } from '../../src/cli/device-file.ts';
import { devicesFromJsonl } from '../../src/cli/device-jsonl.ts';
import { exportDevices, listAllDevices } from '../../src/cli/devices-export.ts';
import { importDevices, summary, type ImportOptions } from '../../src/cli/devices-import.ts';
import { serveRegistry, SITE_A, type RegistryClient, type RegistryUnderTest } from '../../src/registry/registry.service.fixtures.ts';
import { ENGINES } from '../support/databases.ts';

/**
 * `devices import` and `devices export` as functions over the real DeviceRegistryService
 * in memory, on both databases: what an import creates, updates and leaves alone, dry
 * runs, refusals named by line and column, imports of several requests, retries, and the
 * round trip through export.
 */

const MAP = {
  name: 'acme-bc500',
  points: [
    { name: 'soePercent', address: 100, type: 'uint16', scale: 0.1, unit: '%' },
    { name: 'targetPower', address: 200, type: 'int32', unit: 'kW', access: 'RW' },
    { name: 'timeout', address: 210, type: 'uint16', access: 'RW' },
  ],
  control: { powerPoint: 'targetPower', timeoutPoint: 'timeout' },
};

/** A fleet CSV of `count` batteries (and one meter) at `site`, with `edit` applied to each battery's cells. */
function fleetCsv(site: string, count: number, edit: (cells: string[], i: number) => void = () => undefined): string {
  let text = `${CSV_COLUMNS.join(',')}\n`;
  for (let i = 0; i < count; i++) {
    const cells = [`bess-${i}`, site, 'bess', '10.0.0.1', String(1502 + Math.floor(i / 247)), String((i % 247) + 1), 'sunspec'];
    cells.push('250', '250', '500', '10', '90', '2', '50', '30', 'false');
    edit(cells, i);
    text += `${cells.join(',')}\n`;
  }
  const meter = [`meter-0`, site, 'meter', '10.0.0.2', '502', '1', ...Array<string>(CSV_COLUMNS.length - 6).fill('')];
  return `${text}${meter.join(',')}\n`;
}

const csv = (text: string): DeviceFile => devicesFromCsv(text, { file: 'fleet.csv', registerMaps: {}, readRegisterMap: () => ({}) });

const run = (client: RegistryClient, file: DeviceFile, options: Partial<ImportOptions> = {}) =>
  importDevices(client, file, 'fleet.csv', { dryRun: false, retryDelayMs: 0, ...options });

/** What importing `file` throws, as a DeviceFileError. */
async function refusal(promise: Promise<unknown>): Promise<DeviceFileError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DeviceFileError);
  return err as DeviceFileError;
}

describe.each(ENGINES)('devices import and export on %s', (engine) => {
  let registry: RegistryUnderTest;
  let client: RegistryClient;

  beforeAll(async () => {
    registry = await serveRegistry(engine);
    client = registry.client;
  });
  afterAll(() => registry?.close());

  const devicesAt = (site: string, all = false) => listAllDevices(client, { site, all });

  it('creates a fleet, then says nothing changed when the same file comes again', async () => {
    const file = csv(fleetCsv('fleet', 30));
    const first = await run(client, file);
    expect(first).toMatchObject({ created: 31, updated: 0, unchanged: 0, requests: 1, dryRun: false });
    expect(summary(first)).toBe('31 devices: 31 created, 0 updated, 0 unchanged');
    expect(first.devices.map((d) => d.line)).toEqual(Array.from({ length: 31 }, (_, i) => i + 2));

    const stored = await devicesAt('fleet');
    expect(stored).toHaveLength(31);
    const bess = stored.find((d) => d.name === 'bess-7')!;
    expect(bess.spec.case === 'bess' && bess.spec.value).toMatchObject({
      ratedChargePowerKw: 250,
      capacityKwh: 500,
      minSoePercent: 10,
      maxSoePercent: 90,
      inverterBlockCount: 2,
      modbus: { endpoint: { host: '10.0.0.1', port: 1502, unitId: 8 }, registerProfile: RegisterProfile.SUNSPEC, pollingIntervalMs: 1000 },
    });
    // Empty cells took the API's defaults.
    const meter = stored.find((d) => d.name === 'meter-0')!;
    expect(meter.type).toBe(DeviceType.METER);

    const again = await run(client, file);
    expect(again).toMatchObject({ created: 0, updated: 0, unchanged: 31 });
    expect(summary(again)).toBe('nothing changed: all 31 devices are registered as the file says');
    expect(await devicesAt('fleet')).toEqual(stored);
  });

  it('updates the rows that changed and reactivates a deactivated device, leaving the rest alone', async () => {
    await run(client, csv(fleetCsv('changes', 5)));
    const before = await devicesAt('changes');
    const gone = before.find((d) => d.name === 'bess-4')!;
    await client.deactivateDevice({ id: gone.id });
    const result = await run(client, csv(fleetCsv('changes', 5, (cells, i) => i === 1 && (cells[9] = '750'))));
    expect(result).toMatchObject({ created: 0, updated: 2, unchanged: 4 });
    expect(result.devices.filter((d) => d.outcome === UpsertOutcome.UPDATED).map((d) => d.device.name)).toEqual(['bess-1', 'bess-4']);
    const after = await devicesAt('changes');
    expect(after.map((d) => d.id)).toEqual(before.map((d) => d.id));
    const changed = after.find((d) => d.name === 'bess-1')!;
    expect(changed.spec.case === 'bess' && changed.spec.value.capacityKwh).toBe(750);
    expect(after.find((d) => d.name === 'bess-4')?.active).toBe(true);
  });

  it('writes nothing in a dry run, and reports what it would do', async () => {
    await run(client, csv(fleetCsv('dry', 2)));
    const before = await devicesAt('dry');
    const result = await run(client, csv(fleetCsv('dry', 4, (cells, i) => i === 0 && (cells[3] = '10.9.9.9'))), { dryRun: true });
    expect(result).toMatchObject({ dryRun: true, created: 2, updated: 1, unchanged: 2 });
    expect(summary(result)).toBe('dry run, nothing written: 5 devices would be 2 created, 1 updated, 2 unchanged');
    expect(result.devices.find((d) => d.outcome === UpsertOutcome.CREATED)?.device.id).toBe('');
    expect(await devicesAt('dry')).toEqual(before);
  });

  it("names the line and column of a device the server refuses, and writes none of the file's devices", async () => {
    const file = csv(fleetCsv('refused', 6, (cells, i) => i === 3 && (cells[10] = '95')));
    const err = await refusal(run(client, file));
    expect(err.problems).toEqual([{ where: 'line 5, column min_soe_percent', message: 'must not be above max_soe_percent (90) (got 95)' }]);
    expect(err.message).toContain('nothing imported');
    expect(await devicesAt('refused')).toEqual([]);
  });

  it('names the field inside a custom map the server refuses', async () => {
    const bad = { ...MAP, points: [{ ...MAP.points[0], type: 'uint17' }, ...MAP.points.slice(1)] };
    const map = JSON.stringify(bad).replaceAll('"', '""');
    const header = 'name,site,type,host,rated_charge_power_kw,rated_discharge_power_kw,capacity_kwh,register_map';
    const text = `${header}\na,refused-map,bess,h,1,1,1,"${map}"\n`;
    const err = await refusal(run(client, csv(text)));
    expect(err.problems[0]!.where).toBe('line 2, column register_map');
    expect(err.problems[0]!.message).toMatch(/^bess\.modbus\.register_map\.points\[0\]\.type /);
  });

  it('refuses a file that names a device twice, before any request', async () => {
    const text = fleetCsv('twice', 3).replace('bess-2,', 'bess-0,');
    const err = await refusal(run(client, csv(text)));
    expect(err.problems).toEqual([{ where: 'line 4, column name', message: 'site "twice", name "bess-0" repeats line 2' }]);
  });

  it('sends a large file in several requests, checking all of them before writing any', async () => {
    const bad = csv(fleetCsv('chunks', 9, (cells, i) => i === 8 && (cells[7] = '0')));
    const err = await refusal(run(client, bad, { batchDevices: 3 }));
    expect(err.problems[0]!.where).toBe('line 10, column rated_charge_power_kw');
    expect(await devicesAt('chunks')).toEqual([]);

    const result = await run(client, csv(fleetCsv('chunks', 9)), { batchDevices: 3 });
    expect(result).toMatchObject({ requests: 4, created: 10 });
    expect(summary(result)).toBe('10 devices: 10 created, 0 updated, 0 unchanged in 4 requests');
    expect(await devicesAt('chunks')).toHaveLength(10);
  });

  it('retries a request whose answer was lost with the same request id, so the first answer comes back', async () => {
    let calls = 0;
    const flaky: RegistryClient = {
      ...client,
      async batchUpsertDevices(req, options) {
        const res = await client.batchUpsertDevices(req, options);
        // The batch is written; the answer is lost on the way back.
        if (++calls === 1) throw new ConnectError('connection reset', Code.Unavailable);
        return res;
      },
    };
    const result = await run(flaky, csv(fleetCsv('retried', 3)));
    expect(calls).toBe(2);
    // A new request would have found the devices and said unchanged.
    expect(result).toMatchObject({ created: 4, unchanged: 0 });
    expect(await devicesAt('retried')).toHaveLength(4);
  });

  it('says which lines were written when a later request of a large file fails, and importing again finishes it', async () => {
    let writes = 0;
    const failing: RegistryClient = {
      ...client,
      async batchUpsertDevices(req, options) {
        // The second request that writes fails every attempt: the server went away mid-import.
        if (!req.validateOnly && ++writes >= 2) throw new ConnectError('connection refused', Code.Unavailable);
        return client.batchUpsertDevices(req, options);
      },
    };
    const file = csv(fleetCsv('halfway', 5));
    const err = await run(failing, file, { batchDevices: 3 }).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err?.message).toBe(
      'fleet.csv: request 2 of 2 failed ([unavailable] connection refused); the devices up to line 4 (3 devices) were written, ' +
        'the rest not. Importing the file again finishes the import: what was written then counts as unchanged',
    );
    expect(writes).toBe(4); // one request written, then three attempts of the second
    expect((await devicesAt('halfway')).map((d) => d.name).sort()).toEqual(['bess-0', 'bess-1', 'bess-2']);

    const again = await run(client, file, { batchDevices: 3 });
    expect(again).toMatchObject({ created: 3, unchanged: 3 });
    expect(await devicesAt('halfway')).toHaveLength(6);
  });

  it("waits the server's retry-after when over its rate limit, and does not retry a request that is too large", async () => {
    const calls: number[] = [];
    const limited: RegistryClient = {
      ...client,
      async batchUpsertDevices(req, options) {
        calls.push(Date.now());
        if (calls.length === 1) throw new ConnectError('rate limit', Code.ResourceExhausted, { 'retry-after': '1' });
        return client.batchUpsertDevices(req, options);
      },
    };
    const result = await run(limited, csv(fleetCsv('limited', 2)));
    expect(result).toMatchObject({ created: 3 });
    expect(calls).toHaveLength(2);
    // retry-after (1 s) rather than retryDelayMs (0 here) was waited.
    expect(calls[1]! - calls[0]!).toBeGreaterThanOrEqual(990);

    let tooLarge = 0;
    const oversized: RegistryClient = {
      ...client,
      batchUpsertDevices() {
        tooLarge++;
        return Promise.reject(new ConnectError('message larger than 4194304 bytes', Code.ResourceExhausted));
      },
    };
    const err = await run(oversized, csv(fleetCsv('oversized', 1))).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((err as ConnectError).code).toBe(Code.ResourceExhausted);
    expect(tooLarge).toBe(1);
    expect(await devicesAt('oversized')).toEqual([]);
  });

  it('is refused to a caller bound to a site', async () => {
    const err = await run(registry.api.as(SITE_A).registry, csv(fleetCsv('site-a', 1))).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.PermissionDenied);
    expect(await devicesAt('site-a')).toEqual([]);
  });

  it('exports CSV and JSON lines that import back with nothing changed, custom maps and metadata included', async () => {
    const columns = 'name,site,type,host,profile,register_map,polling_interval_ms,metadata,relay,rated_charge_power_kw,capacity_kwh';
    const map = JSON.stringify(MAP).replaceAll('"', '""');
    const text =
      `${columns},rated_discharge_power_kw\n` +
      `acme,round,bess,acme.local,custom,"${map}",250,"{""location"": ""WLCE""}",true,100,200,100\n` +
      'plain,round,meter,m.local,sunspec,,5000,"{""tags"": [""a"", 1, null]}",,,,\n';
    expect(await run(client, csv(text))).toMatchObject({ created: 2 });
    const exported = await exportDevices(client, { site: 'round', format: 'csv' });
    expect(exported.split('\n')[0]).toBe(`${CSV_COLUMNS.join(',')},register_map,polling_interval_ms,metadata`);
    expect(await run(client, csv(exported))).toMatchObject({ created: 0, updated: 0, unchanged: 2 });

    const jsonl = await exportDevices(client, { site: 'round', format: 'jsonl' });
    expect(jsonl.trim().split('\n')).toHaveLength(2);
    expect(await run(client, devicesFromJsonl(jsonl, { file: 'f', registerMaps: {} }))).toMatchObject({ unchanged: 2 });
  });
});
