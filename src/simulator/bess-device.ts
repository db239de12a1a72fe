/**
 * A simulated SunSpec battery: models 1, 701, 704, 713 and 802. `WSet` applies only while
 * `WSetEna` = 1; any write to the 704 W-set controls or to 802 `CtrlHb` refreshes the
 * reversion timer; without a refresh for `WSetRvrtTms` seconds the device reverts to
 * `WSetRvrt` / `WSetEnaRvrt` and reports local control in 802 `LocRemCtl`.
 */
import { applyScaleFactor } from '../modbus/codec.ts';
import { type BatteryEnergy, type BatteryRatings, DEFAULT_RATINGS, fitScaleFactor, stepEnergy } from './battery-physics.ts';
import type { SimDevice } from './sim-device.ts';
import { ModbusServerException } from './modbus-request.ts';
import { createSunSpecImage, type SunSpecImage } from './sunspec-image.ts';

/** Configuration of one simulated battery; every field has a default. */
export interface BessConfig extends BatteryRatings {
  /** Initial state of energy, %; default 50. */
  initialSoePercent: number;
  /** The device's `WSet_SF` (power-of-ten exponent of `WSet`); default 0. */
  wsetSf: number;
  /** Serial number in model 1; default `BESS-<unitId>`. */
  serialNumber: string;
}

/** Snapshot of a simulated battery, in W and %. */
export interface BessSnapshot {
  soePercent: number;
  activePowerW: number;
  wsetEna: number | undefined;
  wsetW: number | undefined;
  wsetRvrtW: number | undefined;
  wsetEnaRvrt: number | undefined;
  wsetRvrtTms: number | undefined;
  /** 0 = remote, 1 = local (802 `LocRemCtl`). */
  locRemCtl: number;
  ctrlHb: number | undefined;
  /** Times the device reverted because no refresh arrived in time. */
  reversions: number;
}

const ENUM_LIMITS: Record<string, number> = {
  WSetEna: 1,
  WSetMod: 1,
  WSetEnaRvrt: 1,
  PFWInjEna: 1,
  PFWAbsEna: 1,
  WMaxLimPctEna: 1,
  VarSetEna: 1,
};

/** Creates a simulated battery with `config` (defaults: 100 kW, 200 kWh, SoE 50 %, WSet_SF 0). */
export function createBessDevice(
  config: Partial<BessConfig> & { unitId: number; nowMs: number },
): SimDevice & { snapshot(nowMs: number): BessSnapshot; image: SunSpecImage } {
  const c: BessConfig = { ...DEFAULT_RATINGS, initialSoePercent: 50, wsetSf: 0, serialNumber: `BESS-${config.unitId}`, ...config };
  const img = createSunSpecImage([1, 701, 704, 713, 802]);
  const energy: BatteryEnergy = { soePercent: c.initialSoePercent, dischargedWh: 1_000_000, chargedWh: 1_000_000 };
  const wSf = fitScaleFactor(c.ratedPowerW);
  const whSf = fitScaleFactor(c.capacityWh, 65534);
  let t = config.nowMs;
  let remote = false;
  let lastRefresh = t;
  let reversions = 0;
  let powerW = 0;

  img.set(1, 'Mn', 'Powerplane');
  img.set(1, 'Md', 'SimBESS');
  img.set(1, 'Vr', '1.0');
  img.set(1, 'SN', c.serialNumber);
  img.set(1, 'DA', config.unitId);
  img.set(701, 'ACType', 2);
  img.set(701, 'St', 1);
  img.set(701, 'InvSt', 3);
  img.set(701, 'ConnSt', 1);
  img.set(701, 'Alrm', 0);
  for (const [p, v] of [
    ['W_SF', wSf],
    ['VA_SF', wSf],
    ['Var_SF', wSf],
    ['Hz_SF', -2],
    ['V_SF', -1],
    ['TotWh_SF', 0],
    ['PF_SF', -2],
    ['A_SF', -1],
  ] as const)
    img.set(701, p, v);
  img.set(701, 'Hz', 5000);
  img.set(701, 'LLV', 4000);
  img.set(701, 'LNV', 2300);
  img.set(701, 'Var', 0);
  img.set(701, 'PF', 100);
  for (const p of ['PFWInjEna', 'PFWAbsEna', 'WMaxLimPctEna', 'VarSetEna', 'WSetEna', 'WSetEnaRvrt']) img.set(704, p, 0);
  img.set(704, 'WSetMod', 1);
  img.set(704, 'WSet', 0);
  img.set(704, 'WSetRvrt', 0);
  img.set(704, 'WSetRvrtTms', 0);
  img.set(704, 'WSetRvrtRem', 0);
  img.set(704, 'WSet_SF', c.wsetSf);
  img.set(713, 'WH_SF', whSf);
  img.set(713, 'Pct_SF', -1);
  img.set(713, 'WHRtg', Math.round(c.capacityWh / 10 ** whSf));
  img.set(713, 'SoH', 1000);
  img.set(713, 'Sta', 0);
  for (const [p, v] of [
    ['AHRtg_SF', 0],
    ['WHRtg_SF', whSf],
    ['WChaDisChaMax_SF', wSf],
    ['SoC_SF', -1],
    ['V_SF', -1],
    ['CellV_SF', -3],
    ['A_SF', 0],
    ['AMax_SF', 0],
    ['W_SF', wSf],
  ] as const)
    img.set(802, p, v);
  img.set(802, 'AHRtg', Math.round(c.capacityWh / 800));
  img.set(802, 'WHRtg', Math.round(c.capacityWh / 10 ** whSf));
  img.set(802, 'WChaRteMax', Math.round(c.ratedPowerW / 10 ** wSf));
  img.set(802, 'WDisChaRteMax', Math.round(c.ratedPowerW / 10 ** wSf));
  img.set(802, 'SoCMax', Math.round(c.soeMaxPercent * 10));
  img.set(802, 'SoCMin', Math.round(c.soeMinPercent * 10));
  img.set(802, 'Typ', 4);
  img.set(802, 'State', 3);
  img.set(802, 'CtrlHb', 0);
  img.set(802, 'AlmRst', 0);
  img.set(802, 'SetOp', 1);
  img.set(802, 'SetInvState', 1);
  for (const p of ['Evt1', 'Evt2', 'EvtVnd1', 'EvtVnd2']) img.set(802, p, 0);
  img.set(802, 'V', 8000);

  const num = (model: number, point: string): number | undefined => {
    const v = img.get(model, point);
    return typeof v === 'number' ? v : undefined;
  };
  const commandW = (): number => {
    if (num(704, 'WSetEna') !== 1) return 0;
    const raw = num(704, 'WSet');
    const sf = num(704, 'WSet_SF');
    return raw === undefined || sf === undefined ? 0 : applyScaleFactor(raw, sf);
  };
  const rvrtMs = (): number => (num(704, 'WSetRvrtTms') ?? 0) * 1000;

  const revert = (): void => {
    img.set(704, 'WSet', num(704, 'WSetRvrt') ?? 0);
    img.set(704, 'WSetEna', num(704, 'WSetEnaRvrt') ?? 0);
    remote = false;
    reversions++;
  };

  const publish = (): void => {
    const w = Math.round(powerW / 10 ** wSf);
    img.set(701, 'W', w);
    img.set(701, 'VA', Math.abs(w));
    img.set(802, 'W', w);
    img.set(701, 'TotWhInj', Math.round(energy.dischargedWh));
    img.set(701, 'TotWhAbs', Math.round(energy.chargedWh));
    img.set(701, 'A', Math.round((powerW / (3 * 230)) * 10));
    img.set(802, 'A', Math.round(powerW / 800));
    const soc = Math.round(energy.soePercent * 10);
    img.set(713, 'SoC', soc);
    img.set(802, 'SoC', soc);
    img.set(713, 'WHAvail', Math.round(((Math.max(0, energy.soePercent - c.soeMinPercent) / 100) * c.capacityWh) / 10 ** whSf));
    img.set(802, 'LocRemCtl', remote ? 0 : 1);
    img.set(802, 'ChaSt', powerW > 0 ? 3 : powerW < 0 ? 4 : 6);
    img.set(802, 'Hb', Math.floor(t / 1000) % 0xfffe);
    const remaining = remote && rvrtMs() > 0 ? Math.max(0, Math.ceil((lastRefresh + rvrtMs() - t) / 1000)) : 0;
    img.set(704, 'WSetRvrtRem', remaining);
  };

  const advance = (now: number): void => {
    for (let guard = 0; t < now && guard < 4; guard++) {
      const deadline = remote && rvrtMs() > 0 ? lastRefresh + rvrtMs() : Number.POSITIVE_INFINITY;
      const until = Math.min(now, deadline);
      powerW = stepEnergy(energy, commandW(), until - t, c);
      t = until;
      if (until >= deadline) revert();
    }
    powerW = stepEnergy(energy, commandW(), 0, c);
    publish();
  };

  advance(t);

  return {
    kind: 'bess',
    image: img,
    read: (_table, address, count, nowMs) => {
      advance(nowMs);
      return img.read(address, count);
    },
    write: (address, values, nowMs) => {
      advance(nowMs);
      const before = img.read(address, values.length).slice();
      const touched = new Set<string>();
      for (let i = 0; i < values.length; i++) {
        const owner = img.pointAt(address + i);
        if (!owner || owner.point.access !== 'RW') throw new ModbusServerException(2, `register ${address + i} is not writable`);
        touched.add(`${owner.modelId}.${owner.point.name}`);
      }
      img.regs.set(values, address - img.base);
      for (const key of touched) {
        const [model, name = ''] = key.split('.');
        const limit = model === '704' ? ENUM_LIMITS[name] : undefined;
        const v = img.get(Number(model), name);
        if (limit !== undefined && typeof v === 'number' && v > limit) {
          img.regs.set(before, address - img.base);
          throw new ModbusServerException(3, `${name} ${v} is out of range`);
        }
      }
      const setpointWrite = [...touched].some((k) => k.startsWith('704.WSet') && k !== '704.WSetRvrtTms');
      if (setpointWrite || touched.has('802.CtrlHb')) lastRefresh = nowMs;
      if (touched.has('704.WSetEna') || touched.has('704.WSet')) remote = num(704, 'WSetEna') === 1;
      advance(nowMs);
    },
    activePowerW: (nowMs) => {
      advance(nowMs);
      return powerW;
    },
    snapshot: (nowMs) => {
      advance(nowMs);
      const sf = num(704, 'WSet_SF') ?? 0;
      const scaled = (p: string): number | undefined => {
        const v = num(704, p);
        return v === undefined ? undefined : applyScaleFactor(v, sf);
      };
      return {
        soePercent: energy.soePercent,
        activePowerW: powerW,
        wsetEna: num(704, 'WSetEna'),
        wsetW: scaled('WSet'),
        wsetRvrtW: scaled('WSetRvrt'),
        wsetEnaRvrt: num(704, 'WSetEnaRvrt'),
        wsetRvrtTms: num(704, 'WSetRvrtTms'),
        locRemCtl: remote ? 0 : 1,
        ctrlHb: num(802, 'CtrlHb'),
        reversions,
      };
    },
  };
}
