import { describe, expect, it } from 'vitest';
import { createLogger } from '../logger.ts';
import type { SetpointWriter } from '../modbus/setpoint-writer.ts';
import type { SetpointEvent } from '../modbus/types.ts';
import type { Device } from '../registry/registered-device.ts';
import { createBatteryRuntimes, MAX_OPEN_SETPOINTS, type BatteryRuntimes } from './battery-runtimes.ts';
import { createFakeClock, type FakeClock } from '../clock.fixtures.ts';
import type { IntendedSource } from './intended-source.ts';
import type { BatterySetpoint } from '../planner/planner.types.ts';
import type { SetpointRecord } from '../dispatch/setpoint-events.ts';

const log = createLogger('silent');

/**
 * A writer that only remembers what it was told and emits what the test says, like the
 * Modbus writer: a request still waiting when a newer one comes is dropped inside the call.
 */
interface FakeWriter extends SetpointWriter {
  readonly requests: Array<{ seq: number; kw: number; release: boolean }>;
  stopped: boolean;
  /** Emits `phase` for setpoint `seq`. */
  emit(seq: number, phase: SetpointEvent['phase'], extra?: Partial<SetpointEvent>): void;
}

function fakeWriterFactory(): { writers: FakeWriter[]; factory: (device: Device, onEvent: (e: SetpointEvent) => void) => SetpointWriter } {
  const writers: FakeWriter[] = [];
  return {
    writers,
    factory: (device, onEvent) => {
      let seq = 0;
      let waiting: { seq: number; kw: number; release: boolean } | undefined;
      const event = (s: number, kw: number, phase: SetpointEvent['phase'], extra: Partial<SetpointEvent> = {}): SetpointEvent => ({
        deviceKey: device.id,
        seq: s,
        targetPowerKw: kw,
        phase,
        at: new Date(0),
        elapsedMs: 0,
        ...extra,
      });
      const request = (kw: number, release: boolean): number => {
        const job = { seq: ++seq, kw, release };
        if (waiting) onEvent(event(waiting.seq, waiting.kw, 'dropped', { reason: `superseded by setpoint ${job.seq}` }));
        waiting = job;
        writer.requests.push(job);
        return job.seq;
      };
      const writer: FakeWriter = {
        requests: [],
        stopped: false,
        setTarget: (kw) => request(kw, false),
        clear: () => request(0, true),
        stop: () => {
          writer.stopped = true;
          return Promise.resolve();
        },
        emit(s, phase, extra) {
          if (waiting?.seq === s) waiting = undefined;
          const job = writer.requests.find((r) => r.seq === s)!;
          onEvent(event(s, job.kw, phase, extra));
        },
      };
      writers.push(writer);
      return writer;
    },
  };
}

function battery(id: string, modbus: Partial<NonNullable<Device['bess']>['modbus']> = {}): Device {
  return {
    id,
    name: id,
    type: 'bess',
    site: 's1',
    active: true,
    createdAt: new Date(0),
    metadata: {},
    bess: {
      ratedChargePowerKw: 100,
      ratedDischargePowerKw: 100,
      capacityKwh: 200,
      minSoePercent: 5,
      maxSoePercent: 95,
      inverterBlockCount: 1,
      rampRateKwPerS: 0,
      reversionTimeoutS: 30,
      modbus: { host: '127.0.0.1', port: 502, unitId: 1, registerProfile: 'sunspec', pollingIntervalMs: 1000, ...modbus },
    },
  };
}

const setpoint = (deviceId: string, kw: number, reasons: string[] = []): BatterySetpoint => ({
  deviceId,
  targetPowerKw: kw,
  source: 'DISPATCH',
  component: 'dispatch',
  held: false,
  reasons,
  instructionId: 'i1',
});
const dispatching = (over: Partial<IntendedSource> = {}): IntendedSource => ({
  source: 'DISPATCH',
  cause: 'instruction i1',
  reason: 'following instruction i1',
  instructionId: 'i1',
  principal: 'trader',
  released: false,
  ...over,
});
const local: IntendedSource = { source: 'LOCAL', cause: 'local idle', reason: 'idle', released: true };

function setUp(leaseMs = 12_000): { clock: FakeClock; records: SetpointRecord[]; writers: FakeWriter[]; runtimes: BatteryRuntimes } {
  const clock = createFakeClock();
  const records: SetpointRecord[] = [];
  const { writers, factory } = fakeWriterFactory();
  const runtimes = createBatteryRuntimes({
    makeWriter: factory,
    onRecord: (r) => records.push(r),
    leaseMs,
    clock,
    now: () => new Date(clock.now()),
    log,
  });
  return { clock, records, writers, runtimes };
}

const phases = (records: SetpointRecord[]) => records.map((r) => `${r.phase} ${r.targetPowerKw}`);

describe('battery runtimes', () => {
  it('makes a writer on a battery first plan, records the plan with its reasons and principal, and sends it', () => {
    const { records, writers, runtimes } = setUp();
    runtimes.apply(battery('b1'), setpoint('b1', 40, ['ramp limited']), dispatching());
    expect(writers).toHaveLength(1);
    expect(writers[0]!.requests).toEqual([{ seq: 1, kw: 40, release: false }]);
    expect(records).toEqual([
      expect.objectContaining({
        deviceId: 'b1',
        site: 's1',
        phase: 'PLANNED',
        targetPowerKw: 40,
        source: 'DISPATCH',
        instructionId: 'i1',
        principal: 'trader',
        reason: 'following instruction i1; ramp limited',
      }),
    ]);
  });

  it('sends nothing when the battery is already given the same power for the same cause, and sends a change', () => {
    const { writers, runtimes } = setUp();
    runtimes.apply(battery('b1'), setpoint('b1', 40), dispatching());
    runtimes.apply(battery('b1'), setpoint('b1', 40), dispatching());
    expect(writers[0]!.requests).toHaveLength(1);
    runtimes.apply(battery('b1'), setpoint('b1', 40), dispatching({ cause: 'instruction i2', instructionId: 'i2' }));
    runtimes.apply(battery('b1'), setpoint('b1', 30), dispatching({ cause: 'instruction i2', instructionId: 'i2' }));
    expect(writers[0]!.requests.map((r) => r.kw)).toEqual([40, 40, 30]);
  });

  it('sends a setpoint again after it failed, and a release as a clear at 0 kW with the change principal', () => {
    const { records, writers, runtimes } = setUp();
    runtimes.apply(battery('b1'), setpoint('b1', 40), dispatching());
    writers[0]!.emit(1, 'failed', { reason: 'busy', willRetry: true });
    runtimes.apply(battery('b1'), setpoint('b1', 40), dispatching());
    expect(writers[0]!.requests).toHaveLength(1);
    writers[0]!.emit(1, 'failed', { reason: 'device fault', willRetry: false });
    runtimes.apply(battery('b1'), setpoint('b1', 40), dispatching());
    expect(writers[0]!.requests).toHaveLength(2);
    runtimes.apply(battery('b1'), setpoint('b1', 0), local, { reason: 'instruction i1 cancelled', principal: 'ops' });
    expect(writers[0]!.requests.at(-1)).toEqual({ seq: 3, kw: 0, release: true });
    expect(records.at(-2)).toMatchObject({
      phase: 'PLANNED',
      targetPowerKw: 0,
      source: 'LOCAL',
      principal: 'ops',
      reason: 'instruction i1 cancelled',
    });
    // The second 40 kW was still waiting in the writer: the release drops it.
    expect(phases(records)).toEqual(['PLANNED 40', 'FAILED 40', 'PLANNED 40', 'PLANNED 0', 'EXPIRED 40']);
  });

  it('keeps the verified power as the ramp start, and 0 after a failure or a release', () => {
    const { writers, runtimes } = setUp();
    expect(runtimes.deliveredKw('b1')).toBe(0);
    runtimes.apply(battery('b1'), setpoint('b1', 40), dispatching());
    writers[0]!.emit(1, 'written');
    expect(runtimes.deliveredKw('b1')).toBe(0);
    writers[0]!.emit(1, 'verified');
    expect(runtimes.deliveredKw('b1')).toBe(40);
    runtimes.apply(battery('b1'), setpoint('b1', 60), dispatching());
    writers[0]!.emit(2, 'failed', { reason: 'no answer', willRetry: false });
    expect(runtimes.deliveredKw('b1')).toBe(0);
    runtimes.apply(battery('b1'), setpoint('b1', 60), dispatching());
    writers[0]!.emit(3, 'verified');
    runtimes.apply(battery('b1'), setpoint('b1', 0), local);
    writers[0]!.emit(4, 'verified');
    expect(runtimes.deliveredKw('b1')).toBe(0);
  });

  it('records the end of a setpoint replaced between its write and its read-back', () => {
    const { records, writers, runtimes } = setUp();
    runtimes.apply(battery('b1'), setpoint('b1', 40), dispatching());
    writers[0]!.emit(1, 'written');
    runtimes.apply(battery('b1'), setpoint('b1', 60), dispatching());
    writers[0]!.emit(1, 'verified');
    writers[0]!.emit(2, 'written');
    writers[0]!.emit(2, 'verified');
    expect(phases(records)).toEqual(['PLANNED 40', 'WRITTEN 40', 'PLANNED 60', 'VERIFIED 40', 'WRITTEN 60', 'VERIFIED 60']);
    const [first, , second] = records;
    expect(records[3]!.setpointId).toBe(first!.setpointId);
    expect(records[5]!.setpointId).toBe(second!.setpointId);
    expect(runtimes.deliveredKw('b1')).toBe(60);
  });

  it('records a setpoint dropped by the writer when the next one is handed over as expired', () => {
    const { records, writers, runtimes } = setUp();
    runtimes.apply(battery('b1'), setpoint('b1', 40), dispatching());
    runtimes.apply(battery('b1'), setpoint('b1', 60), dispatching());
    expect(writers[0]!.requests.map((r) => r.kw)).toEqual([40, 60]);
    expect(phases(records)).toEqual(['PLANNED 40', 'PLANNED 60', 'EXPIRED 40']);
    expect(records[2]).toMatchObject({ setpointId: records[0]!.setpointId, reason: 'superseded by setpoint 2' });
  });

  it('ends a superseded setpoint once, and lets the current one be verified again', () => {
    const { records, writers, runtimes } = setUp();
    runtimes.apply(battery('b1'), setpoint('b1', 40), dispatching());
    writers[0]!.emit(1, 'written');
    runtimes.apply(battery('b1'), setpoint('b1', 60), dispatching());
    writers[0]!.emit(1, 'verified');
    writers[0]!.emit(1, 'failed', { reason: 'late', willRetry: false });
    writers[0]!.emit(2, 'verified');
    writers[0]!.emit(2, 'verified', { reason: 'reasserted after reconnection' });
    expect(phases(records)).toEqual(['PLANNED 40', 'WRITTEN 40', 'PLANNED 60', 'VERIFIED 40', 'VERIFIED 60', 'VERIFIED 60']);
  });

  it(`forgets the oldest open setpoint beyond ${MAX_OPEN_SETPOINTS}`, () => {
    const { records, writers, runtimes } = setUp();
    for (let kw = 1; kw <= MAX_OPEN_SETPOINTS + 2; kw++) {
      runtimes.apply(battery('b1'), setpoint('b1', kw), dispatching());
      writers[0]!.emit(kw, 'written');
    }
    const before = records.length;
    writers[0]!.emit(1, 'verified');
    writers[0]!.emit(2, 'verified');
    writers[0]!.emit(3, 'verified');
    expect(phases(records.slice(before))).toEqual(['VERIFIED 3']);
  });

  it('makes a new writer when the battery Modbus settings change, stopping the old one', () => {
    const { writers, runtimes } = setUp();
    runtimes.apply(battery('b1'), setpoint('b1', 40), dispatching());
    runtimes.apply(battery('b1', { port: 503 }), setpoint('b1', 40), dispatching());
    expect(writers).toHaveLength(2);
    expect(writers[0]!.stopped).toBe(true);
    expect(writers[1]!.requests).toEqual([{ seq: 1, kw: 40, release: false }]);
  });

  it('stops the writer of a battery no plan covered within the lease, and keeps the others', async () => {
    const { clock, writers, runtimes } = setUp(12_000);
    runtimes.apply(battery('b1'), setpoint('b1', 40), dispatching());
    runtimes.apply(battery('b2'), setpoint('b2', 40), dispatching());
    writers[0]!.emit(1, 'verified');
    await clock.advance(8_000);
    runtimes.apply(battery('b2'), setpoint('b2', 40), dispatching());
    await clock.advance(4_000);
    runtimes.expireLeases();
    expect(writers.map((w) => w.stopped)).toEqual([false, false]);
    await clock.advance(1);
    runtimes.expireLeases();
    expect(writers.map((w) => w.stopped)).toEqual([true, false]);
    // A battery planned again after its lease ended gets a new writer, ramping from 0.
    expect(runtimes.deliveredKw('b1')).toBe(0);
    runtimes.apply(battery('b1'), setpoint('b1', 40), dispatching());
    expect(writers).toHaveLength(3);
  });

  it('measures each record from the setpoint plan on the injected clock', async () => {
    const { clock, records, writers, runtimes } = setUp();
    runtimes.apply(battery('b1'), setpoint('b1', 40), dispatching());
    await clock.advance(250);
    writers[0]!.emit(1, 'verified');
    expect(records.map((r) => r.elapsedMs)).toEqual([0, 250]);
  });

  it('stops every writer and takes no setpoint after a stop', async () => {
    const { records, writers, runtimes } = setUp();
    runtimes.apply(battery('b1'), setpoint('b1', 40), dispatching());
    runtimes.apply(battery('b2'), setpoint('b2', 40), dispatching());
    await runtimes.stopAll();
    expect(writers.map((w) => w.stopped)).toEqual([true, true]);
    runtimes.apply(battery('b3'), setpoint('b3', 40), dispatching());
    expect(writers).toHaveLength(2);
    expect(records).toHaveLength(2);
  });
});
