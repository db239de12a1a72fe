import { describe, expect, it } from 'vitest';
import { CommandSource } from '../../gen/powerplane/v1/telemetry_pb.ts';
import { BESS_DATUM_SOURCE_ID, commandSourceOf, toBessDatum, toBessReading, toMeterReading } from './reading-messages.ts';
import { MAX_DATUM_NAME, MAX_SOURCE_ID } from '../telemetry/validation.ts';
import type { AgentDeviceConfig } from './agent-config.ts';

const device = (kind: 'bess' | 'meter', profile: AgentDeviceConfig['profile'] = 'sunspec'): AgentDeviceConfig => ({
  deviceId: '0b5e3f0e-8a4c-4d8e-9a55-3f1d1c2b7a10',
  kind,
  profile,
  endpoint: { host: 'h', port: 502, unitId: 1 },
  pollingIntervalMs: 1000,
  reversionTimeoutS: 30,
  heartbeatIntervalMs: 5000,
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
    const r = toBessReading(device('bess'), 1_700_000_000_123, {
      soePercent: 55.5,
      targetPowerKw: -40,
      availableInverterBlocks: -1,
      remoteControl: true,
    });
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

  it("puts a SunSpec battery's extra values into a datum reading at the same time, names with units, identity as status", () => {
    const d = toBessDatum(device('bess'), 1_700_000_000_123, {
      soePercent: 50,
      frequencyHz: 50,
      energyAvailableKwh: 90.5,
      socMaxPercent: 95,
      socMinPercent: 5,
      chargeRateMaxKw: 100,
      dischargeRateMaxKw: 100,
      heartbeat: 1234,
      manufacturer: 'Powerplane',
      model: 'SimBESS',
      serialNumber: 'BESS-1',
    });
    expect(d).toMatchObject({
      deviceId: device('bess').deviceId,
      sourceId: BESS_DATUM_SOURCE_ID,
      time: { seconds: 1_700_000_000n, nanos: 123_000_000 },
    });
    expect(d!.instantaneous).toEqual({
      frequency_hz: 50,
      energy_available_kwh: 90.5,
      soc_max_percent: 95,
      soc_min_percent: 5,
      charge_rate_max_kw: 100,
      discharge_rate_max_kw: 100,
      heartbeat: 1234,
    });
    expect(d!.status).toEqual({ manufacturer: 'Powerplane', model: 'SimBESS', serial_number: 'BESS-1' });
    expect(d!.accumulating).toEqual({});
  });

  it('leaves unknown, non-finite and blank values out of the datum reading instead of sending them', () => {
    const d = toBessDatum(device('bess'), 0, {
      frequencyHz: Number.NaN,
      energyAvailableKwh: Number.POSITIVE_INFINITY,
      socMinPercent: 10,
      model: '   ',
    });
    expect(d!.instantaneous).toEqual({ soc_min_percent: 10 });
    expect(d!.status).toEqual({});
  });

  it('makes no datum reading for a battery that reports none of the extra values (the API rejects an empty one)', () => {
    expect(
      toBessDatum(device('bess', 'tesla-powerpack'), 0, {
        soePercent: 40,
        targetPowerKw: 10,
        availableInverterBlocks: 2,
        commandSource: 1,
      }),
    ).toBeUndefined();
  });

  it("keeps the source id and every property name within the API's datum limits", () => {
    const d = toBessDatum(device('bess'), 0, {
      frequencyHz: 1,
      energyAvailableKwh: 1,
      socMaxPercent: 1,
      socMinPercent: 1,
      chargeRateMaxKw: 1,
      dischargeRateMaxKw: 1,
      heartbeat: 1,
      manufacturer: 'a',
      model: 'b',
      serialNumber: 'c',
    })!;
    expect(d.sourceId.length).toBeLessThanOrEqual(MAX_SOURCE_ID);
    for (const name of [...Object.keys(d.instantaneous), ...Object.keys(d.status)]) expect(name.length).toBeLessThanOrEqual(MAX_DATUM_NAME);
    expect(Object.keys(d.instantaneous)).toHaveLength(7);
    expect(Object.keys(d.status)).toHaveLength(3);
  });
});
