import { describe, expect, it } from 'vitest';
import type { BessSpec } from '../registry/registered-device.ts';
import { validateSubmit, type SubmitInput } from './instruction.ts';

const NOW = new Date('2026-12-06T12:00:00Z');
const DAY = 86_400_000;
const battery = { ratedChargePowerKw: 100, ratedDischargePowerKw: 100 } as BessSpec;
const submit = (endMs: number, startMs = NOW.getTime() - 1_000): SubmitInput => ({
  requestId: 'r1',
  target: { site: 'a' },
  priority: 0,
  intervals: [{ startTime: new Date(startMs), endTime: new Date(endMs), command: { powerKw: 10 } }],
});

describe('the window of a dispatch instruction', () => {
  it('may end exactly 7 days ahead by default', () => {
    expect(() => validateSubmit(submit(NOW.getTime() + 7 * DAY), [battery], NOW)).not.toThrow();
  });

  it.each([
    ['a millisecond past 7 days', NOW.getTime() + 7 * DAY + 1],
    ['the last day of year 9999', Date.UTC(9999, 11, 31)],
  ])('is refused naming its end_time when it ends %s ahead', (_name, endMs) => {
    expect(() => validateSubmit(submit(endMs), [battery], NOW)).toThrow(
      `intervals[0].end_time must be at most 7 days ahead of now (got "${new Date(endMs).toISOString()}")`,
    );
  });

  it('follows the configured bound', () => {
    expect(() => validateSubmit(submit(NOW.getTime() + DAY + 1), [battery], NOW, DAY)).toThrow(
      'intervals[0].end_time must be at most 1 day ahead of now',
    );
    expect(() => validateSubmit(submit(NOW.getTime() + 30 * DAY), [battery], NOW, 30 * DAY)).not.toThrow();
  });
});
