/**
 * The poller: reads one device's telemetry at its polling interval into BESS or meter reading
 * values. A failed read yields a reading with `error` and no values — unknown, never the last
 * value. SunSpec devices are discovered, and a battery's identity (model 1) read, once per
 * connection.
 */
import type pino from 'pino';
import type { PointValue } from './codec.ts';
import { decodePoints, planReads, type ReadResult } from './map-codec.ts';
import { createModbusClient, type ModbusClient } from './modbus-client.ts';
import { discoverSunSpec, readSunSpecModel, readSunSpecModels, type SunSpecMap } from './sunspec-discovery.ts';
import type { RegisterMap } from './register-map.ts';
import { bessFromMap, bessFromSunSpec, meterFromMap, meterFromSunSpec } from './telemetry-mapping.ts';
import { TESLA_POWERPACK_MAP } from './tesla-profile.ts';
import type { BessTelemetry, MeterTelemetry, ModbusEndpoint, RegisterProfile } from './types.ts';

/** One poll's outcome. */
export interface PollReading {
  time: Date;
  bess?: BessTelemetry;
  meter?: MeterTelemetry;
  error?: string;
}

/** Options of {@link createPoller}. */
export interface PollerOptions {
  endpoint: ModbusEndpoint;
  profile: RegisterProfile;
  kind: 'bess' | 'meter';
  /** Time between the starts of polls, ms (a slow poll delays the next, never overlaps it). */
  intervalMs: number;
  onReading: (r: PollReading) => void;
  /** Per-request timeout, ms; default 1000. */
  requestTimeoutMs?: number;
  log?: pino.Logger;
  /** Aborting it stops the poller. */
  signal?: AbortSignal;
}

/** What a poller learns once per connection: the SunSpec model map and the identity values of model 1. */
export interface SunSpecCache {
  sunspec?: SunSpecMap;
  identity?: Record<string, PointValue>;
}

/** The SunSpec points of a BESS reading, read together in as few requests as the layout allows. */
const BESS_POINTS: ReadonlyArray<readonly [number, readonly string[]]> = [
  [701, ['W', 'Hz']],
  [704, ['WSetEna', 'WSet']],
  [713, ['SoC', 'WHRtg', 'WHAvail']],
  [802, ['SoC', 'W', 'LocRemCtl', 'WHRtg', 'SoCMax', 'SoCMin', 'WChaRteMax', 'WDisChaRteMax', 'Hb']],
];
const IDENTITY_POINTS = [1, ['Mn', 'Md', 'SN']] as const;

/** Reads and decodes every point of a flat register map; values by point name, unknown as undefined. */
export async function readRegisterMap(client: ModbusClient, map: RegisterMap): Promise<Record<string, PointValue>> {
  const results: ReadResult[] = [];
  for (const b of planReads(map.points)) {
    const registers =
      b.table === 'input' ? await client.readInputRegisters(b.address, b.count) : await client.readHoldingRegisters(b.address, b.count);
    results.push({ ...b, registers });
  }
  return decodePoints(map.points, results, { wordOrder: map.wordOrder, notImplemented: map.notImplemented });
}

/**
 * Reads one reading from a device; exported for one-shot use (CLI, tests). `cache` keeps what
 * is read once per connection; pass a fresh one for a new connection.
 */
export async function readTelemetry(
  client: ModbusClient,
  profile: RegisterProfile,
  kind: 'bess' | 'meter',
  cache: SunSpecCache = {},
): Promise<Omit<PollReading, 'time'>> {
  if (profile.kind === 'sunspec') {
    cache.sunspec ??= await discoverSunSpec(client);
    const map = cache.sunspec;
    if (kind === 'meter') {
      const inst = map.find(203);
      return { meter: inst ? meterFromSunSpec(await readSunSpecModel(client, inst)) : {} };
    }
    const values = await readSunSpecModels(client, map, cache.identity ? BESS_POINTS : [...BESS_POINTS, IDENTITY_POINTS]);
    cache.identity ??= values.get(1) ?? {};
    const [m701, m704, m713, m802] = [values.get(701), values.get(704), values.get(713), values.get(802)];
    return {
      bess: bessFromSunSpec({
        m1: cache.identity,
        ...(m701 ? { m701 } : {}),
        ...(m704 ? { m704 } : {}),
        ...(m713 ? { m713 } : {}),
        ...(m802 ? { m802 } : {}),
      }),
    };
  }
  const map = profile.kind === 'custom' ? profile.map : TESLA_POWERPACK_MAP;
  const values = await readRegisterMap(client, map);
  return kind === 'meter' ? { meter: meterFromMap(map, values) } : { bess: bessFromMap(map, values) };
}

/** Creates and starts a poller; the first poll runs at once. `stop()` is idempotent and closes the connection. */
export function createPoller(opts: PollerOptions): { stop(): Promise<void> } {
  const log = opts.log?.child({ endpoint: opts.endpoint });
  const client = createModbusClient({ endpoint: opts.endpoint, timeoutMs: opts.requestTimeoutMs ?? 1000, ...(log ? { log } : {}) });
  let cache: SunSpecCache = {};
  let stopped = false;
  let wake: (() => void) | undefined;

  const loop = async (): Promise<void> => {
    while (!stopped) {
      const started = performance.now();
      let reading: PollReading;
      // The client reconnects on its own after the device closed the connection (a restart):
      // whatever was learnt on the old connection may no longer hold.
      if (!client.isOpen) cache = {};
      try {
        reading = { time: new Date(), ...(await readTelemetry(client, opts.profile, opts.kind, cache)) };
      } catch (err) {
        reading = { time: new Date(), error: err instanceof Error ? err.message : String(err) };
        log?.warn({ error: reading.error }, 'poll failed');
        cache = {};
        await client.close();
      }
      if (stopped) break;
      try {
        opts.onReading(reading);
      } catch (err) {
        log?.error({ err }, 'reading handler threw');
      }
      const delay = Math.max(0, opts.intervalMs - (performance.now() - started));
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wake = undefined;
    }
  };
  const running = loop();
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      stopped = true;
      wake?.();
      await running;
      await client.close();
    })();
    return stopping;
  };
  opts.signal?.addEventListener(
    'abort',
    () => {
      void stop();
    },
    { once: true },
  );
  return { stop };
}
