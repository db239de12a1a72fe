import { describe, expect, it } from 'vitest';
import { createDeviceCache } from './device-cache.ts';

describe('device cache', () => {
  it('asks once per id within the TTL, remembers unknown ids too, and asks again after it', async () => {
    let clock = 0;
    const asked: string[][] = [];
    const cache = createDeviceCache({
      lookup: async (ids) => {
        asked.push([...ids]);
        return new Map(ids.filter((id) => id === 'a').map((id) => [id, { type: 'meter', active: true, site: 's' }]));
      },
      ttlMs: 1_000,
      now: () => clock,
    });
    expect([...(await cache.get(['a', 'b'])).keys()]).toEqual(['a']);
    await cache.get(['a', 'b']);
    clock = 999;
    await cache.get(['b']);
    expect(asked).toEqual([['a', 'b']]);
    clock = 1_001;
    await cache.get(['a']);
    expect(asked).toEqual([['a', 'b'], ['a']]);
  });
});
