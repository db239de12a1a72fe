import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { decodeRaw, encodeRaw } from '../modbus/codec.ts';
import { parseRegisterMap } from '../modbus/register-map.ts';
import { createMapDevice } from './map-device.ts';
import { ModbusServerException } from './modbus-request.ts';

// acme-bc500: soePercent 100 (uint16, 0.1 %), activePower 101 and targetPower 103 (int32 W),
// nominalEnergy 105 (uint32 kWh, little word order), commandSource 107, powerSf 199,
// mode 200 (enable 2), powerSetpoint 201 (int32 W × 10^powerSf), heartbeat 203, timeout 204 (s).
const acme = parseRegisterMap(
  JSON.parse(readFileSync(new URL('../../test/fixtures/acme-bc500.register-map.json', import.meta.url), 'utf8')),
);
const T0 = 1_000_000;

const int32 = (regs: ArrayLike<number>, offset = 0, wordOrder: 'big' | 'little' = 'big') =>
  decodeRaw(regs, offset, 'int32', { wordOrder, notImplemented: false });
/** One command as the setpoint writer sends it: mode, power and heartbeat in one write. */
const command = (mode: number, watts: number, beat: number) => [mode, ...encodeRaw(watts, 'int32'), beat];

describe('simulated register-map battery', () => {
  it('serves its telemetry in the points named for their role', () => {
    const d = createMapDevice({ map: acme, unitId: 1, nowMs: T0, initialSoePercent: 62.5, capacityWh: 500_000 });
    const regs = d.read('holding', 100, 8, T0);
    expect(regs[0]).toBe(625);
    expect(int32(regs, 1)).toBe(0);
    expect(decodeRaw(regs, 5, 'uint32', { wordOrder: 'little', notImplemented: false })).toBe(500);
    expect(regs[7]).toBe(0);
  });

  it('refuses writes to read-only registers and reads past its map', () => {
    const d = createMapDevice({ map: acme, unitId: 1, nowMs: T0 });
    expect(() => d.write(100, [1], T0)).toThrow(ModbusServerException);
    expect(() => d.read('holding', 200, 10, T0)).toThrow(ModbusServerException);
  });

  it('follows the power point while the mode point is enabled, scaled by its scale factor, and reports remote control', () => {
    const d = createMapDevice({ map: acme, unitId: 1, nowMs: T0, scaleFactors: { powerSf: 1 } });
    d.write(204, [5], T0);
    d.write(200, command(2, -4_000, 1), T0);
    expect(d.snapshot(T0)).toMatchObject({ mode: 2, commandW: -40_000, remote: true, heartbeat: 1, timeoutS: 5 });
    const regs = d.read('holding', 100, 8, T0 + 1_000);
    expect(int32(regs, 3)).toBe(-40_000);
    expect(int32(regs, 1)).toBe(-40_000);
    expect(regs[7]).toBe(1);
    // The power charged the battery over that second: 40 kW for 1 s of 200 kWh.
    expect(d.snapshot(T0 + 1_000).soePercent).toBeCloseTo(50 + (40_000 / 3_600 / 200_000) * 100, 6);
    d.write(200, command(0, 0, 2), T0 + 1_000);
    expect(d.snapshot(T0 + 1_000)).toMatchObject({ mode: 0, commandW: 0, remote: false });
  });

  it('drops to local control when the heartbeat stops changing for the timeout, and not before', () => {
    const d = createMapDevice({ map: acme, unitId: 1, nowMs: T0 });
    d.write(204, [2], T0);
    d.write(200, command(2, 10_000, 1), T0);
    d.write(203, [2], T0 + 1_500);
    // The same value again is no heartbeat.
    d.write(203, [2], T0 + 3_000);
    expect(d.snapshot(T0 + 3_499)).toMatchObject({ remote: true, reversions: 0 });
    expect(d.snapshot(T0 + 3_500)).toMatchObject({ remote: false, mode: 0, commandW: 0, reversions: 1 });
  });

  it('takes a write of the power point as the refresh of a map without a heartbeat point', () => {
    const map = parseRegisterMap({
      ...JSON.parse(JSON.stringify(acme)),
      control: { ...acme.control, heartbeatPoint: undefined, heartbeat: undefined },
    });
    const d = createMapDevice({ map, unitId: 1, nowMs: T0 });
    d.write(204, [1], T0);
    d.write(200, [2, ...encodeRaw(5_000, 'int32')], T0);
    d.write(201, encodeRaw(5_000, 'int32'), T0 + 900);
    expect(d.snapshot(T0 + 1_800)).toMatchObject({ remote: true, commandW: 5_000 });
    expect(d.snapshot(T0 + 1_900)).toMatchObject({ remote: false, reversions: 1 });
  });
});
