/**
 * The built-in register map of the Tesla-PowerPack-style site controller that the Flux system
 * drives, from its published integration. Status reads: command source 200, battery target
 * power 201 (int32, W), nominal energy 207 (int32, Wh), available blocks 218. Control: real
 * power mode 1000 (1 = direct), power 1020 (int32, W; charging is a negative two's-complement
 * value), heartbeat 1022 (alternating 0xAA55 / 0x55AA on every command), timeout 1023 (s).
 */
import { parseRegisterMap, type RegisterMap } from './register-map.ts';

/** Holding register addresses of the Tesla-style controller, shared with the simulator. */
export const TESLA_REGISTERS = Object.freeze({
  commandSource: 200,
  targetPower: 201,
  nominalEnergy: 207,
  availableInverterBlocks: 218,
  realPowerMode: 1000,
  powerSetpoint: 1020,
  heartbeat: 1022,
  timeout: 1023,
});

/** The Tesla-style heartbeat values, alternated on every command. */
export const TESLA_HEARTBEAT_VALUES: readonly [number, number] = [0xaa55, 0x55aa];

/** The map as it would be stored in device metadata; validated by {@link parseRegisterMap} at load. */
export const TESLA_POWERPACK_MAP: RegisterMap = parseRegisterMap({
  name: 'tesla-powerpack',
  wordOrder: 'big',
  points: [
    { name: 'commandSource', address: TESLA_REGISTERS.commandSource, type: 'uint16', access: 'R' },
    { name: 'targetPower', address: TESLA_REGISTERS.targetPower, type: 'int32', unit: 'W', access: 'R' },
    { name: 'nominalEnergy', address: TESLA_REGISTERS.nominalEnergy, type: 'int32', unit: 'Wh', access: 'R' },
    { name: 'availableInverterBlocks', address: TESLA_REGISTERS.availableInverterBlocks, type: 'uint16', access: 'R' },
    { name: 'realPowerMode', address: TESLA_REGISTERS.realPowerMode, type: 'uint16', access: 'RW' },
    { name: 'powerSetpoint', address: TESLA_REGISTERS.powerSetpoint, type: 'int32', unit: 'W', access: 'RW' },
    { name: 'heartbeat', address: TESLA_REGISTERS.heartbeat, type: 'uint16', access: 'RW' },
    { name: 'timeout', address: TESLA_REGISTERS.timeout, type: 'uint16', unit: 's', access: 'RW' },
  ],
  control: {
    powerPoint: 'powerSetpoint',
    readbackPoint: 'targetPower',
    modePoint: 'realPowerMode',
    modeEnableValue: 1,
    modeDisableValue: 0,
    heartbeatPoint: 'heartbeat',
    heartbeat: 'toggle',
    heartbeatValues: [TESLA_HEARTBEAT_VALUES[0], TESLA_HEARTBEAT_VALUES[1]],
    timeoutPoint: 'timeout',
  },
});
