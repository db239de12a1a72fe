import { describe, expect, it } from 'vitest';
import { createTokenBuckets } from './token-bucket.ts';

function clock() {
  let t = 1_000;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe('token buckets', () => {
  it('allows a burst, then refuses with the wait until the next token, then allows again after that wait', () => {
    const c = clock();
    const buckets = createTokenBuckets({ ratePerS: 4, burst: 3, now: c.now });
    expect([buckets.take('a'), buckets.take('a'), buckets.take('a')]).toEqual([{ ok: true }, { ok: true }, { ok: true }]);
    expect(buckets.take('a')).toEqual({ ok: false, retryAfterMs: 250 });
    c.advance(100);
    expect(buckets.take('a')).toEqual({ ok: false, retryAfterMs: 150 });
    c.advance(150);
    expect(buckets.take('a')).toEqual({ ok: true });
    expect(buckets.take('a')).toEqual({ ok: false, retryAfterMs: 250 });
  });

  it('takes a cost of several tokens at once, and says how long until the whole cost is there', () => {
    const c = clock();
    const buckets = createTokenBuckets({ ratePerS: 100, burst: 500, now: c.now });
    expect(buckets.take('a', 400)).toEqual({ ok: true });
    // 100 left: a cost of 300 needs 200 more, two seconds at 100 per second; nothing is taken.
    expect(buckets.take('a', 300)).toEqual({ ok: false, retryAfterMs: 2_000 });
    expect(buckets.take('a', 100)).toEqual({ ok: true });
    c.advance(3_000);
    expect(buckets.take('a', 300)).toEqual({ ok: true });
  });

  it('counts a cost above the burst as the burst, so it can pass once the bucket is full', () => {
    const c = clock();
    const buckets = createTokenBuckets({ ratePerS: 10, burst: 20, now: c.now });
    expect(buckets.take('a', 50)).toEqual({ ok: true });
    expect(buckets.take('a', 50)).toEqual({ ok: false, retryAfterMs: 2_000 });
    c.advance(2_000);
    expect(buckets.take('a', 50)).toEqual({ ok: true });
  });

  it('peeks at a bucket without taking from it or creating it', () => {
    const c = clock();
    const buckets = createTokenBuckets({ ratePerS: 4, burst: 2, now: c.now });
    expect(buckets.peek('a')).toEqual({ ok: true });
    expect(buckets.size).toBe(0);
    buckets.take('a');
    expect(buckets.peek('a')).toEqual({ ok: true });
    expect(buckets.peek('a')).toEqual({ ok: true });
    buckets.take('a');
    expect(buckets.peek('a')).toEqual({ ok: false, retryAfterMs: 250 });
    c.advance(250);
    expect(buckets.peek('a')).toEqual({ ok: true });
    expect(buckets.take('a')).toEqual({ ok: true });
    expect(buckets.peek('a')).toEqual({ ok: false, retryAfterMs: 250 });
  });

  it('keeps one bucket per key', () => {
    const c = clock();
    const buckets = createTokenBuckets({ ratePerS: 1, burst: 1, now: c.now });
    expect(buckets.take('a').ok).toBe(true);
    expect(buckets.take('a').ok).toBe(false);
    expect(buckets.take('b').ok).toBe(true);
  });

  it('refills to the burst and no further', () => {
    const c = clock();
    const buckets = createTokenBuckets({ ratePerS: 10, burst: 2, now: c.now });
    buckets.take('a');
    buckets.take('a');
    c.advance(60_000);
    expect([buckets.take('a').ok, buckets.take('a').ok, buckets.take('a').ok]).toEqual([true, true, false]);
  });

  it('drops buckets idle long enough to be full again, and never holds more than maxKeys', () => {
    const c = clock();
    const buckets = createTokenBuckets({ ratePerS: 10, burst: 10, maxKeys: 100, now: c.now });
    for (let i = 0; i < 50; i++) buckets.take(`idle-${i}`);
    expect(buckets.size).toBe(50);
    c.advance(1_000);
    buckets.take('fresh');
    expect(buckets.size).toBe(1);
    for (let i = 0; i < 1_000; i++) buckets.take(`busy-${i}`);
    expect(buckets.size).toBe(100);
  });
});
