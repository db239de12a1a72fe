import { describe, expect, it } from 'vitest';
import { createLeaseDeadlines } from './lease-deadlines.ts';

describe('lease deadlines shared between threads', () => {
  it('keeps a deadline per shard under its epoch, and none once cleared', () => {
    const d = createLeaseDeadlines(4);
    d.set(2, 7, 1_500.25);
    expect(d.deadline(2, 7)).toBe(1_500.25);
    expect(d.deadline(2, 8)).toBe(0);
    expect(d.deadline(1, 7)).toBe(0);
    expect(d.held()).toEqual([{ shard: 2, epoch: 7 }]);
    d.clear(2);
    expect(d.deadline(2, 7)).toBe(0);
    expect(d.held()).toEqual([]);
  });

  it('extends only the tenure a renewal was sent for, only later, and never one already passed', () => {
    const d = createLeaseDeadlines(2);
    d.set(0, 3, 1_000);
    expect(d.extend(0, 3, 2_000, 900)).toBe(true);
    expect(d.deadline(0, 3)).toBe(2_000);
    // An older renewal answering late moves nothing back.
    expect(d.extend(0, 3, 1_500, 900)).toBe(false);
    expect(d.deadline(0, 3)).toBe(2_000);
    // Passed stays passed: a success seen after the deadline does not bring the shard back.
    expect(d.extend(0, 3, 5_000, 2_000)).toBe(false);
    expect(d.deadline(0, 3)).toBe(2_000);
    // The shard lost and claimed again under a new epoch: the old tenure's renewal leaves it alone.
    d.clear(0);
    d.set(0, 4, 2_100);
    expect(d.extend(0, 3, 9_000, 2_050)).toBe(false);
    expect(d.deadline(0, 4)).toBe(2_100);
    // A shard never held has nothing to extend.
    expect(d.extend(1, 3, 9_000, 0)).toBe(false);
  });

  it('is the same memory on both sides: a table made from another one’s memory sees its stores', () => {
    const main = createLeaseDeadlines(3);
    const other = createLeaseDeadlines(3, main.memory);
    main.set(1, 42, 10_000);
    expect(other.held()).toEqual([{ shard: 1, epoch: 42 }]);
    expect(other.extend(1, 42, 11_000, 9_000)).toBe(true);
    expect(main.deadline(1, 42)).toBe(11_000);
    main.clear(1);
    expect(other.deadline(1, 42)).toBe(0);
  });

  it('refuses a shard outside the table', () => {
    const d = createLeaseDeadlines(2);
    expect(() => d.set(2, 1, 100)).toThrow(/shard 2/);
    expect(d.extend(-1, 1, 100, 0)).toBe(false);
    expect(d.deadline(5, 1)).toBe(0);
  });
});
