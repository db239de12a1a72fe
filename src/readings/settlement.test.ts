import { describe, expect, it } from 'vitest';
import { londonMidnight, periodsInDay, settlementPeriodOf } from './settlement.ts';

describe('GB settlement periods', () => {
  it.each([
    ['2024-01-15T00:00:00Z', '2024-01-15', 1],
    ['2024-01-15T23:30:00Z', '2024-01-15', 48],
    ['2024-06-15T00:00:00Z', '2024-06-15', 3],
    ['2024-06-14T23:00:00Z', '2024-06-15', 1],
    ['2024-06-14T22:30:00Z', '2024-06-14', 48],
    // Spring: clocks go forward at 01:00 UTC; 00:00–01:00 UTC are periods 1–2, then 3 at 02:00 BST.
    ['2024-03-31T00:30:00Z', '2024-03-31', 2],
    ['2024-03-31T01:00:00Z', '2024-03-31', 3],
    ['2024-03-31T22:30:00Z', '2024-03-31', 46],
    ['2024-03-31T23:00:00Z', '2024-04-01', 1],
    // Autumn: local 01:00–02:00 happens twice; the day runs 2024-10-26T23:00Z to 2024-10-28T00:00Z.
    ['2024-10-26T23:00:00Z', '2024-10-27', 1],
    ['2024-10-27T00:30:00Z', '2024-10-27', 4],
    ['2024-10-27T01:00:00Z', '2024-10-27', 5],
    ['2024-10-27T23:30:00Z', '2024-10-27', 50],
    ['2024-10-28T00:00:00Z', '2024-10-28', 1],
  ])('the period starting %s is %s period %i', (start, date, period) => {
    expect(settlementPeriodOf(Date.parse(start))).toEqual({ date, period });
  });

  it.each([
    ['2024-01-15', 48],
    ['2024-03-31', 46],
    ['2024-10-27', 50],
    ['2025-03-30', 46],
    ['2025-10-26', 50],
  ])('%s has %i periods', (date, count) => {
    expect(periodsInDay(date)).toBe(count);
  });

  it('finds local midnight in GMT and in BST', () => {
    expect(new Date(londonMidnight('2024-01-15')).toISOString()).toBe('2024-01-15T00:00:00.000Z');
    expect(new Date(londonMidnight('2024-06-15')).toISOString()).toBe('2024-06-14T23:00:00.000Z');
  });
});
