/**
 * A simulated battery laid out by a flat register map with a control section: a custom map
 * as a device's registry entry or an agent's site config holds it, read and written through
 * the same codec as the client's. The power point applies while the mode point holds its
 * enable value (always, for a map without a mode point). A change of the heartbeat point
 * refreshes the device's timeout (for a map without one, a write of the power point does);
 * when no refresh comes for the timeout point's seconds (0 = never) the battery drops to
 * local control: mode at its disable value, power 0. Telemetry is kept in the points named
 * for their role: `soePercent`, `activePower`, `targetPower` (the power in force),
 * `nominalEnergy`, `availableInverterBlocks`, `commandSource` (1 remote, 0 local).
 * Both register tables are served from one image; write-only points read as written.
 */
import { decodePoints, encodeWrites, type CodecPoint } from '../modbus/map-codec.ts';
import { registerCount } from '../modbus/point-types.ts';
import type { RegisterMap } from '../modbus/register-map.ts';
import { type BatteryEnergy, type BatteryRatings, DEFAULT_RATINGS, stepEnergy } from './battery-physics.ts';
import type { SimDevice } from './sim-device.ts';
import { ModbusServerException } from './modbus-request.ts';

/** Command source values the simulated device reports in its `commandSource` point. */
export const MAP_COMMAND_SOURCE = Object.freeze({ local: 0, remote: 1 });

/** Snapshot of a simulated register-map battery, in W and %. */
export interface MapSnapshot {
  soePercent: number;
  activePowerW: number;
  /** The power in force, W: the power point while enabled, else 0. */
  commandW: number;
  /** Value of the mode point; undefined for a map without one. */
  mode: number | undefined;
  /** Value of the heartbeat point; undefined for a map without one. */
  heartbeat: number | undefined;
  /** Value of the timeout point, s (0 = never). */
  timeoutS: number;
  /** Whether the device is under remote control. */
  remote: boolean;
  /** Times the device reverted because no refresh arrived in time. */
  reversions: number;
}

/** Configuration of one simulated register-map battery; everything but the map has a default. */
export interface MapDeviceConfig extends Partial<BatteryRatings> {
  /** The map the device serves; it must have a control section. */
  map: RegisterMap;
  unitId: number;
  nowMs: number;
  /** Initial state of energy, %; default 50. */
  initialSoePercent?: number;
  /** Inverter blocks available; default 4. */
  blocks?: number;
  /** Values of the map's `sunssf` points by name; default 0. */
  scaleFactors?: Readonly<Record<string, number>>;
}

/** A simulated register-map battery. */
export interface MapDevice extends SimDevice {
  snapshot(nowMs: number): MapSnapshot;
}

/** Units of the map in thousands (kW, kWh): values in them are W and Wh divided by 1000. */
const KILO_UNITS = new Set(['kW', 'kWh', 'kvar', 'kVA']);

/** Creates a simulated battery serving `config.map` (defaults: 100 kW, 200 kWh, SoE 50 %, 4 blocks). */
export function createMapDevice(config: MapDeviceConfig): MapDevice {
  const { map } = config;
  const c = map.control;
  if (!c) throw new RangeError(`map ${map.name ?? ''} has no control section`);
  const r: BatteryRatings = { ...DEFAULT_RATINGS, ...config };
  const byName = new Map(map.points.map((p) => [p.name, p]));
  const size = Math.max(...map.points.map((p) => p.address + registerCount(p.type, p.length)));
  const regs = new Uint16Array(size);
  const writable = new Set<number>();
  for (const p of map.points) {
    if (p.access === 'R') continue;
    for (let i = 0; i < registerCount(p.type, p.length); i++) writable.add(p.address + i);
  }
  const opts = { wordOrder: map.wordOrder, notImplemented: map.notImplemented };
  const scaleFactors: Record<string, number> = {};
  for (const p of map.points) if (p.type === 'sunssf') scaleFactors[p.name] = config.scaleFactors?.[p.name] ?? 0;
  const energy: BatteryEnergy = { soePercent: config.initialSoePercent ?? 50, dischargedWh: 0, chargedWh: 0 };
  let t = config.nowMs;
  let lastBeat = t;
  let powerW = 0;
  let reversions = 0;

  const kilo = (name: string): number => (KILO_UNITS.has(byName.get(name)?.unit ?? '') ? 1000 : 1);
  const set = (name: string, value: number): void => {
    if (!byName.has(name)) return;
    for (const w of encodeWrites(map.points, { [name]: value }, scaleFactors, opts)) regs.set(w.values, w.address);
  };
  const get = (name: string): number | undefined => {
    const p = byName.get(name);
    if (!p) return undefined;
    const points: CodecPoint[] = p.scaleFactorPoint ? [p, byName.get(p.scaleFactorPoint)!] : [p];
    const table = p.table ?? 'holding';
    const image = [
      { table, address: 0, count: size, registers: regs },
      { table: 'holding' as const, address: 0, count: size, registers: regs },
    ];
    const v = decodePoints(points, image, opts)[name];
    return typeof v === 'number' ? v : undefined;
  };
  for (const [name, sf] of Object.entries(scaleFactors)) set(name, sf);
  set('nominalEnergy', r.capacityWh / kilo('nominalEnergy'));
  set('availableInverterBlocks', config.blocks ?? 4);
  if (c.modePoint) set(c.modePoint, c.modeDisableValue ?? 0);

  const remote = (): boolean => (c.modePoint ? get(c.modePoint) === (c.modeEnableValue ?? 1) : (get(c.powerPoint) ?? 0) !== 0);
  const command = (): number => (remote() ? (get(c.powerPoint) ?? 0) * kilo(c.powerPoint) : 0);
  const advance = (now: number): void => {
    const timeoutMs = (c.timeoutPoint ? (get(c.timeoutPoint) ?? 0) : 0) * 1000;
    const deadline = remote() && timeoutMs > 0 ? lastBeat + timeoutMs : Number.POSITIVE_INFINITY;
    if (now >= deadline && deadline > t) {
      powerW = stepEnergy(energy, command(), deadline - t, r);
      t = deadline;
      if (c.modePoint) set(c.modePoint, c.modeDisableValue ?? 0);
      set(c.powerPoint, 0);
      reversions++;
    }
    if (now > t) {
      powerW = stepEnergy(energy, command(), now - t, r);
      t = now;
    }
    powerW = stepEnergy(energy, command(), 0, r);
    set('soePercent', energy.soePercent);
    set('activePower', powerW / kilo('activePower'));
    if ((c.readbackPoint ?? c.powerPoint) !== c.powerPoint) set(c.readbackPoint!, command() / kilo(c.readbackPoint!));
    set('commandSource', remote() ? MAP_COMMAND_SOURCE.remote : MAP_COMMAND_SOURCE.local);
  };

  return {
    kind: 'custom',
    read: (_table, address, count, nowMs) => {
      if (address + count > size) throw new ModbusServerException(2);
      advance(nowMs);
      return regs.slice(address, address + count);
    },
    write: (address, values, nowMs) => {
      advance(nowMs);
      for (let i = 0; i < values.length; i++) {
        if (!writable.has(address + i)) throw new ModbusServerException(2, `register ${address + i} is not writable`);
      }
      const beat = c.heartbeatPoint ? get(c.heartbeatPoint) : undefined;
      const power = byName.get(c.powerPoint)!;
      regs.set(values, address);
      const touchesPower = address < power.address + registerCount(power.type, power.length) && address + values.length > power.address;
      if (c.heartbeatPoint ? get(c.heartbeatPoint) !== beat : touchesPower) lastBeat = nowMs;
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
        commandW: command(),
        mode: c.modePoint ? get(c.modePoint) : undefined,
        heartbeat: c.heartbeatPoint ? get(c.heartbeatPoint) : undefined,
        timeoutS: c.timeoutPoint ? (get(c.timeoutPoint) ?? 0) : 0,
        remote: remote(),
        reversions,
      };
    },
  };
}
