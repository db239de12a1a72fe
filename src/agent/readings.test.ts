import { describe, expect, it } from 'vitest';
import { CommandSource } from '../../gen/powerplane/v1/telemetry_pb.ts';
import { commandSourceOf, toBessReading, toMeterReading } from './readings.ts';
import type { AgentDeviceConfig } from './site-config.ts';

const device = (kind: 'bess' | 'meter', profile: AgentDeviceConfig['profile'] = 'sunspec'): AgentDeviceConfig => ({
  deviceId: '0b5e3f0e-8a4c-4d8e-9a55-3f1d1c2b7a10', kind, profile, endpoint: { host: 'h', port: 502, unitId: 1 }, pollingIntervalMs: 1000, reversionTimeoutS: 30, heartbeatIntervalMs: 5000,
});

describe('reading messages from poller telemetry', () => {
  it.each([
    ['sunspec', { remoteControl: true, commandSource: 0 }, CommandSource.DISPATCH],
    ['sunspec', { remoteControl: false, commandSource: 1 }, CommandSource.LOCAL],
    ['sunspec', {}, CommandSource.UNSPECIFIED],
    ['tesla-powerpack', { commandSource: 1 }, CommandSource.DISPATCH],
    ['tesla-powerpack', { commandSource: 0 }, CommandSource.LOCAL],
    ['tesla-powerpack', { commandSource: 7 }, CommandSource.UNSPECIFIED],
  ] as const)('maps a %s battery reporting %o to command source %i', (profile, telemetry, expected) => {
    expect(commandSourceOf(profile, telemetry)).toBe(expected);
  });

  it('keeps the battery sign (positive = discharge) and leaves unknown or unrepresentable values unset', () => {
    const r = toBessReading(device('bess'), 1_700_000_000_123, { soePercent: 55.5, targetPowerKw: -40, availableInverterBlocks: -1, remoteControl: true });
    expect(r).toMatchObject({ soePercent: 55.5, targetPowerKw: -40, commandSource: CommandSource.DISPATCH });
    expect(r.availableInverterBlocks).toBeUndefined();
    expect(r.time).toMatchObject({ seconds: 1_700_000_000n, nanos: 123_000_000 });
  });

  it('keeps the meter sign (positive = import) and drops non-finite values', () => {
    const r = toMeterReading(device('meter'), 0, { powerTotalActive: 12.5, energyImportedActive: 1000, frequency: Number.NaN });
    expect(r).toMatchObject({ powerTotalActiveKw: 12.5, energyImportedActiveKwh: 1000 });
    expect(r.frequencyHz).toBeUndefined();
    expect(r.voltageLineAverageV).toBeUndefined();
  });
});
