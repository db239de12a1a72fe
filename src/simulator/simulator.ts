/**
 * The simulator's library API: a fleet of SunSpec batteries, SunSpec meters and
 * Tesla-style controllers served over Modbus TCP, with a write log and fault injection for
 * tests. Devices are spread over as many ports as needed, at most `unitsPerPort` (default 247,
 * the Modbus limit) unit ids per port, so a fleet of 1000 batteries is five ports.
 */
import type pino from 'pino';
import type { ModbusEndpoint } from '../modbus/types.ts';
import { type BessConfig, type BessSnapshot, createBessDevice } from './bess-device.ts';
import type { SimDevice, SimulatedKind } from './device.ts';
import { createMeterDevice, type MeterSnapshot } from './meter-device.ts';
import { ModbusServerException, type ModbusTcpServer, startModbusTcpServer } from './modbus-tcp-server.ts';
import { createTeslaDevice, type TeslaSnapshot } from './tesla-device.ts';

/** Faults a test can inject into one device; all off by default and changeable at any time. */
export interface DeviceFaults {
  /** Acknowledge writes without applying them (a device that silently ignores commands). */
  ignoreWrites: boolean;
  /** Answer requests with this Modbus exception code. */
  exceptionCode?: number;
  /** Which requests get `exceptionCode`; default `write`. */
  exceptionOn?: 'read' | 'write' | 'all';
  /** How many requests get `exceptionCode` before it clears itself; default unlimited. */
  exceptionCount?: number;
  /** Drop every request without an answer (the client times out). */
  silent: boolean;
}

/** One write the simulator received. */
export interface WriteLogEntry {
  time: Date;
  port: number;
  unitId: number;
  functionCode: 6 | 16;
  address: number;
  values: number[];
  /** What the device did: applied, ignored (fault), or refused with an exception code. */
  outcome: 'applied' | 'ignored' | number;
  /**
   * The client connection the write came on (unique per simulator process). Two writers
   * driving one device at once show up as interleaved writes of two connections.
   */
  connection: number;
  /** The client's TCP port on that connection. */
  remotePort: number;
}

/** Snapshot of any simulated device; the fields of its kind are present. */
export type DeviceState = Partial<BessSnapshot & TeslaSnapshot & MeterSnapshot>;

/** A device of the simulated fleet. */
export interface SimulatedDevice {
  kind: SimulatedKind;
  /** Index within its kind, from 0. */
  index: number;
  /** Stable key such as `bess-0`, `meter-1`, `tesla-0`. */
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
}

/** Options of {@link startSimulator}. */
export interface SimulatorOptions {
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
  /** Every write received (bounded by `writeLogLimit`). */
  writeLog: WriteLogEntry[];
  /** Closes every port and connection, keeping state; {@link restart} serves again. */
  pause(): Promise<void>;
  /** Closes every connection and serves again on the same ports after `downMs` (default 0); `resetState` rebuilds devices as after a power cycle. */
  restart(opts?: { downMs?: number; resetState?: boolean }): Promise<void>;
  /** Stops serving for good. Idempotent. */
  stop(): Promise<void>;
}

interface Slot { kind: SimulatedKind; index: number; portIndex: number; unitId: number; device: SimDevice; faults: DeviceFaults }

/** Starts a simulated fleet; see {@link SimulatorOptions} for defaults. */
export async function startSimulator(options: SimulatorOptions = {}): Promise<Simulator> {
  const host = options.host ?? '127.0.0.1';
  const now = options.now ?? Date.now;
  const perPort = options.unitsPerPort ?? 247;
  if (!Number.isInteger(perPort) || perPort < 1 || perPort > 247) throw new RangeError(`unitsPerPort must be 1..247 (got ${perPort})`);
  const counts = { bess: options.bess ?? 1, meters: options.meters ?? 0, tesla: options.tesla ?? 0 };
  for (const [k, v] of Object.entries(counts)) if (!Number.isInteger(v) || v < 0 || v > 100_000) throw new RangeError(`${k} must be a non-negative integer (got ${v})`);
  const writeLogLimit = options.writeLogLimit ?? 100_000;
  const writeLog: WriteLogEntry[] = [];
  const slots: Slot[] = [];
  const order: Array<{ kind: SimulatedKind; index: number }> = [];
  for (let i = 0; i < counts.bess; i++) order.push({ kind: 'bess', index: i });
  for (let i = 0; i < counts.meters; i++) order.push({ kind: 'meter', index: i });
  for (let i = 0; i < counts.tesla; i++) order.push({ kind: 'tesla', index: i });

  const build = (): void => {
    const t = now();
    const batteries: SimDevice[] = [];
    const fresh = order.map((o, n) => {
      const unitId = (n % perPort) + 1;
      const device: SimDevice | undefined = o.kind === 'bess'
        ? createBessDevice({ unitId, nowMs: t, ...options.bessConfig?.(o.index) })
        : o.kind === 'tesla' ? createTeslaDevice({ unitId, nowMs: t }) : undefined;
      if (device && o.kind === 'bess') batteries[o.index] = device;
      return { o, n, unitId, device };
    });
    for (const f of fresh) {
      let device = f.device;
      if (!device) {
        const mine = batteries.filter((_, i) => i % counts.meters === f.o.index);
        const rated = mine.length * 100_000 || 100_000;
        device = createMeterDevice({
          unitId: f.unitId, nowMs: t, batteries: mine, peakW: rated * 2,
          loadW: options.loadW ? (ms) => options.loadW!(f.o.index, ms) : (ms) => rated * 0.5 * (1 + 0.3 * Math.sin((2 * Math.PI * ms) / 600_000)),
        });
      }
      const prev = slots[f.n];
      slots[f.n] = { kind: f.o.kind, index: f.o.index, portIndex: Math.floor(f.n / perPort), unitId: f.unitId, device, faults: prev?.faults ?? { ignoreWrites: false, silent: false } };
    }
  };
  build();

  const portCount = Math.max(1, Math.ceil(order.length / perPort));
  const byPort: Array<Map<number, Slot>> = Array.from({ length: portCount }, () => new Map());
  for (const s of slots) byPort[s.portIndex]?.set(s.unitId, s);
  const ports: number[] = new Array<number>(portCount).fill(0);
  let servers: ModbusTcpServer[] = [];
  let stopped = false;

  const consumeException = (slot: Slot, op: 'read' | 'write'): number | undefined => {
    const f = slot.faults;
    if (f.exceptionCode === undefined) return undefined;
    const on = f.exceptionOn ?? 'write';
    if (on !== 'all' && on !== op) return undefined;
    const code = f.exceptionCode;
    if (f.exceptionCount !== undefined && --f.exceptionCount <= 0) { delete f.exceptionCode; delete f.exceptionCount; }
    return code;
  };

  const record = (entry: WriteLogEntry): void => {
    writeLog.push(entry);
    if (writeLog.length > writeLogLimit * 2) writeLog.splice(0, writeLog.length - writeLogLimit);
  };

  const listen = async (): Promise<void> => {
    servers = await Promise.all(byPort.map((units, p) => startModbusTcpServer({
      host,
      port: ports[p] || (options.port ? options.port + p : 0),
      handler: {
        silent: (unitId) => units.get(unitId)?.faults.silent === true,
        read: (unitId, table, address, count) => {
          const slot = units.get(unitId);
          if (!slot) throw new ModbusServerException(0x0b);
          const code = consumeException(slot, 'read');
          if (code !== undefined) throw new ModbusServerException(code);
          return slot.device.read(table, address, count, now());
        },
        write: (unitId, address, values, functionCode, connection) => {
          const slot = units.get(unitId);
          const entry: WriteLogEntry = {
            time: new Date(), port: ports[p] ?? 0, unitId, functionCode, address, values, outcome: 'applied',
            connection: connection.id, remotePort: connection.remotePort,
          };
          try {
            if (!slot) throw new ModbusServerException(0x0b);
            const code = consumeException(slot, 'write');
            if (code !== undefined) throw new ModbusServerException(code);
            if (slot.faults.ignoreWrites) { entry.outcome = 'ignored'; return; }
            slot.device.write(address, values, now());
          } catch (err) {
            entry.outcome = err instanceof ModbusServerException ? err.code : 4;
            throw err;
          } finally {
            record(entry);
          }
        },
      },
    })));
    servers.forEach((s, i) => { ports[i] = s.port; });
    options.log?.info({ host, ports, devices: slots.length }, 'simulator listening');
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
      get endpoint() { return { host, port: ports[first.portIndex] ?? 0, unitId: first.unitId }; },
      get faults() { return slot().faults; },
      state: () => slot().device.snapshot(now()) as DeviceState,
      readRegisters: (address, count) => Array.from(slot().device.read('holding', address, count, now())),
      writeRegisters: (address, values) => slot().device.write(address, values, now()),
    };
  });

  return {
    host,
    ports,
    devices,
    bess: devices.filter((d) => d.kind === 'bess'),
    meters: devices.filter((d) => d.kind === 'meter'),
    tesla: devices.filter((d) => d.kind === 'tesla'),
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

export type { BessSnapshot, MeterSnapshot, TeslaSnapshot };
