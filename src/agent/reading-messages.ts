/**
 * Pure mappings from poller telemetry to the API's reading messages. Units are already
 * Powerplane's (kW, kWh, %); signs are kept: meter power positive = import from the grid,
 * battery target power positive = discharge. Unknown values stay unset, never zero.
 */
import { create } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import {
  BessReadingSchema,
  CommandSource,
  DatumReadingSchema,
  MeterReadingSchema,
  type BessReading,
  type DatumReading,
  type MeterReading,
} from '../../gen/powerplane/v1/telemetry_pb.ts';
import type { BessTelemetry, MeterTelemetry } from '../modbus/types.ts';
import type { AgentDeviceConfig } from './agent-config.ts';

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

/**
 * Source id of the datum stream that carries a battery's SunSpec extras beside its battery
 * readings. Path-style like the API's own example (`/bess/1/cells`); the device is already
 * the stream's other key, so the id names only what the stream holds.
 */
export const BESS_DATUM_SOURCE_ID = '/sunspec/bess';

/** Instantaneous properties of {@link BESS_DATUM_SOURCE_ID} and the telemetry each comes from. Names carry their unit. */
const BESS_DATUM_NUMBERS = [
  ['frequency_hz', 'frequencyHz'],
  ['energy_available_kwh', 'energyAvailableKwh'],
  ['soc_max_percent', 'socMaxPercent'],
  ['soc_min_percent', 'socMinPercent'],
  ['charge_rate_max_kw', 'chargeRateMaxKw'],
  ['discharge_rate_max_kw', 'dischargeRateMaxKw'],
  // A number, not text: a stuck controller shows as the same value in consecutive readings.
  ['heartbeat', 'heartbeat'],
] as const satisfies ReadonlyArray<readonly [string, keyof BessTelemetry]>;

/** Status (text) properties of {@link BESS_DATUM_SOURCE_ID}: the SunSpec model 1 identity. */
const BESS_DATUM_TEXTS = [
  ['manufacturer', 'manufacturer'],
  ['model', 'model'],
  ['serial_number', 'serialNumber'],
] as const satisfies ReadonlyArray<readonly [string, keyof BessTelemetry]>;

/**
 * The datum reading of a battery's values that have no field in BessReading (frequency,
 * available energy, SoC limits, nameplate rates, heartbeat, identity), at the same time as
 * its battery reading. Unknown or non-finite numbers and blank texts are left out; with
 * nothing known (a Tesla-style or custom map) there is no datum reading, since the API
 * rejects an empty one.
 */
export function toBessDatum(device: AgentDeviceConfig, timeMs: number, t: BessTelemetry): DatumReading | undefined {
  const instantaneous: Record<string, number> = {};
  const status: Record<string, string> = {};
  for (const [name, key] of BESS_DATUM_NUMBERS) {
    const v = finite(t[key]);
    if (v !== undefined) instantaneous[name] = v;
  }
  for (const [name, key] of BESS_DATUM_TEXTS) {
    const v = t[key]?.trim();
    if (v) status[name] = v;
  }
  if (Object.keys(instantaneous).length + Object.keys(status).length === 0) return undefined;
  return create(DatumReadingSchema, {
    deviceId: device.deviceId,
    sourceId: BESS_DATUM_SOURCE_ID,
    time: timestampFromMs(timeMs),
    instantaneous,
    status,
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
