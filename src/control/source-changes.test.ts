import { describe, expect, it } from 'vitest';
import type { Device } from '../registry/registered-device.ts';
import type { BatteryState } from './battery-state.repository.ts';
import { COMMAND_SOURCE_CODES } from '../dispatch/command-source.ts';
import type { IntendedSource } from './intended-source.ts';
import type { Instruction } from '../dispatch/instruction.ts';
import { ago, NOW } from '../planner/planner.fixtures.ts';
import type { BatterySetpoint } from '../planner/planner.types.ts';
import { intendedSources, sourceChanges, sourceMismatches } from './source-changes.ts';

const later = new Date(NOW.getTime() + 600_000);

const device = (id: string): Device => ({ id, name: id, type: 'bess', site: 's1', active: true, createdAt: ago(3600), metadata: {} });
const state = (id: string, over: Partial<BatteryState> = {}): BatteryState => ({ device: device(id), ...over });
const setpoint = (deviceId: string, over: Partial<BatterySetpoint> = {}): BatterySetpoint => ({
  deviceId,
  targetPowerKw: 0,
  source: 'LOCAL',
  component: 'idle',
  reasons: [],
  held: false,
  ...over,
});
const instruction = (id: string, principal: string): Instruction => ({
  id,
  requestId: id,
  target: { site: 's1' },
  startTime: ago(60),
  endTime: later,
  command: { powerKw: 50 },
  priority: 0,
  principal,
  createdAt: ago(60),
});
const override = { powerKw: -20, expireTime: later, reason: 'maintenance', principal: 'ops' };

describe('intendedSources', () => {
  const cases: Array<{ name: string; setpoint: BatterySetpoint; state: BatteryState; expected: Partial<IntendedSource> }> = [
    {
      name: 'names the instruction submitter behind a dispatched battery',
      setpoint: setpoint('b1', { targetPowerKw: 50, source: 'DISPATCH', component: 'dispatch', instructionId: 'i1' }),
      state: state('b1'),
      expected: { source: 'DISPATCH', instructionId: 'i1', principal: 'trader', released: false },
    },
    {
      name: 'names the operator of the override in force behind a manual battery',
      setpoint: setpoint('b1', { targetPowerKw: -20, source: 'MANUAL', component: 'manual' }),
      state: state('b1', { override }),
      expected: { source: 'MANUAL', principal: 'ops', released: false },
    },
    {
      name: 'leaves an idle battery to local control, released',
      setpoint: setpoint('b1'),
      state: state('b1', { override: { ...override, releasedAt: ago(1), releasedBy: 'ops' } }),
      expected: { source: 'LOCAL', released: true, principal: undefined },
    },
    {
      name: 'puts a held battery in failsafe, released',
      setpoint: setpoint('b1', { source: 'FAILSAFE', held: true, reasons: ['telemetry stale 42 s'] }),
      state: state('b1'),
      expected: { source: 'FAILSAFE', cause: 'failsafe', released: true },
    },
  ];
  it.each(cases)('$name', ({ setpoint: sp, state: s, expected }) => {
    const intended = intendedSources([sp], [s], [instruction('i1', 'trader')], NOW).get(sp.deviceId);
    expect(intended).toBeDefined();
    for (const [key, value] of Object.entries(expected)) {
      if (value === undefined) expect(intended).not.toHaveProperty(key);
      else expect(intended).toHaveProperty(key, value);
    }
  });
});

describe('sourceChanges', () => {
  const local: IntendedSource = { source: 'LOCAL', cause: 'local idle', reason: 'idle', released: true };
  const dispatched: IntendedSource = {
    source: 'DISPATCH',
    cause: 'instruction i2',
    reason: 'following instruction i2',
    instructionId: 'i2',
    principal: 'trader',
    released: false,
  };

  it('records nothing for a battery whose source and cause stay', () => {
    const states = [state('b1', { stored: { source: 'LOCAL', cause: 'local idle' } })];
    expect(sourceChanges(states, new Map([['b1', local]]), NOW)).toEqual([]);
  });

  it('records a battery moving on, with the previous source', () => {
    const states = [state('b1', { stored: { source: 'LOCAL', cause: 'local idle' } })];
    expect(sourceChanges(states, new Map([['b1', dispatched]]), NOW)).toEqual([
      {
        deviceId: 'b1',
        source: 'DISPATCH',
        previous: 'LOCAL',
        reason: 'following instruction i2',
        cause: 'instruction i2',
        instructionId: 'i2',
        principal: 'trader',
      },
    ]);
  });

  it('names who cancelled the instruction a battery followed', () => {
    const states = [
      state('b1', {
        stored: { source: 'DISPATCH', instructionId: 'i1', cause: 'instruction i1' },
        storedInstruction: { id: 'i1', endTime: later, cancelledAt: ago(1), cancelledBy: 'desk' },
      }),
    ];
    expect(sourceChanges(states, new Map([['b1', local]]), NOW)).toEqual([
      expect.objectContaining({ deviceId: 'b1', source: 'LOCAL', principal: 'desk', reason: 'instruction i1 cancelled by desk; idle' }),
    ]);
  });

  it('names who released the override a battery was under', () => {
    const states = [
      state('b1', { stored: { source: 'MANUAL', cause: 'manual' }, override: { ...override, releasedAt: ago(1), releasedBy: 'ops2' } }),
    ];
    expect(sourceChanges(states, new Map([['b1', local]]), NOW)).toEqual([
      expect.objectContaining({ source: 'LOCAL', previous: 'MANUAL', principal: 'ops2', reason: 'manual override released by ops2; idle' }),
    ]);
  });

  it('skips a battery that was not planned', () => {
    expect(sourceChanges([state('b1'), state('b2')], new Map([['b2', local]]), NOW).map((c) => c.deviceId)).toEqual(['b2']);
  });
});

describe('sourceMismatches', () => {
  const reported = (id: string, code: number | null): BatteryState =>
    state(id, { reading: { device_id: id, time: ago(1), soe: 50, target_power: 0, available_inverter_blocks: 1, command_source: code } });
  const intended = (source: IntendedSource['source']): IntendedSource => ({
    source,
    cause: source,
    reason: source,
    released: source === 'LOCAL',
  });

  it('counts batteries reporting remote control against a local intent and the other way round, not unknown reports', () => {
    const states = [
      reported('agree-remote', COMMAND_SOURCE_CODES.DISPATCH),
      reported('manual-is-remote', COMMAND_SOURCE_CODES.DISPATCH),
      reported('still-remote', COMMAND_SOURCE_CODES.DISPATCH),
      reported('still-local', COMMAND_SOURCE_CODES.LOCAL),
      reported('unknown', null),
      reported('unplanned', COMMAND_SOURCE_CODES.LOCAL),
    ];
    const plan = new Map([
      ['agree-remote', intended('DISPATCH')],
      ['manual-is-remote', intended('MANUAL')],
      ['still-remote', intended('LOCAL')],
      ['still-local', intended('DISPATCH')],
      ['unknown', intended('DISPATCH')],
    ]);
    expect(sourceMismatches(states, plan)).toBe(2);
  });
});
