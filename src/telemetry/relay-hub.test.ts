import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../errors.ts';
import { createRelayHub, mergeRelayed, type RelayedSetpoint, type RelayOutcome } from './relay-hub.ts';

const setpoint = (deviceId: string, kw: number, id = `${deviceId}-${kw}`): RelayedSetpoint => ({
  setpointId: id,
  deviceId,
  targetPowerKw: kw,
  release: false,
  expireAt: new Date(Date.now() + 10_000),
  epoch: 0,
});

const ignore = (): void => undefined;

/** A hand-fed async iterable: `push` a value, `end` it; a consumer waits for the next one. */
function feed<T>() {
  const queue: T[] = [];
  let done = false;
  let wake: (() => void) | undefined;
  return {
    push(value: T) {
      queue.push(value);
      wake?.();
    },
    end() {
      done = true;
      wake?.();
    },
    async *[Symbol.asyncIterator]() {
      for (let turn = 0; turn < 10_000; turn++) {
        if (queue.length > 0) {
          yield queue.shift()!;
          continue;
        }
        if (done) return;
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
    },
  };
}

describe('relay hub', () => {
  it('keeps one setpoint per battery in a stream queue, the latest, in the order of their last change', () => {
    const hub = createRelayHub();
    const stream = hub.open();
    stream.hello('site-a');
    expect(hub.send('site-a', setpoint('b1', 10), ignore)).toBe(true);
    expect(hub.send('site-a', setpoint('b2', 20), ignore)).toBe(true);
    expect(hub.send('site-a', setpoint('b1', 30), ignore)).toBe(true);
    expect(hub.stats()).toMatchObject({ queued: 2, replaced: 1, dropped: 0 });
    expect(stream.take().map((s) => [s.deviceId, s.targetPowerKw])).toEqual([
      ['b2', 20],
      ['b1', 30],
    ]);
    expect(stream.take()).toEqual([]);
    expect(hub.stats().queued).toBe(0);
  });

  it('bounds a queue: beyond the limit the oldest battery setpoint is dropped and counted', () => {
    const hub = createRelayHub({ maxQueuedPerStream: 3 });
    const stream = hub.open();
    stream.hello('site-a');
    for (let i = 0; i < 5; i++) hub.send('site-a', setpoint(`b${i}`, i), ignore);
    expect(hub.stats()).toMatchObject({ queued: 3, dropped: 2 });
    expect(stream.take().map((s) => s.deviceId)).toEqual(['b2', 'b3', 'b4']);
  });

  it('sends to the newest stream of a site, refuses a site with none, and tells watchers when a stream closes', () => {
    const hub = createRelayHub();
    expect(hub.send('site-a', setpoint('b1', 1), ignore)).toBe(false);
    expect(hub.connected('site-a')).toBe(false);
    const older = hub.open();
    const newer = hub.open();
    older.hello('site-a');
    newer.hello('site-a');
    const closings: string[] = [];
    const unwatch = hub.watch('site-a', () => closings.push(hub.connected('site-a') ? 'one left' : 'none left'));
    hub.send('site-a', setpoint('b1', 1), ignore);
    expect(newer.take()).toHaveLength(1);
    expect(older.take()).toHaveLength(0);
    newer.close();
    newer.close();
    hub.send('site-a', setpoint('b1', 2), ignore);
    expect(older.take().map((s) => s.targetPowerKw)).toEqual([2]);
    older.close();
    expect(closings).toEqual(['one left', 'none left']);
    expect(hub.send('site-a', setpoint('b1', 3), ignore)).toBe(false);
    unwatch();
    const again = hub.open();
    again.hello('site-a');
    again.close();
    expect(closings).toHaveLength(2);
  });

  it('tells its membership of every join and leave, with the streams of the site left open', () => {
    const told: string[] = [];
    const hub = createRelayHub({
      membership: { joined: (site) => told.push(`joined ${site}`), left: (site, remaining) => told.push(`left ${site} ${remaining}`) },
    });
    const a = hub.open();
    const b = hub.open();
    const silent = hub.open();
    a.hello('site-a');
    a.hello('site-a');
    b.hello('site-a');
    silent.close();
    a.close();
    a.close();
    b.close();
    expect(told).toEqual(['joined site-a', 'joined site-a', 'left site-a 1', 'left site-a 0']);
  });

  it('routes an outcome to the sender only from a stream of the same site, once', () => {
    const hub = createRelayHub();
    const a = hub.open();
    const b = hub.open();
    a.hello('site-a');
    b.hello('site-b');
    const heard: RelayOutcome[] = [];
    hub.send('site-a', setpoint('b1', 5, 'sp-1'), (o) => heard.push(o));
    b.outcome({ setpointId: 'sp-1', verified: true, reason: '' });
    expect(heard).toEqual([]);
    a.outcome({ setpointId: 'sp-1', verified: true, reason: '' });
    a.outcome({ setpointId: 'sp-1', verified: false, reason: 'again' });
    a.outcome({ setpointId: 'sp-unknown', verified: true, reason: '' });
    expect(heard).toEqual([{ setpointId: 'sp-1', verified: true, reason: '' }]);
    expect(hub.stats().awaitingOutcome).toBe(0);
  });

  it('forgets unanswered setpoints once they are past their expiry and the grace', () => {
    let now = 1_000_000;
    const hub = createRelayHub({ now: () => now, outcomeGraceMs: 500 });
    const stream = hub.open();
    stream.hello('site-a');
    for (let i = 0; i < 10; i++)
      hub.send('site-a', { ...setpoint('b1', i), setpointId: `old-${i}`, expireAt: new Date(now + 1000) }, ignore);
    expect(hub.stats().awaitingOutcome).toBe(10);
    now += 5_000;
    hub.send('site-a', { ...setpoint('b1', 99), setpointId: 'new', expireAt: new Date(now + 1000) }, ignore);
    expect(hub.stats().awaitingOutcome).toBe(1);
  });

  it('rejects a hello that changes the site or names none, naming hello.site', () => {
    const hub = createRelayHub();
    const stream = hub.open();
    expect(() => stream.hello(' ')).toThrow(InvalidArgumentError);
    stream.hello('site-a');
    stream.hello('site-a');
    expect(() => stream.hello('site-b')).toThrow(/hello\.site must not change within a stream/);
    expect(hub.stats().streams).toBe(1);
  });

  it('merges relayed setpoints into the responses without losing or reordering one ack, and closes the stream at the end', async () => {
    const hub = createRelayHub();
    const stream = hub.open();
    stream.hello('site-a');
    const acks = feed<string>();
    const out: string[] = [];
    const merged = mergeRelayed(acks, stream, (s) => `sp:${s.deviceId}:${s.targetPowerKw}`);
    const consuming = (async () => {
      for await (const m of merged) out.push(m);
    })();
    const settle = () => new Promise((resolve) => setImmediate(resolve));
    acks.push('ack1');
    await settle();
    // A silent ack side does not hold setpoints back.
    hub.send('site-a', setpoint('b1', 1), ignore);
    await settle();
    expect(out).toEqual(['ack1', 'sp:b1:1']);
    for (let i = 2; i <= 50; i++) {
      acks.push(`ack${i}`);
      if (i % 7 === 0) hub.send('site-a', setpoint('b1', i), ignore);
    }
    await settle();
    acks.end();
    await consuming;
    expect(out.filter((m) => m.startsWith('ack'))).toEqual(Array.from({ length: 50 }, (_, i) => `ack${i + 1}`));
    expect(out.filter((m) => m.startsWith('sp')).at(-1)).toBe('sp:b1:49');
    expect(hub.connected('site-a')).toBe(false);
  });

  it('sends the latest setpoint of a battery even when a newer one arrives while an earlier setpoint waits to go', async () => {
    const hub = createRelayHub();
    const stream = hub.open();
    stream.hello('site-a');
    const merged = mergeRelayed(feed<string>(), stream, (s) => `${s.deviceId}:${s.targetPowerKw}`);
    hub.send('site-a', setpoint('d1', 1), ignore);
    hub.send('site-a', setpoint('d2', 1), ignore);
    expect(await merged.next()).toEqual({ done: false, value: 'd1:1' });
    // d2's first setpoint has not gone yet (the consumer has not asked): the newer one replaces it.
    hub.send('site-a', setpoint('d2', 2), ignore);
    expect(await merged.next()).toEqual({ done: false, value: 'd2:2' });
    await merged.return(undefined);
  });

  it('wakes a merge waiting for setpoints only through its newest wait', async () => {
    const hub = createRelayHub();
    const stream = hub.open();
    stream.hello('site-a');
    const first = stream.ready();
    const second = stream.ready();
    // Each wait is its own promise (a shared one collected a reaction per ack), and a
    // setpoint wakes the wait in progress.
    expect(second).not.toBe(first);
    hub.send('site-a', setpoint('d1', 1), ignore);
    await expect(second).resolves.toBeUndefined();
    stream.close();
  });

  it('closes the stream when the consumer stops early', async () => {
    const hub = createRelayHub();
    const stream = hub.open();
    stream.hello('site-a');
    const acks = feed<string>();
    const merged = mergeRelayed(acks, stream, (s) => s.deviceId);
    hub.send('site-a', setpoint('b1', 1), ignore);
    expect(await merged.next()).toEqual({ done: false, value: 'b1' });
    await merged.return(undefined);
    expect(hub.connected('site-a')).toBe(false);
  });
});
