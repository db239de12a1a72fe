import { describe, expect, it } from 'vitest';
import { createSemaphore, pumpStream } from './flow.ts';

/** A request stream of `n` numbers that counts how many were pulled. */
function counted(n: number) {
  const state = { pulled: 0 };
  async function* gen() {
    for (let i = 0; i < n; i++) {
      state.pulled++;
      yield i;
    }
  }
  return { state, stream: gen() };
}

describe('pumpStream', () => {
  it('never holds more than perStream messages of one stream, and yields every result', async () => {
    const { state, stream } = counted(50);
    const releases: (() => void)[] = [];
    let settled = 0;
    let worst = 0;
    const out = pumpStream(
      stream,
      (i) =>
        new Promise<number>((resolve) => {
          worst = Math.max(worst, state.pulled - settled);
          releases.push(() => {
            settled++;
            resolve(i);
          });
        }),
      { perStream: 3, global: createSemaphore(100) },
    );
    const results: number[] = [];
    const consume = (async () => {
      for await (const r of out) results.push(r);
    })();
    for (let step = 0; step < 1_000 && results.length < 50; step++) {
      await new Promise((r) => setImmediate(r));
      expect(state.pulled - settled).toBeLessThanOrEqual(3);
      releases.shift()?.();
    }
    await consume;
    expect(results.sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(worst).toBeLessThanOrEqual(3);
  });

  it('shares the global bound between streams', async () => {
    const global = createSemaphore(4);
    const gates: (() => void)[] = [];
    const streams = [counted(20), counted(20), counted(20)];
    const runs = streams.map(({ stream }) =>
      (async () => {
        const got: number[] = [];
        for await (const r of pumpStream(stream, (i) => new Promise<number>((resolve) => gates.push(() => resolve(i))), {
          perStream: 3,
          global,
        }))
          got.push(r);
        return got;
      })(),
    );
    for (let step = 0; (step < 2_000 && gates.length + global.inUse > 0) || step < 5; step++) {
      await new Promise((r) => setImmediate(r));
      expect(global.inUse).toBeLessThanOrEqual(4);
      gates.shift()?.();
    }
    const results = await Promise.all(runs);
    expect(results.map((r) => r.length)).toEqual([20, 20, 20]);
    expect(global.peak).toBe(4);
  });

  it('ends the output with the first failure once the messages in hand settled', async () => {
    const { stream } = counted(10);
    const out = pumpStream(
      stream,
      async (i) => {
        if (i === 2) throw new Error('database down');
        return i;
      },
      { perStream: 1, global: createSemaphore(10) },
    );
    const got: number[] = [];
    await expect(
      (async () => {
        for await (const r of out) got.push(r);
      })(),
    ).rejects.toThrow('database down');
    expect(got).toEqual([0, 1]);
  });
});
