/**
 * A simulated Tesla-PowerPack-style controller on the flat register map of
 * `modbus/tesla-profile.ts`. The power setpoint (1020, int32 W) applies while real power mode
 * (1000) is 1; every command must toggle the heartbeat (1022); when the heartbeat has not
 * changed for the timeout (1023, seconds, 0 = never) the controller drops to local control:
 * mode 0, target 0, command source 0.
 */
import { decodeRaw, encodeRaw } from '../modbus/codec.ts';
import { TESLA_REGISTERS as R } from '../modbus/tesla-profile.ts';
import { type BatteryEnergy, type BatteryRatings, DEFAULT_RATINGS, stepEnergy } from './battery-physics.ts';
import type { SimDevice } from './sim-device.ts';
import { ModbusServerException } from './modbus-request.ts';

/** Command source values the simulated controller reports at register 200. */
export const TESLA_COMMAND_SOURCE = Object.freeze({ local: 0, remote: 1 });

/** Snapshot of a simulated Tesla-style controller. */
export interface TeslaSnapshot {
  soePercent: number;
  activePowerW: number;
  mode: number;
  powerSetpointW: number;
  targetPowerW: number;
  heartbeat: number;
  timeoutS: number;
  commandSource: number;
  reversions: number;
}

const WRITABLE = new Set<number>([R.realPowerMode, R.powerSetpoint, R.powerSetpoint + 1, R.heartbeat, R.timeout]);
const SIZE = 1100;

/** Creates a simulated Tesla-style controller (defaults: 100 kW, 200 kWh, SoE 50 %, 4 blocks). */
export function createTeslaDevice(
  config: Partial<BatteryRatings> & { unitId: number; nowMs: number; initialSoePercent?: number; blocks?: number },
): SimDevice & { snapshot(nowMs: number): TeslaSnapshot } {
  const r: BatteryRatings = { ...DEFAULT_RATINGS, ...config };
  const regs = new Uint16Array(SIZE);
  const energy: BatteryEnergy = { soePercent: config.initialSoePercent ?? 50, dischargedWh: 0, chargedWh: 0 };
  let t = config.nowMs;
  let lastBeat = t;
  let powerW = 0;
  let reversions = 0;
  const i32 = (address: number): number => decodeRaw(regs, address, 'int32', { notImplemented: false }) as number;
  const setI32 = (address: number, v: number): void => regs.set(encodeRaw(v, 'int32'), address);
  setI32(R.nominalEnergy, Math.round(r.capacityWh));
  regs[R.availableInverterBlocks] = config.blocks ?? 4;

  const command = (): number => (regs[R.realPowerMode] === 1 ? i32(R.powerSetpoint) : 0);
  const advance = (now: number): void => {
    const timeoutMs = (regs[R.timeout] ?? 0) * 1000;
    const deadline = regs[R.realPowerMode] === 1 && timeoutMs > 0 ? lastBeat + timeoutMs : Number.POSITIVE_INFINITY;
    if (now >= deadline && deadline > t) {
      powerW = stepEnergy(energy, command(), deadline - t, r);
      t = deadline;
      regs[R.realPowerMode] = 0;
      setI32(R.powerSetpoint, 0);
      reversions++;
    }
    if (now > t) {
      powerW = stepEnergy(energy, command(), now - t, r);
      t = now;
    }
    powerW = stepEnergy(energy, command(), 0, r);
    setI32(R.targetPower, command());
    regs[R.commandSource] = regs[R.realPowerMode] === 1 ? TESLA_COMMAND_SOURCE.remote : TESLA_COMMAND_SOURCE.local;
  };

  return {
    kind: 'tesla',
    read: (_table, address, count, nowMs) => {
      if (address + count > SIZE) throw new ModbusServerException(2);
      advance(nowMs);
      return regs.subarray(address, address + count);
    },
    write: (address, values, nowMs) => {
      advance(nowMs);
      for (let i = 0; i < values.length; i++)
        if (!WRITABLE.has(address + i)) throw new ModbusServerException(2, `register ${address + i} is not writable`);
      const beat = regs[R.heartbeat];
      regs.set(values, address);
      if ((regs[R.realPowerMode] ?? 0) > 1) {
        regs[R.realPowerMode] = 0;
        throw new ModbusServerException(3, 'real power mode must be 0 or 1');
      }
      if (regs[R.heartbeat] !== beat) lastBeat = nowMs;
      advance(nowMs);
    },
    activePowerW: (nowMs) => {
      advance(nowMs);
      return powerW;
    },
    snapshot: (nowMs) => {
      advance(nowMs);
      return {
        soePercent: energy.soePercent,
        activePowerW: powerW,
        mode: regs[R.realPowerMode] ?? 0,
        powerSetpointW: i32(R.powerSetpoint),
        targetPowerW: i32(R.targetPower),
        heartbeat: regs[R.heartbeat] ?? 0,
        timeoutS: regs[R.timeout] ?? 0,
        commandSource: regs[R.commandSource] ?? 0,
        reversions,
      };
    },
  };
}
