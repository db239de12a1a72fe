import { describe, expect, it } from 'vitest';
import { MAX_PREPARING, preparingQueue, withPrepareTurn } from './prepare-limit.ts';

describe('turns to connect and prepare', () => {
  it('queues past the limit, lets a stopped waiter leave without running, and passes every turn on', async () => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const running = Array.from({ length: MAX_PREPARING }, (_, i) => withPrepareTurn(() => held.then(() => i)));
    expect(preparingQueue()).toBe(0);

    const ran: string[] = [];
    const stop = new AbortController();
    const stopped = withPrepareTurn(async () => ran.push('stopped'), stop.signal);
    const next = withPrepareTurn(async () => ran.push('next'));
    expect(preparingQueue()).toBe(2);

    stop.abort();
    expect(await stopped).toBeUndefined();
    expect(preparingQueue()).toBe(1);

    release();
    expect(await Promise.all(running)).toEqual(Array.from({ length: MAX_PREPARING }, (_, i) => i));
    expect(await next).toBe(1);
    expect(ran).toEqual(['next']);
    expect(preparingQueue()).toBe(0);
    // Every turn came back: a full round runs at once again.
    expect(await Promise.all(Array.from({ length: MAX_PREPARING }, () => withPrepareTurn(async () => true)))).toHaveLength(MAX_PREPARING);
    // A writer already stopped never queues.
    expect(await withPrepareTurn(async () => ran.push('late'), stop.signal)).toBeUndefined();
    expect(ran).toEqual(['next']);
  });
});
