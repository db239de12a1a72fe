/**
 * How the setpoint writer commands one device, per profile: SunSpec (704 W-set controls, 802
 * `CtrlHb`) or a flat register map (Tesla-style or custom). The writer only sees
 * {@link DeviceControl}; register layouts stay here.
 */
import { decodeRaw } from './codec.ts';
import { CodecRangeError, DeviceProfileError, SetpointOutOfRangeError } from './errors.ts';
import { type CodecPoint, decodePoints, encodeWrites, planReads, type ReadResult, type WriteBlock } from './map-codec.ts';
import type { ModbusClient } from './modbus-client.ts';
import type { RegisterMap } from './register-map.ts';
import { discoverSunSpec, readSunSpecModel, sunSpecCodecPoints } from './sunspec-discovery.ts';
import { cachedSunSpecMap, rememberSunSpecMap } from './sunspec-map-cache.ts';
import { getSunSpecModel } from './sunspec-models.ts';
import { TESLA_POWERPACK_MAP } from './tesla-profile.ts';
import type { RegisterProfile } from './types.ts';

/** What the device should hold after a command: raw register expectations, compared on read-back. */
export interface Expectation {
  /** Human description for failure reasons, e.g. `WSet=-500 WSetEna=1`. */
  describe: string;
  /** Point name → expected raw value. */
  raw: Record<string, number>;
  /** Registers to write to reach it. */
  writes: WriteBlock[];
}

/** One device's control surface, used by the setpoint writer after every (re)connection. */
export interface DeviceControl {
  /**
   * Learns the device's layout and current scale factors; run on every new connection, since a
   * restarted device may report other scale factors. Expectations made before belong to the old
   * connection.
   */
  prepare(): Promise<void>;
  /** Arms the device's fallback: on silence for `timeoutS` it reverts on its own. */
  arm(timeoutS: number): Promise<void>;
  /**
   * The expectation for a target (kW, positive = discharge) or, with `release`, for releasing
   * control, encoded with the scale factors of the last {@link DeviceControl.prepare}.
   */
  expect(targetKw: number, release: boolean): Expectation;
  /** Writes an expectation's registers. */
  apply(e: Expectation): Promise<void>;
  /** Reads back; returns undefined when the device holds the expectation, else why not. */
  check(e: Expectation): Promise<string | undefined>;
  /** Refreshes the heartbeat once; a device without a heartbeat register gets `active` (the setpoint it holds) written again. */
  heartbeat(active: Expectation): Promise<void>;
}

const WSET_BLOCK = ['WSetEna', 'WSetMod', 'WSet'] as const;

function toSetpointError(err: unknown, targetKw: number): never {
  if (err instanceof CodecRangeError) throw new SetpointOutOfRangeError(`target power ${targetKw} kW cannot be written: ${err.message}`);
  throw err;
}

async function readPoints(client: ModbusClient, points: CodecPoint[]): Promise<ReadResult[]> {
  const out: ReadResult[] = [];
  for (const b of planReads(points)) {
    const registers =
      b.table === 'input' ? await client.readInputRegisters(b.address, b.count) : await client.readHoldingRegisters(b.address, b.count);
    out.push({ ...b, registers });
  }
  return out;
}

async function applyWrites(client: ModbusClient, writes: readonly WriteBlock[]): Promise<void> {
  for (const w of writes) await client.writeRegisters(w.address, w.values);
}

function compare(
  points: readonly CodecPoint[],
  results: readonly ReadResult[],
  e: Expectation,
  notImplemented: boolean,
): string | undefined {
  const held: string[] = [];
  let ok = true;
  for (const [name, want] of Object.entries(e.raw)) {
    const p = points.find((q) => q.name === name);
    const r = p && results.find((x) => x.address <= p.address && p.address < x.address + x.registers.length);
    const got =
      p && r
        ? decodeRaw(r.registers, p.address - r.address, p.type, { notImplemented, ...(p.wordOrder ? { wordOrder: p.wordOrder } : {}) })
        : undefined;
    held.push(`${name}=${String(got)}`);
    if (got !== want) ok = false;
  }
  return ok ? undefined : `read-back mismatch: wrote ${e.describe}, device holds ${held.join(' ')}`;
}

/**
 * SunSpec control through model 704 and 802 `CtrlHb`; with `cacheKey`, the model chain
 * discovered once is reused (see `sunspec-map-cache.ts`).
 */
function createSunSpecControl(client: ModbusClient, cacheKey?: string): DeviceControl {
  const m704 = getSunSpecModel(704);
  let points704: CodecPoint[] = [];
  let hbPoint: CodecPoint | undefined;
  let wsetSf = 0;
  let hb = 0;
  const point = (name: string): CodecPoint => {
    const p = points704.find((q) => q.name === name);
    if (!p) throw new DeviceProfileError(`model 704 lacks ${name}`);
    return p;
  };
  return {
    prepare: async () => {
      const cached = cacheKey === undefined ? undefined : await cachedSunSpecMap(client, cacheKey, [704, 802]);
      const map = cached ?? (await discoverSunSpec(client));
      if (cacheKey !== undefined && !cached) rememberSunSpecMap(cacheKey, map);
      const inst704 = map.find(704);
      if (!inst704) throw new DeviceProfileError('device has no SunSpec model 704 (DER AC controls)');
      points704 = sunSpecCodecPoints(m704, inst704);
      const sf = await readSunSpecModel(client, inst704, ['WSet_SF']);
      if (typeof sf.WSet_SF !== 'number') throw new DeviceProfileError('device reports no WSet_SF');
      wsetSf = sf.WSet_SF;
      const inst802 = map.find(802);
      hbPoint = inst802 ? sunSpecCodecPoints(getSunSpecModel(802), inst802, ['CtrlHb'])[0] : undefined;
      if (inst802) {
        const v = await readSunSpecModel(client, inst802, ['CtrlHb']);
        hb = typeof v.CtrlHb === 'number' ? v.CtrlHb : 0;
      }
    },
    arm: async (timeoutS) => {
      await applyWrites(client, encodeWrites(points704, { WSetRvrt: 0, WSetEnaRvrt: 1, WSetRvrtTms: timeoutS }, { WSet_SF: wsetSf }));
    },
    expect: (targetKw, release) => {
      const watts = release ? 0 : targetKw * 1000;
      try {
        const values = { WSetEna: release ? 0 : 1, WSetMod: 1, WSet: watts };
        const writes = encodeWrites(points704, values, { WSet_SF: wsetSf });
        const raw = decodeRaw(
          writes.flatMap((w) => w.values),
          2,
          'int32',
        ) as number;
        return {
          describe: `WSetEna=${values.WSetEna} WSet=${raw} (WSet_SF=${wsetSf})`,
          raw: { WSetEna: values.WSetEna, WSet: raw },
          writes,
        };
      } catch (err) {
        return toSetpointError(err, targetKw);
      }
    },
    apply: (e) => applyWrites(client, e.writes),
    check: async (e) => {
      const pts = WSET_BLOCK.map(point);
      return compare(pts, await readPoints(client, pts), e, true);
    },
    heartbeat: async (active) => {
      if (!hbPoint) {
        await applyWrites(client, active.writes);
        return;
      }
      hb = (hb + 1) % 0xffff;
      await client.writeRegisters(hbPoint.address, [hb]);
    },
  };
}

/** Control of a flat register map through its `control` section. */
function createMapControl(client: ModbusClient, map: RegisterMap): DeviceControl {
  const c = map.control;
  if (!c) throw new DeviceProfileError(`register map ${map.name ?? ''} has no control section`);
  const byName = new Map(map.points.map((p) => [p.name, p]));
  const get = (name: string): CodecPoint => byName.get(name) as CodecPoint;
  const opts = { wordOrder: map.wordOrder, notImplemented: map.notImplemented };
  const sfNames = [
    ...new Set(
      [c.powerPoint, c.readbackPoint ?? c.powerPoint]
        .map((n) => byName.get(n)?.scaleFactorPoint)
        .filter((n): n is string => n !== undefined),
    ),
  ];
  const scaleFactors: Record<string, number | undefined> = {};
  const [beatA, beatB] = c.heartbeatValues ?? [0xaa55, 0x55aa];
  let beat: number | undefined;
  const nextBeat = (): number => {
    beat = (c.heartbeat ?? 'toggle') === 'toggle' ? (beat === beatA ? beatB : beatA) : ((beat ?? 0) + 1) & 0xffff;
    return beat;
  };
  const powerUnitFactor = byName.get(c.powerPoint)?.unit === 'kW' ? 1 : 1000;
  return {
    prepare: async () => {
      const pts = [...sfNames, ...(c.heartbeatPoint ? [c.heartbeatPoint] : [])].map(get);
      if (pts.length === 0) return;
      const values = decodePoints(pts, await readPoints(client, pts), opts);
      for (const n of sfNames) scaleFactors[n] = typeof values[n] === 'number' ? values[n] : undefined;
      if (c.heartbeatPoint && typeof values[c.heartbeatPoint] === 'number') beat = values[c.heartbeatPoint] as number;
    },
    arm: async (timeoutS) => {
      if (c.timeoutPoint) await applyWrites(client, encodeWrites(map.points, { [c.timeoutPoint]: timeoutS }, scaleFactors, opts));
    },
    expect: (targetKw, release) => {
      const power = release ? 0 : targetKw * powerUnitFactor;
      const values: Record<string, number> = { [c.powerPoint]: power };
      if (c.modePoint) values[c.modePoint] = release ? (c.modeDisableValue ?? 0) : (c.modeEnableValue ?? 1);
      if (c.heartbeatPoint) values[c.heartbeatPoint] = nextBeat();
      try {
        const writes = encodeWrites(map.points, values, scaleFactors, opts);
        const readback = c.readbackPoint ?? c.powerPoint;
        const expectValues: Record<string, number> = { [readback]: power };
        if (c.modePoint) expectValues[c.modePoint] = values[c.modePoint] as number;
        const raw: Record<string, number> = {};
        for (const [name, v] of Object.entries(expectValues)) {
          const p = get(name);
          const regs = encodeWrites([p], { [name]: v }, scaleFactors, opts).flatMap((w) => w.values);
          raw[name] = decodeRaw(regs, 0, p.type, { notImplemented: false, wordOrder: p.wordOrder ?? map.wordOrder }) as number;
        }
        return {
          describe: Object.entries(raw)
            .map(([k, v]) => `${k}=${v}`)
            .join(' '),
          raw,
          writes,
        };
      } catch (err) {
        return toSetpointError(err, targetKw);
      }
    },
    apply: (e) => applyWrites(client, e.writes),
    check: async (e) => {
      const pts = Object.keys(e.raw).map(get);
      return compare(pts, await readPoints(client, pts), e, map.notImplemented);
    },
    heartbeat: async (active) => {
      // Without a heartbeat register the setpoint itself is the refresh: written again, it
      // restarts the device's timeout, as a beat would.
      if (!c.heartbeatPoint) {
        await applyWrites(client, active.writes);
        return;
      }
      await applyWrites(client, encodeWrites(map.points, { [c.heartbeatPoint]: nextBeat() }, scaleFactors, opts));
    },
  };
}

/**
 * Creates the {@link DeviceControl} of `profile` over `client`. `cacheKey` (see
 * `sunspec-map-cache.ts`) names the device, so a SunSpec chain discovered once is reused.
 */
export function createDeviceControl(profile: RegisterProfile, client: ModbusClient, cacheKey?: string): DeviceControl {
  switch (profile.kind) {
    case 'sunspec':
      return createSunSpecControl(client, cacheKey);
    case 'tesla-powerpack':
      return createMapControl(client, TESLA_POWERPACK_MAP);
    case 'custom':
      return createMapControl(client, profile.map);
    default: {
      const never: never = profile;
      throw new DeviceProfileError(`unknown profile ${JSON.stringify(never)}`);
    }
  }
}
