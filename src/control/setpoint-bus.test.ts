import { describe, expect, it } from 'vitest';
import { createLogger } from '../logger.ts';
import { createFakeClock } from '../clock.fixtures.ts';
import type { SetpointRecord } from '../dispatch/setpoint-events.ts';
import { createEventRecorder, createSetpointBus } from './setpoint-bus.ts';

const record = (i: number, phase: SetpointRecord['phase'] = 'VERIFIED'): SetpointRecord => ({
  setpointId: `s${i}`,
  deviceId: `d${i}`,
  site: 'a',
  phase,
  targetPowerKw: i,
  source: 'DISPATCH',
  at: new Date(0),
  elapsedMs: 0,
});

describe('setpoint bus', () => {
  it('delivers a 3000-event burst to a watcher that was not reading, in order, in batches of at most 500', async () => {
    const bus = createSetpointBus();
    const stop = new AbortController();
    const iterator = bus.subscribe(() => true, stop.signal)[Symbol.asyncIterator]();
    const first = iterator.next(); // subscribed: the generator runs up to its first wait
    bus.publish(record(0));
    const seen: number[] = ((await first).value as SetpointRecord[]).map((r) => r.targetPowerKw);
    for (let i = 1; i < 3000; i++) bus.publish(record(i));
    const sizes: number[] = [];
    while (seen.length < 3000) {
      const batch = (await iterator.next()).value as SetpointRecord[];
      sizes.push(batch.length);
      seen.push(...batch.map((r) => r.targetPowerKw));
    }
    expect(seen).toEqual(Array.from({ length: 3000 }, (_, i) => i));
    expect(Math.max(...sizes)).toBe(500);
    stop.abort();
    await iterator.return?.();
    expect(bus.subscribers).toBe(0);
  });

  it('drops the oldest events of a watcher beyond its queue bound, never blocking the publisher', async () => {
    const bus = createSetpointBus();
    const stop = new AbortController();
    const iterator = bus.subscribe(() => true, stop.signal, { maxQueued: 10, maxBatch: 100 })[Symbol.asyncIterator]();
    const first = iterator.next();
    bus.publish(record(0));
    await first;
    for (let i = 1; i <= 25; i++) bus.publish(record(i));
    const batch = (await iterator.next()).value as SetpointRecord[];
    expect(batch.map((r) => r.targetPowerKw)).toEqual([16, 17, 18, 19, 20, 21, 22, 23, 24, 25]);
    stop.abort();
    await iterator.return?.();
  });

  it('unsubscribes a watcher at its abort, even while its consumer never pulls again', async () => {
    const bus = createSetpointBus();
    const stop = new AbortController();
    const iterator = bus.subscribe(() => true, stop.signal)[Symbol.asyncIterator]();
    const first = iterator.next();
    bus.publish(record(0));
    await first; // suspended at its yield, as a stream whose client vanished
    stop.abort();
    for (let i = 1; i <= 20_000; i++) bus.publish(record(i));
    expect(bus.subscribers).toBe(0);
  });
});

describe('setpoint event recorder', () => {
  const log = createLogger('silent');

  it('inserts the events of 20 ms together, and at once when 500 wait', async () => {
    const clock = createFakeClock();
    const batches: number[][] = [];
    const recorder = createEventRecorder(
      (records) => {
        batches.push(records.map((r) => r.targetPowerKw));
        return Promise.resolve();
      },
      log,
      clock,
    );
    recorder.add(record(1));
    await clock.advance(10);
    recorder.add(record(2));
    await clock.advance(9);
    expect(batches).toEqual([]);
    await clock.advance(1);
    expect(batches).toEqual([[1, 2]]);
    for (let i = 0; i < 500; i++) recorder.add(record(i));
    await clock.advance(0);
    expect(batches.map((b) => b.length)).toEqual([2, 500]);
    expect(clock.pending()).toBe(0);
  });

  it('flushes what waits on stop, in order after inserts in flight', async () => {
    const clock = createFakeClock();
    const inserted: number[] = [];
    let release!: () => void;
    const first = new Promise<void>((resolve) => (release = resolve));
    let calls = 0;
    const recorder = createEventRecorder(
      async (records) => {
        if (calls++ === 0) await first;
        inserted.push(...records.map((r) => r.targetPowerKw));
      },
      log,
      clock,
    );
    recorder.add(record(1));
    await clock.advance(20);
    recorder.add(record(2));
    const stopped = recorder.stop();
    release();
    await stopped;
    expect(inserted).toEqual([1, 2]);
  });

  it('stamps events without a replica with its own and asks each insert to notify from it', async () => {
    const clock = createFakeClock();
    const calls: Array<{ replicas: Array<string | undefined>; notifyFrom: string | undefined }> = [];
    const recorder = createEventRecorder(
      (records, notifyFrom) => {
        calls.push({ replicas: records.map((r) => r.replica), notifyFrom });
        return Promise.resolve();
      },
      log,
      clock,
      { replicaId: 'r1' },
    );
    recorder.add(record(1));
    recorder.add({ ...record(2), replica: 'r0', epoch: 3, shard: 7 });
    await recorder.stop();
    expect(calls).toEqual([{ replicas: ['r1', 'r0'], notifyFrom: 'r1' }]);
    const plain: Array<string | undefined> = [];
    const unnamed = createEventRecorder(
      (records, notifyFrom) => {
        plain.push(notifyFrom, ...records.map((r) => r.replica));
        return Promise.resolve();
      },
      log,
      clock,
    );
    unnamed.add(record(3));
    await unnamed.stop();
    expect(plain).toEqual([undefined, undefined]);
  });
});
