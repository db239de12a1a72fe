/**
 * Pure mappings from decoded device values to Powerplane telemetry: SunSpec models to
 * {@link BessTelemetry} / {@link MeterTelemetry}, and flat register maps by point name. Watts
 * become kW, watt-hours kWh; unknown stays unknown (an absent field).
 */
import type { PointValue } from './codec.ts';
import { BESS_POINT_NAMES, METER_POINT_NAMES, type RegisterMap } from './register-map.ts';
import type { BessTelemetry, MeterTelemetry } from './types.ts';

type Values = Record<string, PointValue>;

const num = (v: PointValue): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
const kilo = (v: PointValue): number | undefined => {
  const n = num(v);
  return n === undefined ? undefined : n / 1000;
};

function compact<T extends object>(obj: T): T {
  for (const key of Object.keys(obj) as Array<keyof T>) if (obj[key] === undefined) delete obj[key];
  return obj;
}

/** Where a BESS reading's SunSpec values come from: the models read (each optional). */
export interface BessSunSpecValues {
  m1?: Values;
  m701?: Values;
  m704?: Values;
  m713?: Values;
  m802?: Values;
}

const text = (v: PointValue): string | undefined => (typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined);

/**
 * BESS telemetry from SunSpec models (each optional): SoE from 802 `SoC` (else 713), target
 * power from 704 `WSet` when `WSetEna` = 1 (0 when disabled), active power from 701 `W` (else
 * 802), frequency from 701 `Hz`, available energy from 713 `WHAvail`, remote control and
 * command source from 802 `LocRemCtl` (0 remote, 1 local), nominal energy from 802 `WHRtg`
 * (else 713), SoC limits, nameplate charge/discharge rates and the battery heartbeat from 802
 * (`SoCMax`, `SoCMin`, `WChaRteMax`, `WDisChaRteMax`, `Hb`), identity from model 1 (`Mn`,
 * `Md`, `SN`).
 */
export function bessFromSunSpec(m: BessSunSpecValues): BessTelemetry {
  const ena = num(m.m704?.WSetEna);
  const loc = num(m.m802?.LocRemCtl);
  return compact({
    soePercent: num(m.m802?.SoC) ?? num(m.m713?.SoC),
    targetPowerKw: ena === undefined ? undefined : ena === 1 ? kilo(m.m704?.WSet) : 0,
    activePowerKw: kilo(m.m701?.W) ?? kilo(m.m802?.W),
    commandSource: loc,
    remoteControl: loc === undefined ? undefined : loc === 0,
    nominalEnergyKwh: kilo(m.m802?.WHRtg) ?? kilo(m.m713?.WHRtg),
    frequencyHz: num(m.m701?.Hz),
    energyAvailableKwh: kilo(m.m713?.WHAvail),
    socMaxPercent: num(m.m802?.SoCMax),
    socMinPercent: num(m.m802?.SoCMin),
    chargeRateMaxKw: kilo(m.m802?.WChaRteMax),
    dischargeRateMaxKw: kilo(m.m802?.WDisChaRteMax),
    heartbeat: num(m.m802?.Hb),
    manufacturer: text(m.m1?.Mn),
    model: text(m.m1?.Md),
    serialNumber: text(m.m1?.SN),
  });
}

function sum(...values: PointValue[]): number | undefined {
  const nums = values.map(num);
  return nums.every((n) => n !== undefined) ? (nums as number[]).reduce((a, b) => a + b, 0) : undefined;
}

/**
 * Meter telemetry from SunSpec model 203. Power is positive when importing (SunSpec meter
 * convention, as `flux.mg_meter_readings`). Reactive energy imported is Q1 + Q2, exported
 * Q3 + Q4; power factor percent becomes −1..1; the phase current average is the mean of the
 * three phases.
 */
export function meterFromSunSpec(v: Values): MeterTelemetry {
  const phases = [num(v.AphA), num(v.AphB), num(v.AphC)];
  const pf = num(v.PF);
  const avg = phases.every((p) => p !== undefined) ? (phases as number[]).reduce((a, b) => a + b, 0) / 3 : undefined;
  return compact({
    frequency: num(v.Hz),
    voltageLineAverage: num(v.PPV),
    currentPhaseA: phases[0],
    currentPhaseB: phases[1],
    currentPhaseC: phases[2],
    currentPhaseAverage: avg,
    powerPhaseAActive: kilo(v.WphA),
    powerPhaseBActive: kilo(v.WphB),
    powerPhaseCActive: kilo(v.WphC),
    powerTotalActive: kilo(v.W),
    powerTotalReactive: kilo(v.VAR),
    powerTotalApparent: kilo(v.VA),
    powerFactorTotal: pf === undefined ? undefined : pf / 100,
    energyImportedActive: kilo(v.TotWhImp),
    energyExportedActive: kilo(v.TotWhExp),
    energyImportedPhaseAActive: kilo(v.TotWhImpPhA),
    energyExportedPhaseAActive: kilo(v.TotWhExpPhA),
    energyImportedPhaseBActive: kilo(v.TotWhImpPhB),
    energyExportedPhaseBActive: kilo(v.TotWhExpPhB),
    energyImportedPhaseCActive: kilo(v.TotWhImpPhC),
    energyExportedPhaseCActive: kilo(v.TotWhExpPhC),
    energyImportedReactive: kilo(sum(v.TotVArhImpQ1, v.TotVArhImpQ2)),
    energyExportedReactive: kilo(sum(v.TotVArhExpQ3, v.TotVArhExpQ4)),
    energyImportedApparent: kilo(v.TotVAhImp),
    energyExportedApparent: kilo(v.TotVAhExp),
  });
}

const BASE_UNITS = new Set(['W', 'Wh', 'var', 'VA', 'varh', 'VAh', 'Var', 'Varh']);

/** Converts a point's value to Powerplane units by its declared unit (W, Wh, var, VA → kilo). */
function inKilo(map: RegisterMap, name: string, v: PointValue): number | undefined {
  const unit = map.points.find((p) => p.name === name)?.unit;
  const n = num(v);
  return n === undefined ? undefined : unit && BASE_UNITS.has(unit) ? n / 1000 : n;
}

/** BESS telemetry from a flat map's points named in {@link BESS_POINT_NAMES}. */
export function bessFromMap(map: RegisterMap, v: Values): BessTelemetry {
  const got = Object.fromEntries(BESS_POINT_NAMES.map((n) => [n, inKilo(map, n, v[n])])) as Record<
    (typeof BESS_POINT_NAMES)[number],
    number | undefined
  >;
  return compact({
    soePercent: got.soePercent,
    targetPowerKw: got.targetPower,
    activePowerKw: got.activePower,
    availableInverterBlocks: got.availableInverterBlocks,
    commandSource: got.commandSource,
    nominalEnergyKwh: got.nominalEnergy,
  });
}

/** Meter telemetry from a flat map's points named in {@link METER_POINT_NAMES}. */
export function meterFromMap(map: RegisterMap, v: Values): MeterTelemetry {
  return compact(Object.fromEntries(METER_POINT_NAMES.map((n) => [n, inKilo(map, n, v[n])])) as MeterTelemetry);
}
