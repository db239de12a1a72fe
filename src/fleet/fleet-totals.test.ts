import { describe, expect, it } from 'vitest';
import type { Instruction } from '../dispatch/instruction.ts';
import type { SetpointRecord } from '../dispatch/setpoint-events.ts';
import { addBattery, emptyTotals, rounded, shortfalls, type Totals } from './fleet-totals.ts';
import { AT, ago, battery, LIMIT_MS, type BatteryChanges } from './fleet.fixtures.ts';

const totalsOf = (...changes: BatteryChanges[]): Totals => {
  const totals = emptyTotals();
  for (const c of changes) addBattery(totals, battery(c), AT, LIMIT_MS);
  return rounded(totals);
};

describe('what a battery adds to its totals', () => {
  it.each<[string, BatteryChanges, Partial<Totals>]>([
    [
      'a fresh one: online, its energy, and its rating available',
      { state: { soePercent: 40, reportedPowerKw: 12.5, targetPowerKw: 15 } },
      {
        onlineCount: 1,
        energyStoredKwh: 80,
        energyMinKwh: 20,
        energyMaxKwh: 180,
        availableChargeKw: 100,
        reportedPowerKw: 12.5,
        setpointPowerKw: 15,
      },
    ],
    [
      'one with 3 of its 4 inverter blocks: three quarters of its rating',
      { state: { availableInverterBlocks: 3 } },
      { onlineCount: 1, availableChargeKw: 75, availableDischargeKw: 75 },
    ],
    ['one reporting more blocks than it has: its rating, no more', { state: { availableInverterBlocks: 9 } }, { availableChargeKw: 100 }],
    [
      'one read just over the limit ago: stale, held, its energy still counted',
      { state: { lastTelemetryTime: ago(LIMIT_MS + 1) } },
      { onlineCount: 0, staleCount: 1, availableChargeKw: 0, energyStoredKwh: 100 },
    ],
    ['one read exactly at the limit: still fresh', { state: { lastTelemetryTime: ago(LIMIT_MS) } }, { onlineCount: 1, staleCount: 0 }],
    [
      'one that never reported: counted and stale, nothing else',
      { state: { lastTelemetryTime: undefined, soePercent: undefined, targetPowerKw: 20 } },
      { batteryCount: 1, staleCount: 1, energyMaxKwh: 0, setpointPowerKw: 0 },
    ],
    [
      'a failed one: not online, not available, its setpoint counted',
      { failure: {}, state: { targetPowerKw: -30 } },
      { onlineCount: 0, failedCount: 1, availableChargeKw: 0, setpointPowerKw: -30 },
    ],
    [
      'one under a manual override: online, its power the operator’s',
      { state: { manualExpireTime: new Date(AT.getTime() + 60_000) } },
      { onlineCount: 1, availableDischargeKw: 0, energyStoredKwh: 100 },
    ],
    [
      'one whose reading has no SoE: held, no energy',
      { state: { soePercent: undefined } },
      { onlineCount: 1, availableChargeKw: 0, energyStoredKwh: 0, energyMinKwh: 0 },
    ],
  ])('%s', (_case, changes, expected) => {
    expect(totalsOf(changes)).toMatchObject({ batteryCount: 1, ...expected });
  });

  it('adds batteries up, rounding the sums to 0.001', () => {
    const totals = totalsOf(
      { id: 'a', state: { reportedPowerKw: 0.1 } },
      { id: 'b', state: { reportedPowerKw: 0.2 } },
      { id: 'c', bess: { capacityKwh: 1 }, state: { soePercent: 33.3333 } },
    );
    expect(totals.reportedPowerKw).toBe(0.3);
    expect(totals.energyStoredKwh).toBe(200.333);
    expect(totals).toMatchObject({ batteryCount: 3, onlineCount: 3, availableChargeKw: 300 });
  });
});

describe('what a site is asked and not set to deliver', () => {
  const instruction = (id: string, target: Instruction['target'], command: Instruction['command'], startAgoMs = 600_000): Instruction => ({
    id,
    requestId: id,
    target,
    command,
    startTime: ago(startAgoMs),
    endTime: new Date(AT.getTime() + 3_600_000),
    priority: 0,
    principal: 'p',
    createdAt: ago(startAgoMs),
  });
  const event = (instructionId: string | undefined, kw: number, agoMs: number): SetpointRecord => ({
    setpointId: 'sp',
    deviceId: 'x',
    site: 's',
    phase: 'VERIFIED',
    targetPowerKw: kw,
    source: 'DISPATCH',
    ...(instructionId ? { instructionId } : {}),
    at: ago(agoMs),
    elapsedMs: 0,
  });
  const following = (id: string, instructionId: string | undefined, kw: number, agoMs = 20_000, more: BatteryChanges = {}) =>
    battery({ id, ...more, state: { targetPowerKw: kw, lastEvent: event(instructionId, kw, agoMs), ...more.state } });

  it('is what a site instruction asks beyond its batteries’ setpoints, since they were last set', () => {
    const found = shortfalls(
      [following('a', 'i1', 100, 30_000), following('b', 'i1', 80, 20_000)],
      [instruction('i1', { site: 's' }, { powerKw: 250 })],
      AT,
    );
    expect(found).toEqual([{ instructionId: 'i1', requestedKw: 250, deliveredKw: 180, undeliveredKw: 70, since: ago(20_000) }]);
  });

  it('counts a charge the same way, and a battery held at 0 kW for it as delivering nothing', () => {
    const found = shortfalls(
      [following('a', 'i1', -100), following('b', 'i1', 0)],
      [instruction('i1', { site: 's' }, { powerKw: -150 }, 10_000)],
      AT,
    );
    expect(found.map((s) => [s.undeliveredKw, s.since])).toEqual([[50, ago(10_000)]]);
  });

  it('asks CHARGE_MAX and DISCHARGE_MAX as the governed batteries’ summed rating', () => {
    const batteries = [following('a', 'i1', -100), following('b', 'i1', -60, 20_000, { bess: { ratedChargePowerKw: 80 } })];
    expect(shortfalls(batteries, [instruction('i1', { site: 's' }, { action: 'CHARGE_MAX' })], AT)[0]).toMatchObject({
      requestedKw: -180,
      undeliveredKw: 20,
    });
    expect(shortfalls(batteries, [instruction('i1', { site: 's' }, { action: 'AVOID_IMPORT' })], AT)).toEqual([]);
  });

  it('is nothing before the control loop planned the instruction, or within the rounding of the setpoints', () => {
    expect(shortfalls([following('a', undefined, 0)], [instruction('i1', { site: 's' }, { powerKw: 50 })], AT)).toEqual([]);
    const rounding = [following('a', 'i1', 99.999), following('b', 'i1', 99.999)];
    expect(shortfalls(rounding, [instruction('i1', { site: 's' }, { powerKw: 200 })], AT)).toEqual([]);
    // Delivering more than asked is not a shortfall.
    expect(shortfalls([following('a', 'i1', 60)], [instruction('i1', { site: 's' }, { powerKw: 50 })], AT)).toEqual([]);
  });

  it("judges a battery's own instruction for it and the site's for the rest, and neither for an overridden battery", () => {
    const batteries = [
      following('a', 'own', 40),
      following('b', 'site', 50),
      following('c', 'site', 0, 20_000, { state: { manualExpireTime: new Date(AT.getTime() + 60_000) } }),
    ];
    const found = shortfalls(
      batteries,
      [instruction('own', { deviceId: 'a' }, { powerKw: 100 }), instruction('site', { site: 's' }, { powerKw: 100 })],
      AT,
    );
    expect(found.map((s) => [s.instructionId, s.requestedKw, s.deliveredKw, s.undeliveredKw])).toEqual([
      ['own', 100, 40, 60],
      ['site', 100, 50, 50],
    ]);
  });
});
