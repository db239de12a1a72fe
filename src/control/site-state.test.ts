import { describe, expect, it } from 'vitest';
import type { Device } from '../registry/registered-device.ts';
import type { SiteInstruction } from './site-state.repository.ts';
import { siteReads, type SiteState } from './site-state.ts';

const T0 = Date.parse('2026-12-01T12:00:00Z');
const at = (s: number) => new Date(T0 + s * 1_000);
const device = (id: string): Device => ({
  id,
  name: id,
  type: 'bess',
  site: 'S',
  active: true,
  createdAt: at(-1_000),
  metadata: {},
});
const instruction = (id: string, target: SiteInstruction['target'], from: number, to: number, more: Partial<SiteInstruction> = {}) =>
  [
    id,
    {
      id,
      requestId: id,
      target,
      startTime: at(from),
      endTime: at(to),
      command: { powerKw: 1 },
      priority: 0,
      principal: 'trader',
      createdAt: at(-100),
      ...more,
    },
  ] as const;

/** Site S with batteries a and b; c is a battery of another site. */
const state: SiteState = {
  site: 'S',
  batteries: [device('a'), device('b')],
  meterIds: [],
  config: { site: 'S', avoidImport: false, avoidExport: false },
  overrides: new Map([
    ['a', { powerKw: 5, expireTime: at(50), reason: 'r', principal: 'op' }],
    ['c', { powerKw: 5, expireTime: at(5), reason: 'r', principal: 'op' }],
  ]),
  instructions: new Map([
    instruction('site-now', { site: 'S' }, -10, 100),
    instruction('site-later', { site: 'S' }, 200, 300),
    instruction('a-soon', { deviceId: 'a' }, 20, 80),
    instruction('b-cancelled', { deviceId: 'b' }, -12, 10, { cancelledAt: at(-1), cancelReason: 'no', cancelledBy: 'trader-2' }),
    // Named by b's stored source: b followed it at its old site, before it moved here.
    instruction('elsewhere', { site: 'T' }, -15, 30),
  ]),
  stored: new Map([
    ['a', { source: 'DISPATCH', instructionId: 'site-now', cause: 'instruction site-now' }],
    ['b', { source: 'DISPATCH', instructionId: 'b-cancelled', cause: 'instruction b-cancelled' }],
  ]),
};
const empty = { batteries: new Map(), meters: [] };

describe('a period read from a site state', () => {
  it("offers the planner only the site's and its batteries' instructions that are not cancelled", () => {
    expect(siteReads(state, empty).instructions.map((i) => i.id)).toEqual(['site-now', 'site-later', 'a-soon']);
  });

  it('tells each battery how the instruction of its stored source stands, cancelled ones with who cancelled them', () => {
    const [a, b] = siteReads(state, empty).batteries;
    expect(a!.storedInstruction).toEqual({ id: 'site-now', endTime: at(100) });
    expect(b!.storedInstruction).toEqual({
      id: 'b-cancelled',
      endTime: at(10),
      cancelledAt: at(-1),
      cancelledBy: 'trader-2',
      cancelReason: 'no',
    });
    expect(a!.override?.expireTime).toEqual(at(50));
    expect(b!.override).toBeUndefined();
  });

  it.each([
    [0, ['a', 'b'], at(20)],
    [0, ['b'], at(100)],
    [20, ['a'], at(50)],
    [50, ['a'], at(80)],
    [100, ['a', 'b'], at(200)],
    [300, ['a', 'b'], undefined],
    // The cancelled instruction's end, the other site's and battery c's override are no boundaries.
    [-20, ['b'], at(-10)],
    [1, ['b'], at(100)],
  ])('at %s s with batteries %j the next boundary is %s', (seconds, ids, expected) => {
    expect(siteReads(state, empty).nextBoundary(ids, at(seconds))).toEqual(expected);
  });
});
