/**
 * The device-independent shapes the rest of Powerplane sees: endpoints, profiles, setpoint
 * events and telemetry. Vendor and SunSpec register details stay behind these.
 */
import type { RegisterMap } from './register-map.ts';

/** Where a controller answers: TCP host and port, and the Modbus unit id (1–247) behind it. */
export interface ModbusEndpoint {
  host: string;
  port: number;
  unitId: number;
}

/**
 * How a device lays out its registers: SunSpec (discovered), the built-in Tesla-PowerPack-style
 * map, or a custom flat map from the device's metadata (validated by `parseRegisterMap`).
 */
export type RegisterProfile = { kind: 'sunspec' } | { kind: 'tesla-powerpack' } | { kind: 'custom'; map: RegisterMap };

/** Stages of one setpoint's life, in order; `failed` and `dropped` end it early. */
export type SetpointPhase = 'requested' | 'written' | 'verified' | 'failed' | 'dropped';

/**
 * One step of one setpoint, emitted by the setpoint writer. `seq` numbers setpoints of one
 * writer from 1; `elapsedMs` counts from the request. `targetPowerKw` is positive for
 * discharge. A release (`clear()`) is reported as a setpoint of 0 kW with `release: true`.
 */
export type SetpointEvent = {
  deviceKey: string;
  seq: number;
  targetPowerKw: number;
  phase: SetpointPhase;
  at: Date;
  elapsedMs: number;
  /** Why it failed or was dropped, or a note on a retry. */
  reason?: string;
  /** Modbus exception code behind a failure, when the device sent one. */
  exceptionCode?: number;
  /** Attempt number (1-based) for written/verified/failed. */
  attempt?: number;
  /** On `failed`: whether the writer will try this setpoint again. */
  willRetry?: boolean;
  /** The event belongs to a release (`clear()`), not to a target. */
  release?: boolean;
};

/** Battery telemetry in Powerplane units; an absent field is unknown. */
export interface BessTelemetry {
  /** State of energy, 0–100 %. */
  soePercent?: number;
  /** Power the device is commanded to, kW, positive = discharge. */
  targetPowerKw?: number;
  /** Power the device delivers, kW, positive = discharge. */
  activePowerKw?: number;
  /** Inverter blocks available (register-map devices). */
  availableInverterBlocks?: number;
  /** Raw command-source register (Tesla-style) or SunSpec 802 `LocRemCtl` (0 remote, 1 local). */
  commandSource?: number;
  /** Whether the device reports being under remote (Powerplane) control. */
  remoteControl?: boolean;
  /** Nominal (rated) energy, kWh. */
  nominalEnergyKwh?: number;
  /** AC frequency the inverter measures, Hz (SunSpec 701 `Hz`). */
  frequencyHz?: number;
  /** Energy the battery can still deliver, kWh (SunSpec 713 `WHAvail`). */
  energyAvailableKwh?: number;
  /** Manufacturer's highest state of charge, 0–100 % of rated energy (SunSpec 802 `SoCMax`). */
  socMaxPercent?: number;
  /** Manufacturer's lowest state of charge, 0–100 % of rated energy (SunSpec 802 `SoCMin`). */
  socMinPercent?: number;
  /** Nameplate largest charge power, kW, a non-negative magnitude (SunSpec 802 `WChaRteMax`, DC). */
  chargeRateMaxKw?: number;
  /** Nameplate largest discharge power, kW, a non-negative magnitude (SunSpec 802 `WDisChaRteMax`, DC). */
  dischargeRateMaxKw?: number;
  /**
   * The battery's own heartbeat counter, incremented every second by the device (SunSpec 802 `Hb`);
   * a value that stops changing means a stuck controller.
   */
  heartbeat?: number;
  /** Manufacturer (SunSpec 1 `Mn`). */
  manufacturer?: string;
  /** Model name (SunSpec 1 `Md`). */
  model?: string;
  /** Serial number (SunSpec 1 `SN`). */
  serialNumber?: string;
}

/**
 * Meter telemetry: the 25 quantities of `flux.mg_meter_readings` in kW, kvar, kVA, kWh, kvarh,
 * kVAh, V, A, Hz and power factor (−1..1). Power is positive when importing from the grid.
 * An absent field is unknown.
 */
export interface MeterTelemetry {
  frequency?: number;
  voltageLineAverage?: number;
  currentPhaseA?: number;
  currentPhaseB?: number;
  currentPhaseC?: number;
  currentPhaseAverage?: number;
  powerPhaseAActive?: number;
  powerPhaseBActive?: number;
  powerPhaseCActive?: number;
  powerTotalActive?: number;
  powerTotalReactive?: number;
  powerTotalApparent?: number;
  powerFactorTotal?: number;
  energyImportedActive?: number;
  energyExportedActive?: number;
  energyImportedPhaseAActive?: number;
  energyExportedPhaseAActive?: number;
  energyImportedPhaseBActive?: number;
  energyExportedPhaseBActive?: number;
  energyImportedPhaseCActive?: number;
  energyExportedPhaseCActive?: number;
  energyImportedReactive?: number;
  energyExportedReactive?: number;
  energyImportedApparent?: number;
  energyExportedApparent?: number;
}
