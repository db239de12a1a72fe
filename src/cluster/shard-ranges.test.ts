import { describe, expect, it } from 'vitest';
import { shardRanges } from './shard-ranges.ts';

describe('shardRanges', () => {
  it.each([
    [[], ''],
    [[4], '4'],
    [[8, 0, 2, 1, 5, 7], '0-2,5,7-8'],
    [Array.from({ length: 256 }, (_, i) => i), '0-255'],
  ])('writes %j as %j', (shards, text) => {
    expect(shardRanges(shards)).toBe(text);
  });
});
