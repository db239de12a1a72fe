/**
 * The simulator's library API: a fleet of SunSpec batteries, SunSpec meters, Tesla-style
 * controllers and batteries on a custom register map served over Modbus TCP, with a write log and fault injection for
 * tests. Devices are spread over as many ports as needed, at most `unitsPerPort` (default 247,
 * the Modbus limit) unit ids per port, so a fleet of 1000 batteries is five ports.
 */
import type pino from 'pino';
import type { RegisterMap } from '../modbus/register-map.ts';
import type { ModbusEndpoint } from '../modbus/types.ts';
import { type BessConfig, type BessSnapshot, createBessDevice } from './bess-device.ts';
import type { SimDevice, SimulatedKind } from './sim-device.ts';
import { createMeterDevice, type MeterSnapshot } from './meter-device.ts';
import { createFleetHandler, type DeviceFaults, type WriteLogEntry } from './fleet-handler.ts';
import type { ModbusTcpServer, ModbusTcpServerOptions } from './modbus-request.ts';
import { createMapDevice, type MapSnapshot } from './map-device.ts';
import { startModbusTcpServer } from './modbus-tcp-server.ts';
import { startServerTcp } from './servertcp-server.ts';
import { createTeslaDevice, type TeslaSnapshot } from './tesla-device.ts';

/** Snapshot of any simulated device; the fields of its kind are present. */
export type DeviceState = Partial<BessSnapshot & TeslaSnapshot & MeterSnapshot & MapSnapshot>;

export type { DeviceFaults, WriteLogEntry };

/**
 * How the simulator speaks Modbus TCP: `servertcp` is modbus-serial's `ServerTCP` (each request
 * deferred about 1 ms by the library); `fast` is a minimal `node:net` server answering at once,
 * for benchmarks that must measure the client, not the simulator. Both serve the same devices,
 * faults and write log.
 */
export type SimulatorTransport = 'servertcp' | 'fast';

/** The transports, for validating input. */
export const SIMULATOR_TRANSPORTS: readonly SimulatorTransport[] = Object.freeze(['servertcp', 'fast']);

const TRANSPORTS: Record<SimulatorTransport, (opts: ModbusTcpServerOptions) => Promise<ModbusTcpServer>> = {
  servertcp: startServerTcp,
  fast: startModbusTcpServer,
};

/** A device of the simulated fleet. */
export interface SimulatedDevice {
  kind: SimulatedKind;
  /** Index within its kind, from 0. */
  index: number;
  /** Stable key such as `bess-0`, `meter-1`, `tesla-0`, `custom-0`. */
  key: string;
  endpoint: ModbusEndpoint;
  /** Mutable fault switches of this device. */
  faults: DeviceFaults;
  /** Current state (advanced to now): {@link BessSnapshot} for batteries, power and counters for meters. */
  state(): DeviceState;
  /** Reads registers as a client would (for assertions), bypassing faults and the log. */
  readRegisters(address: number, count: number): number[];
  /** Writes registers directly (test set-up), bypassing faults and the log. */
  writeRegisters(address: number, values: readonly number[]): void;
  /** Reads clients asked of this device starting at `address`, since the simulator started. */
  readsAt(address: number): number;
}

/** Options of {@link startSimulator}. */
export interface SimulatorOptions {
  /** Modbus TCP server; default `servertcp` (modbus-serial's `ServerTCP`). See {@link SimulatorTransport}. */
  transport?: SimulatorTransport;
  /** Address to bind; default 127.0.0.1. */
  host?: string;
  /** First port; 0 (default) binds every port to a free one, otherwise ports are `port`, `port+1`, ... */
  port?: number;
  /** SunSpec batteries; default 1. */
  bess?: number;
  /** SunSpec meters; default 0. Battery i sits behind meter i mod meters. */
  meters?: number;
  /** Tesla-style controllers; default 0. */
  tesla?: number;
  /** Batteries on {@link registerMap}; default 0. */
  custom?: number;
  /** The register map the `custom` batteries serve (parsed by `parseRegisterMap`, with a control section); required when `custom` > 0. */
  registerMap?: RegisterMap;
  /** Unit ids per port, 1..247; default 247. */
  unitsPerPort?: number;
  /** Per-battery overrides of {@link BessConfig}. */
  bessConfig?: (index: number) => Partial<BessConfig>;
  /** Site load behind meter `index` at `nowMs`, W; default a 10-minute sine around half the batteries' rating. */
  loadW?: (index: number, nowMs: number) => number;
  /** Entries kept in the write log (oldest dropped first); default 100 000. */
  writeLogLimit?: number;
  /** Clock, ms since the epoch; default `Date.now`. */
  now?: () => number;
  log?: pino.Logger;
}

/** A running simulator. */
export interface Simulator {
  host: string;
  /** Bound ports, in device order. */
  ports: number[];
  devices: SimulatedDevice[];
  bess: SimulatedDevice[];
  meters: SimulatedDevice[];
  tesla: SimulatedDevice[];
  custom: SimulatedDevice[];
  /** Every write received (bounded by `writeLogLimit`). */
  writeLog: WriteLogEntry[];
  /** Closes every port and connection, keeping state; {@link restart} serves again. */
  pause(): Promise<void>;
  /**
   * Closes every connection and serves again on the same ports after `downMs` (default 0);
   * `resetState` rebuilds devices as after a power cycle.
   */
  restart(opts?: { downMs?: number; resetState?: boolean }): Promise<void>;
  /** Stops serving for good. Idempotent. */
  stop(): Promise<void>;
}

interface Slot {
  kind: SimulatedKind;
  index: number;
  portIndex: number;
  unitId: number;
  device: SimDevice;
  faults: DeviceFaults;
  reads: Map<number, number>;
}

/** The transport named by `value`; throws a RangeError naming `field` (default `transport`) and the value for anything else. */
export function parseTransport(value: unknown, field = 'transport'): SimulatorTransport {
  const found = SIMULATOR_TRANSPORTS.find((t) => t === value);
  if (!found)
    throw new RangeError(
      `${field} must be one of ${SIMULATOR_TRANSPORTS.join(', ')} (got ${typeof value === 'string' ? value : String(value)})`,
    );
  return found;
}

/** Starts a simulated fleet; see {@link SimulatorOptions} for defaults. */
export async function startSimulator(options: SimulatorOptions = {}): Promise<Simulator> {
  const host = options.host ?? '127.0.0.1';
  const now = options.now ?? Date.now;
  const transport = parseTransport(options.transport ?? 'servertcp');
  const startServer = TRANSPORTS[transport];
  const perPort = options.unitsPerPort ?? 247;
  if (!Number.isInteger(perPort) || perPort < 1 || perPort > 247) throw new RangeError(`unitsPerPort must be 1..247 (got ${perPort})`);
  const counts = { bess: options.bess ?? 1, meters: options.meters ?? 0, tesla: options.tesla ?? 0, custom: options.custom ?? 0 };
  for (const [k, v] of Object.entries(counts))
    if (!Number.isInteger(v) || v < 0 || v > 100_000) throw new RangeError(`${k} must be a non-negative integer (got ${v})`);
  const registerMap = options.registerMap;
  if (counts.custom > 0 && !registerMap?.control)
    throw new RangeError('registerMap with a control section is required for custom devices (got none)');
  const writeLogLimit = options.writeLogLimit ?? 100_000;
  const writeLog: WriteLogEntry[] = [];
  const slots: Slot[] = [];
  const order: Array<{ kind: SimulatedKind; index: number }> = [];
  for (let i = 0; i < counts.bess; i++) order.push({ kind: 'bess', index: i });
  for (let i = 0; i < counts.meters; i++) order.push({ kind: 'meter', index: i });
  for (let i = 0; i < counts.tesla; i++) order.push({ kind: 'tesla', index: i });
  for (let i = 0; i < counts.custom; i++) order.push({ kind: 'custom', index: i });

  const build = (): void => {
    const t = now();
    const batteries: SimDevice[] = [];
    const fresh = order.map((o, n) => {
      const unitId = (n % perPort) + 1;
      const device: SimDevice | undefined =
        o.kind === 'bess'
          ? createBessDevice({ unitId, nowMs: t, ...options.bessConfig?.(o.index) })
          : o.kind === 'tesla'
            ? createTeslaDevice({ unitId, nowMs: t })
            : o.kind === 'custom'
              ? createMapDevice({ map: registerMap!, unitId, nowMs: t })
              : undefined;
      if (device && o.kind === 'bess') batteries[o.index] = device;
      return { o, n, unitId, device };
    });
    for (const f of fresh) {
      let device = f.device;
      if (!device) {
        const mine = batteries.filter((_, i) => i % counts.meters === f.o.index);
        const rated = mine.length * 100_000 || 100_000;
        device = createMeterDevice({
          unitId: f.unitId,
          nowMs: t,
          batteries: mine,
          peakW: rated * 2,
          loadW: options.loadW
            ? (ms) => options.loadW!(f.o.index, ms)
            : (ms) => rated * 0.5 * (1 + 0.3 * Math.sin((2 * Math.PI * ms) / 600_000)),
        });
      }
      const prev = slots[f.n];
      slots[f.n] = {
        kind: f.o.kind,
        index: f.o.index,
        portIndex: Math.floor(f.n / perPort),
        unitId: f.unitId,
        device,
        faults: prev?.faults ?? { ignoreWrites: false, silent: false },
        reads: prev?.reads ?? new Map(),
      };
    }
  };
  build();

  const portCount = Math.max(1, Math.ceil(order.length / perPort));
  const byPort: Array<Map<number, Slot>> = Array.from({ length: portCount }, () => new Map());
  for (const s of slots) byPort[s.portIndex]?.set(s.unitId, s);
  const ports: number[] = new Array<number>(portCount).fill(0);
  let servers: ModbusTcpServer[] = [];
  let stopped = false;

  const record = (entry: WriteLogEntry): void => {
    writeLog.push(entry);
    if (writeLog.length > writeLogLimit * 2) writeLog.splice(0, writeLog.length - writeLogLimit);
  };

  const listen = async (): Promise<void> => {
    const started = await Promise.allSettled(
      byPort.map((units, p) =>
        startServer({
          host,
          port: ports[p] || (options.port ? options.port + p : 0),
          handler: createFleetHandler({ units, now, port: () => ports[p] ?? 0, record }),
        }),
      ),
    );
    const failed = started.find((r) => r.status === 'rejected');
    const listening = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    if (failed) {
      // One port that cannot be bound fails the whole fleet; the others must not stay open.
      await Promise.all(listening.map((s) => s.close()));
      throw failed.reason;
    }
    servers = listening;
    servers.forEach((s, i) => {
      ports[i] = s.port;
    });
    options.log?.info({ host, ports, devices: slots.length, transport }, 'simulator listening');
  };
  await listen();

  const closeAll = async (): Promise<void> => {
    const current = servers;
    servers = [];
    await Promise.all(current.map((s) => s.close()));
  };

  const devices: SimulatedDevice[] = slots.map((_, n) => {
    const slot = (): Slot => slots[n] as Slot;
    const first = slot();
    return {
      kind: first.kind,
      index: first.index,
      key: `${first.kind}-${first.index}`,
      get endpoint() {
        return { host, port: ports[first.portIndex] ?? 0, unitId: first.unitId };
      },
      get faults() {
        return slot().faults;
      },
      state: () => slot().device.snapshot(now()) as DeviceState,
      readRegisters: (address, count) => Array.from(slot().device.read('holding', address, count, now())),
      writeRegisters: (address, values) => slot().device.write(address, values, now()),
      readsAt: (address) => slot().reads.get(address) ?? 0,
    };
  });

  return {
    host,
    ports,
    devices,
    bess: devices.filter((d) => d.kind === 'bess'),
    meters: devices.filter((d) => d.kind === 'meter'),
    tesla: devices.filter((d) => d.kind === 'tesla'),
    custom: devices.filter((d) => d.kind === 'custom'),
    writeLog,
    pause: closeAll,
    restart: async (opts = {}) => {
      if (stopped) throw new Error('simulator is stopped');
      await closeAll();
      if (opts.downMs) await new Promise((r) => setTimeout(r, opts.downMs));
      if (opts.resetState) {
        build();
        for (const s of slots) byPort[s.portIndex]?.set(s.unitId, s);
      }
      await listen();
    },
    stop: async () => {
      stopped = true;
      await closeAll();
    },
  };
}

export type { BessSnapshot, MapSnapshot, MeterSnapshot, TeslaSnapshot };
