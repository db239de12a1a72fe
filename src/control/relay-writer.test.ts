import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { SetpointEvent } from '../modbus/types.ts';
import { createRelayHub, type RelayHub, type RelayStream } from '../telemetry/relay-hub.ts';
import { createRelayWriter } from './relay-writer.ts';

const PERIOD = 1000;

describe('relay writer', () => {
  let hub: RelayHub;
  let events: SetpointEvent[];
  const writer = () =>
    createRelayWriter({ deviceId: 'bess-1', site: 'site-a', channel: hub, refreshIntervalMs: PERIOD, onEvent: (e) => events.push(e) });
  const phases = () => events.map((e) => `${e.seq}:${e.phase}`);
  const agent = (): RelayStream => {
    const stream = hub.open();
    stream.hello('site-a');
    return stream;
  };

  beforeEach(() => {
    vi.useFakeTimers();
    hub = createRelayHub();
    events = [];
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('fails a setpoint at once when no agent of the site is connected', async () => {
    const w = writer();
    const seq = w.setTarget(25);
    // Reported after setTarget returned, so the caller knows the seq first.
    expect(phases()).toEqual([`${seq}:requested`]);
    await Promise.resolve();
    expect(phases()).toEqual([`${seq}:requested`, `${seq}:failed`]);
    expect(events[1]).toMatchObject({ willRetry: false, targetPowerKw: 25 });
    expect(events[1]!.reason).toBe('unavailable (no agent connected to any replica for site site-a)');
    await w.stop();
  });

  it('sends each message under the epoch of the lease at that moment, and fails without sending while there is none', async () => {
    const stream = agent();
    let epoch: number | undefined = 4;
    const w = createRelayWriter({
      deviceId: 'bess-1',
      site: 'site-a',
      channel: hub,
      refreshIntervalMs: PERIOD,
      onEvent: (e) => events.push(e),
      epoch: () => epoch,
    });
    const seq = w.setTarget(12);
    const [first] = stream.take();
    expect(first).toMatchObject({ targetPowerKw: 12, epoch: 4 });
    stream.outcome({ setpointId: first!.setpointId, verified: true, reason: '' });
    epoch = 5;
    vi.advanceTimersByTime(PERIOD);
    expect(stream.take()).toMatchObject([{ targetPowerKw: 12, epoch: 5 }]);
    epoch = undefined;
    vi.advanceTimersByTime(PERIOD);
    await Promise.resolve();
    expect(stream.take()).toEqual([]);
    expect(events.at(-1)).toMatchObject({
      seq,
      phase: 'failed',
      reason: 'unavailable (this replica holds no lease on the shard of site site-a)',
    });
    await w.stop();
  });

  it('sends epoch 0 when it is given no lease epoch', async () => {
    const stream = agent();
    const w = writer();
    w.setTarget(3);
    expect(stream.take()).toMatchObject([{ targetPowerKw: 3, epoch: 0 }]);
    await w.stop();
  });

  it(
    'sends the setpoint with an expiry of two periods, reports it verified on the agent answer, ' + 'and refreshes it every period',
    async () => {
      const stream = agent();
      const w = writer();
      const seq = w.setTarget(-40);
      const [first] = stream.take();
      expect(first).toMatchObject({ deviceId: 'bess-1', targetPowerKw: -40, release: false });
      expect(first!.expireAt.getTime()).toBe(Date.now() + 2 * PERIOD);
      expect(phases()).toEqual([`${seq}:requested`]);
      stream.outcome({ setpointId: first!.setpointId, verified: true, reason: '' });
      expect(phases()).toEqual([`${seq}:requested`, `${seq}:written`, `${seq}:verified`]);
      expect(events[2]!.reason).toBe('relayed through the agent of site site-a');

      for (let period = 1; period <= 3; period++) {
        vi.advanceTimersByTime(PERIOD);
        const [refresh] = stream.take();
        expect(refresh).toMatchObject({ targetPowerKw: -40, release: false });
        expect(refresh!.setpointId).not.toBe(first!.setpointId);
        expect(refresh!.setpointId.split('.')[0]).toBe(first!.setpointId.split('.')[0]);
        stream.outcome({ setpointId: refresh!.setpointId, verified: true, reason: '' });
      }
      // Refreshes are the heartbeat: they add no events.
      expect(events).toHaveLength(3);

      await w.stop();
      vi.advanceTimersByTime(5 * PERIOD);
      expect(stream.take()).toEqual([]);
    },
  );

  it('fails when the agent cannot apply the latest message, but not for one a refresh superseded', async () => {
    const stream = agent();
    const w = writer();
    const seq = w.setTarget(10);
    const [first] = stream.take();
    vi.advanceTimersByTime(PERIOD);
    const [second] = stream.take();
    stream.outcome({ setpointId: first!.setpointId, verified: false, reason: 'superseded by setpoint 2' });
    expect(phases()).toEqual([`${seq}:requested`]);
    stream.outcome({ setpointId: second!.setpointId, verified: false, reason: 'device fault' });
    expect(phases()).toEqual([`${seq}:requested`, `${seq}:failed`]);
    expect(events[1]!.reason).toBe('the agent of site site-a could not apply it (device fault)');
    // A failed setpoint is not refreshed: the controller plans it again.
    vi.advanceTimersByTime(2 * PERIOD);
    expect(stream.take()).toEqual([]);
    await w.stop();
  });

  it('fails a held setpoint when the site loses its agent stream, and carries on over another stream of the site', async () => {
    const older = agent();
    const newer = agent();
    const w = writer();
    const seq = w.setTarget(30);
    const [first] = newer.take();
    newer.outcome({ setpointId: first!.setpointId, verified: true, reason: '' });
    newer.close();
    // Re-sent at once over the stream that is left.
    expect(older.take()).toMatchObject([{ targetPowerKw: 30 }]);
    expect(phases()).not.toContain(`${seq}:failed`);
    older.close();
    expect(phases().at(-1)).toBe(`${seq}:failed`);
    expect(events.at(-1)!.reason).toBe('the agent stream of site site-a closed');
    await w.stop();
  });

  it('fails a setpoint the agent leaves unanswered for its validity', async () => {
    const stream = agent();
    const w = writer();
    const seq = w.setTarget(5);
    for (let i = 0; i < 2; i++) {
      expect(phases()).toEqual([`${seq}:requested`]);
      vi.advanceTimersByTime(PERIOD);
    }
    expect(phases()).toEqual([`${seq}:requested`, `${seq}:failed`]);
    expect(events[1]!.reason).toBe('no answer from the agent of site site-a within 2000 ms');
    expect(stream.take()).toHaveLength(1);
    await w.stop();
  });

  it('relays a release once and does not refresh it', async () => {
    const stream = agent();
    const w = writer();
    const seq = w.clear();
    const [release] = stream.take();
    expect(release).toMatchObject({ targetPowerKw: 0, release: true });
    stream.outcome({ setpointId: release!.setpointId, verified: true, reason: '' });
    expect(events.map((e) => [e.phase, e.release])).toEqual([
      ['requested', true],
      ['written', true],
      ['verified', true],
    ]);
    vi.advanceTimersByTime(5 * PERIOD);
    expect(stream.take()).toEqual([]);
    expect(w.lastEvent).toMatchObject({ seq, phase: 'verified' });
    await w.stop();
  });

  it('ignores answers to a setpoint a newer one replaced', async () => {
    const stream = agent();
    const w = writer();
    const a = w.setTarget(10);
    const b = w.setTarget(20);
    const [only] = stream.take();
    expect(only).toMatchObject({ targetPowerKw: 20 });
    expect(phases()).toEqual([`${a}:requested`, `${b}:requested`]);
    stream.outcome({ setpointId: only!.setpointId, verified: true, reason: '' });
    expect(phases()).toEqual([`${a}:requested`, `${b}:requested`, `${b}:written`, `${b}:verified`]);
    expect(() => w.setTarget(Number.NaN)).toThrow(RangeError);
    await w.stop();
  });
});
