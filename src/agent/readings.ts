/**
 * Pure mappings from poller telemetry to the API's reading messages. Units are already
 * Powerplane's (kW, kWh, %); signs are kept: meter power positive = import from the grid,
 * battery target power positive = discharge. Unknown values stay unset, never zero.
 */
import { create } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { BessReadingSchema, CommandSource, MeterReadingSchema, type BessReading, type MeterReading } from '../../gen/powerplane/v1/telemetry_pb.ts';
import type { BessTelemetry, MeterTelemetry } from '../modbus/types.ts';
import type { AgentDeviceConfig } from './site-config.ts';

/** Tesla-style register 200: 1 = remote (the control plane), 0 = the site's own controller. */
const TESLA_REMOTE = 1;
const TESLA_LOCAL = 0;

/**
 * The command source a battery reports: SunSpec 802 `LocRemCtl` (already decoded as
 * `remoteControl`: 0 remote → DISPATCH, 1 local → LOCAL), or the Tesla-style register
 * (1 remote → DISPATCH, 0 local → LOCAL). A battery cannot tell dispatch from a manual
 * override, so remote control is reported as DISPATCH; anything else is UNSPECIFIED.
 */
export function commandSourceOf(profile: AgentDeviceConfig['profile'], t: BessTelemetry): CommandSource {
  if (t.remoteControl !== undefined) return t.remoteControl ? CommandSource.DISPATCH : CommandSource.LOCAL;
  if (profile === 'tesla-powerpack' && t.commandSource !== undefined) {
    if (t.commandSource === TESLA_REMOTE) return CommandSource.DISPATCH;
    if (t.commandSource === TESLA_LOCAL) return CommandSource.LOCAL;
  }
  return CommandSource.UNSPECIFIED;
}

const finite = (v: number | undefined): number | undefined => (v !== undefined && Number.isFinite(v) ? v : undefined);

/** A battery reading message; values outside what the field can hold are left unset. */
export function toBessReading(device: AgentDeviceConfig, timeMs: number, t: BessTelemetry): BessReading {
  const blocks = finite(t.availableInverterBlocks);
  return create(BessReadingSchema, {
    deviceId: device.deviceId,
    time: timestampFromMs(timeMs),
    soePercent: finite(t.soePercent),
    targetPowerKw: finite(t.targetPowerKw),
    availableInverterBlocks: blocks !== undefined && Number.isInteger(blocks) && blocks >= 0 && blocks <= 32_767 ? blocks : undefined,
    commandSource: commandSourceOf(device.profile, t),
  });
}

/** A meter reading message (power positive = import). */
export function toMeterReading(device: AgentDeviceConfig, timeMs: number, t: MeterTelemetry): MeterReading {
  return create(MeterReadingSchema, {
    deviceId: device.deviceId,
    time: timestampFromMs(timeMs),
    frequencyHz: finite(t.frequency),
    voltageLineAverageV: finite(t.voltageLineAverage),
    currentPhaseAA: finite(t.currentPhaseA),
    currentPhaseBA: finite(t.currentPhaseB),
    currentPhaseCA: finite(t.currentPhaseC),
    currentPhaseAverageA: finite(t.currentPhaseAverage),
    powerPhaseAActiveKw: finite(t.powerPhaseAActive),
    powerPhaseBActiveKw: finite(t.powerPhaseBActive),
    powerPhaseCActiveKw: finite(t.powerPhaseCActive),
    powerTotalActiveKw: finite(t.powerTotalActive),
    powerTotalReactiveKvar: finite(t.powerTotalReactive),
    powerTotalApparentKva: finite(t.powerTotalApparent),
    powerFactorTotal: finite(t.powerFactorTotal),
    energyImportedActiveKwh: finite(t.energyImportedActive),
    energyExportedActiveKwh: finite(t.energyExportedActive),
    energyImportedPhaseAActiveKwh: finite(t.energyImportedPhaseAActive),
    energyExportedPhaseAActiveKwh: finite(t.energyExportedPhaseAActive),
    energyImportedPhaseBActiveKwh: finite(t.energyImportedPhaseBActive),
    energyExportedPhaseBActiveKwh: finite(t.energyExportedPhaseBActive),
    energyImportedPhaseCActiveKwh: finite(t.energyImportedPhaseCActive),
    energyExportedPhaseCActiveKwh: finite(t.energyExportedPhaseCActive),
    energyImportedReactiveKvarh: finite(t.energyImportedReactive),
    energyExportedReactiveKvarh: finite(t.energyExportedReactive),
    energyImportedApparentKvah: finite(t.energyImportedApparent),
    energyExportedApparentKvah: finite(t.energyExportedApparent),
  });
}
