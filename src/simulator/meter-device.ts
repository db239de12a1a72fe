/**
 * A simulated SunSpec three-phase meter (models 1 and 203) at a site's grid connection. Its
 * power is the site load minus what the site's batteries discharge (positive = import, as in
 * `flux.mg_meter_readings`), balanced over three phases at 230 V / 400 V, 50 Hz; energy
 * counters integrate that power between requests.
 */
import { fitScaleFactor } from './battery-physics.ts';
import type { SimDevice } from './sim-device.ts';
import { ModbusServerException } from './modbus-request.ts';
import { createSunSpecImage, type SunSpecImage } from './sunspec-image.ts';

/** Options of {@link createMeterDevice}. */
export interface MeterOptions {
  unitId: number;
  nowMs: number;
  /** The batteries behind this meter. */
  batteries: readonly SimDevice[];
  /** Site load at a time, W (≥ 0); default a slow sine around half the batteries' rating. */
  loadW: (nowMs: number) => number;
  /** Largest power the meter must represent, W; sizes the scale factors. */
  peakW: number;
}

/** Snapshot of a simulated meter: power W (positive = import) and counters Wh. */
export interface MeterSnapshot {
  powerW: number;
  importedWh: number;
  exportedWh: number;
}

/** Creates a simulated meter following `batteries` and `loadW`. */
export function createMeterDevice(o: MeterOptions): SimDevice & { snapshot(nowMs: number): MeterSnapshot; image: SunSpecImage } {
  const img = createSunSpecImage([1, 203]);
  const wSf = fitScaleFactor(o.peakW * 1.2);
  const aSf = fitScaleFactor((o.peakW * 1.2) / 690) - 1;
  const phaseSf = fitScaleFactor((o.peakW * 1.2) / 3);
  let t = o.nowMs;
  let powerW = 0;
  let importedWh = 5_000_000;
  let exportedWh = 1_000_000;
  img.set(1, 'Mn', 'Powerplane');
  img.set(1, 'Md', 'SimMeter');
  img.set(1, 'Vr', '1.0');
  img.set(1, 'SN', `METER-${o.unitId}`);
  img.set(1, 'DA', o.unitId);
  for (const [p, v] of [
    ['A_SF', aSf],
    ['V_SF', -1],
    ['Hz_SF', -2],
    ['W_SF', Math.max(wSf, phaseSf)],
    ['VA_SF', Math.max(wSf, phaseSf)],
    ['VAR_SF', Math.max(wSf, phaseSf)],
    ['PF_SF', 0],
    ['TotWh_SF', 0],
    ['TotVAh_SF', 0],
    ['TotVArh_SF', 0],
  ] as const)
    img.set(203, p, v);
  for (const p of ['PhV', 'PhVphA', 'PhVphB', 'PhVphC']) img.set(203, p, 2300);
  for (const p of ['PPV', 'PhVphAB', 'PhVphBC', 'PhVphCA']) img.set(203, p, 4000);
  img.set(203, 'Hz', 5000);
  img.set(203, 'Evt', 0);
  for (const p of ['VAR', 'VARphA', 'VARphB', 'VARphC']) img.set(203, p, 0);
  for (const q of ['Q1', 'Q2', 'Q3', 'Q4']) img.set(203, `TotVArh${q === 'Q1' || q === 'Q2' ? 'Imp' : 'Exp'}${q}`, 1000);
  const sf = Math.max(wSf, phaseSf);

  const currentPowerW = (now: number): number => o.loadW(now) - o.batteries.reduce((sum, b) => sum + b.activePowerW(now), 0);

  const publish = (): void => {
    const w = Math.round(powerW / 10 ** sf);
    const wPhase = Math.round(powerW / 3 / 10 ** sf);
    img.set(203, 'W', w);
    img.set(203, 'VA', Math.abs(w));
    for (const ph of ['A', 'B', 'C']) {
      img.set(203, `Wph${ph}`, wPhase);
      img.set(203, `VAph${ph}`, Math.abs(wPhase));
      img.set(203, `PFph${ph}`, 100);
    }
    img.set(203, 'PF', 100);
    const amps = Math.round(Math.abs(powerW) / 690 / 10 ** aSf);
    img.set(203, 'A', Math.round((3 * Math.abs(powerW)) / 690 / 10 ** aSf));
    for (const ph of ['A', 'B', 'C']) img.set(203, `Aph${ph}`, amps);
    const imp = Math.round(importedWh);
    const exp = Math.round(exportedWh);
    img.set(203, 'TotWhImp', imp);
    img.set(203, 'TotWhExp', exp);
    img.set(203, 'TotVAhImp', imp);
    img.set(203, 'TotVAhExp', exp);
    for (const ph of ['A', 'B', 'C']) {
      img.set(203, `TotWhImpPh${ph}`, Math.max(1, Math.round(imp / 3)));
      img.set(203, `TotWhExpPh${ph}`, Math.max(1, Math.round(exp / 3)));
      img.set(203, `TotVAhImpPh${ph}`, Math.max(1, Math.round(imp / 3)));
      img.set(203, `TotVAhExpPh${ph}`, Math.max(1, Math.round(exp / 3)));
    }
  };

  const advance = (now: number): void => {
    if (now > t) {
      const wh = (powerW * (now - t)) / 3_600_000;
      if (wh > 0) importedWh += wh;
      else exportedWh -= wh;
      t = now;
    }
    powerW = currentPowerW(now);
    publish();
  };
  advance(t);

  return {
    kind: 'meter',
    image: img,
    read: (_table, address, count, nowMs) => {
      advance(nowMs);
      return img.read(address, count);
    },
    write: (address) => {
      throw new ModbusServerException(2, `meter register ${address} is read only`);
    },
    activePowerW: (nowMs) => {
      advance(nowMs);
      return -powerW;
    },
    snapshot: (nowMs) => {
      advance(nowMs);
      return { powerW, importedWh, exportedWh };
    },
  };
}
