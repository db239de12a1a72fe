import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { create, toBinary } from '@bufbuild/protobuf';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeviceSchema } from '../../gen/powerplane/v1/devices_pb.ts';
import { readRegisterMapFlags, registerMapFileReader, type SourceDevice } from './device-file.ts';
import { fleetFormat, splitBatches, summary } from './devices-import.ts';
import { UsageError } from './usage.ts';

const source = (i: number, metadataBytes = 0): SourceDevice => ({
  line: i + 2,
  device: create(DeviceSchema, { name: `d-${i}`, site: 's', ...(metadataBytes ? { metadata: { pad: 'x'.repeat(metadataBytes) } } : {}) }),
});

describe('splitBatches', () => {
  it('keeps the file order in requests of at most the given number of devices', () => {
    const devices = Array.from({ length: 7 }, (_, i) => source(i));
    const batches = splitBatches(devices, 3, 1 << 20);
    expect(batches.map((b) => b.map((s) => s.line))).toEqual([[2, 3, 4], [5, 6, 7], [8]]);
  });

  it('closes a request before it passes the byte budget, and sends a device larger than it alone', () => {
    const small = toBinary(DeviceSchema, source(0, 1000).device).length + 6;
    const devices = [source(0, 1000), source(1, 1000), source(2, 1000), source(3, 5000), source(4, 1000)];
    const batches = splitBatches(devices, 10_000, 2 * small);
    expect(batches.map((b) => b.map((s) => s.line))).toEqual([[2, 3], [4], [5], [6]]);
  });

  it.each([0, 10_001, 1.5])('refuses %s devices per request', (n) => {
    expect(() => splitBatches([source(0)], n, 1 << 20)).toThrow(RangeError);
  });
});

describe('summary', () => {
  const result = { dryRun: false, requests: 1, created: 2, updated: 1, unchanged: 3, devices: [] };
  it.each([
    [result, '6 devices: 2 created, 1 updated, 3 unchanged'],
    [{ ...result, requests: 2 }, '6 devices: 2 created, 1 updated, 3 unchanged in 2 requests'],
    [{ ...result, created: 0, updated: 0 }, 'nothing changed: all 3 devices are registered as the file says'],
    [{ ...result, dryRun: true }, 'dry run, nothing written: 6 devices would be 2 created, 1 updated, 3 unchanged'],
  ])('says %j as %s', (r, line) => {
    expect(summary(r)).toBe(line);
  });
});

describe('fleetFormat', () => {
  it.each([
    [undefined, 'fleet.csv', 'csv'],
    [undefined, 'fleet.jsonl', 'jsonl'],
    [undefined, 'FLEET.NDJSON', 'jsonl'],
    [undefined, '-', 'csv'],
    ['jsonl', 'fleet.csv', 'jsonl'],
  ])('takes --format %s with --file %s as %s', (flag, file, format) => {
    expect(fleetFormat(flag, file)).toBe(format);
  });

  it('refuses another format, naming the flag', () => {
    expect(() => fleetFormat('xlsx', 'f')).toThrow(new UsageError('--format must be csv or jsonl (got "xlsx")'));
  });
});

describe('register map files', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'pp-maps-'));
    await writeFile(path.join(dir, 'a.json'), '{"name": "a", "points": []}');
    await writeFile(path.join(dir, 'b.json'), '{"name": "b", "points": []}');
    await writeFile(path.join(dir, 'list.json'), '[]');
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('reads --register-map for both types, or per type', () => {
    const a = path.join(dir, 'a.json');
    const b = path.join(dir, 'b.json');
    expect(readRegisterMapFlags([a])).toEqual({ bess: { name: 'a', points: [] }, meter: { name: 'a', points: [] } });
    expect(readRegisterMapFlags([`bess=${a}`, `meter=${b}`])).toEqual({
      bess: { name: 'a', points: [] },
      meter: { name: 'b', points: [] },
    });
    expect(() => readRegisterMapFlags([a, `meter=${b}`])).toThrow('--register-map gives the meter map twice');
    expect(() => readRegisterMapFlags([path.join(dir, 'list.json')])).toThrow('must hold a JSON object (got an array)');
    expect(() => readRegisterMapFlags([`bess=${path.join(dir, 'none.json')}`])).toThrow(/cannot be read \(ENOENT\)/);
  });

  it("reads a register_map cell's file relative to the fleet file's folder", () => {
    const read = registerMapFileReader(path.join(dir, 'fleet.csv'));
    expect(read('a.json')).toEqual({ name: 'a', points: [] });
    expect(() => read('none.json')).toThrow(`${path.join(dir, 'none.json')}: cannot be read (ENOENT)`);
  });
});
