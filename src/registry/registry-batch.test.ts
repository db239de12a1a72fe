import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../errors.ts';
import type { DeviceInput, JsonValue } from './registered-device.ts';
import { batchDigest, checkBatch, planBatch, predictResult } from './registry-batch.ts';
import type { NameMatch } from './registry-batch.repository.ts';

/** The pure parts of a batch upsert: its checks, the matching by (site, name) and the retry digest. */

const modbus = { host: '10.0.0.1', port: 502, unitId: 1, registerProfile: 'sunspec' as const, pollingIntervalMs: 1_000 };
const meter = (name: string, site = 'site-a', metadata: DeviceInput['metadata'] = {}): DeviceInput => ({
  name,
  site,
  type: 'meter',
  metadata,
  meter: { modbus },
});

let ids = 0;
/** A registered device named `name` at site-a; `same` says whether its metadata equals the batch's. */
const registered = (name: string, fields: Partial<NameMatch> = {}): NameMatch => ({
  id: `00000000-0000-4000-8000-${String(++ids).padStart(12, '0')}`,
  site: 'site-a',
  name,
  type: 'meter',
  active: true,
  created_at: new Date('2026-01-01T00:00:00Z'),
  same: true,
  ...fields,
});

function refusal(run: () => unknown): { field: string; message: string } {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidArgumentError);
    return { field: (err as InvalidArgumentError).field, message: (err as Error).message };
  }
  throw new Error('expected a refusal');
}

describe('checkBatch', () => {
  it('accepts the same name at two sites and refuses it twice at one, naming both positions', () => {
    expect(() => checkBatch([meter('m'), meter('m', 'site-b')])).not.toThrow();
    expect(refusal(() => checkBatch([meter('m'), meter('n'), meter('m')]))).toEqual({
      field: 'devices[2].name',
      message: 'devices[2].name repeats devices[0] at site "site-a" (a batch names each device once) (got "m")',
    });
  });

  it('names the first bad device by its position', () => {
    expect(refusal(() => checkBatch([meter('ok'), { ...meter('bad'), meter: { modbus: { ...modbus, port: 0 } } }])).field).toBe(
      'devices[1].meter.modbus.endpoint.port',
    );
  });
});

describe('planBatch', () => {
  it('creates the unmatched, leaves the identical alone and updates the different', () => {
    const plan = planBatch(
      [meter('new'), meter('same'), meter('changed')],
      [registered('same'), registered('changed', { same: false }), registered('other')],
    );
    expect(plan.map((p) => [p.input.name, p.outcome])).toEqual([
      ['new', 'created'],
      ['same', 'unchanged'],
      ['changed', 'updated'],
    ]);
  });

  it('prefers the active device, else reactivates the most recently created inactive one', () => {
    const older = registered('m', { active: false, created_at: new Date('2026-01-01T00:00:00Z') });
    const newer = registered('m', { active: false, created_at: new Date('2026-02-01T00:00:00Z') });
    const active = registered('m', { active: null, created_at: new Date('2025-01-01T00:00:00Z') });
    expect(planBatch([meter('m')], [older, newer, active])[0]).toMatchObject({ outcome: 'unchanged', match: active });
    expect(planBatch([meter('m')], [older, newer])[0]).toMatchObject({ outcome: 'updated', match: newer });
  });

  it('refuses a change of type and a name shared by several active devices', () => {
    const battery = registered('m', { type: 'bess' });
    expect(refusal(() => planBatch([meter('x'), meter('m')], [battery])).message).toBe(
      `devices[1].type cannot change from bess (device ${battery.id} has this site and name) - ` +
        'deactivate it or use another name (got "meter")',
    );
    const retired = registered('m', { type: 'bess', active: false });
    expect(refusal(() => planBatch([meter('m')], [retired])).message).toBe(
      `devices[0].type cannot change from bess (inactive device ${retired.id} has this site and name) - use another name (got "meter")`,
    );
    const [a, b] = [registered('m'), registered('m')];
    expect(refusal(() => planBatch([meter('m')], [a, b, registered('m', { active: false })])).message).toBe(
      `devices[0].name matches 2 active devices at site "site-a" (${a.id} ${b.id}) - deactivate all but one (got "m")`,
    );
  });

  it('predicts devices to create with an empty id and matched ones under their ids', () => {
    const match = registered('m', { active: false });
    const result = predictResult(planBatch([meter('m'), meter('n')], [match]));
    expect(result).toMatchObject({ created: 1, updated: 1, unchanged: 0, validateOnly: true });
    expect(result.results.map((r) => [r.device.id, r.device.active, r.device.createdAt])).toEqual([
      [match.id, true, match.created_at],
      ['', true, undefined],
    ]);
  });
});

describe('batchDigest', () => {
  it('ignores the key order of metadata and register maps, and nothing else', () => {
    const map = (points: JsonValue) => ({
      ...meter('m'),
      meter: { modbus: { ...modbus, registerProfile: 'custom' as const, registerMap: { points, name: 'x' } } },
    });
    const digest = batchDigest([meter('m', 'site-a', { a: 1, b: { c: 2, d: [1, { e: 3, f: 4 }] } })]);
    expect(batchDigest([meter('m', 'site-a', { b: { d: [1, { f: 4, e: 3 }], c: 2 }, a: 1 })])).toBe(digest);
    expect(batchDigest([meter('m', 'site-a', { a: 1, b: { c: 2, d: [{ e: 3, f: 4 }, 1] } })])).not.toBe(digest);
    expect(batchDigest([meter('m', 'site-b', { a: 1, b: { c: 2, d: [1, { e: 3, f: 4 }] } })])).not.toBe(digest);
    const points = [{ name: 'p', address: 1, type: 'uint16' }];
    expect(batchDigest([map(points)])).toBe(batchDigest([map([{ type: 'uint16', address: 1, name: 'p' }])]));
    expect(batchDigest([map(points)])).not.toBe(batchDigest([map([{ name: 'p', address: 2, type: 'uint16' }])]));
    expect(batchDigest([meter('a'), meter('b')])).not.toBe(batchDigest([meter('b'), meter('a')]));
  });
});
