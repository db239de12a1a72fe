/**
 * A thin promise client over `modbus-serial` for one endpoint: one TCP connection (TCP_NODELAY
 * is set by modbus-serial's TCP port on connect), a per-request timeout, and failures turned
 * into the typed errors of `errors.ts`.
 */
import ModbusSerial from 'modbus-serial';
import type pino from 'pino';
import { ModbusConnectionError, ModbusExceptionError, ModbusTimeoutError } from './errors.ts';
import type { ModbusEndpoint } from './types.ts';

/* modbus-serial is CommonJS; its module object carries the client class as `default`. */
const ModbusRTU = ModbusSerial.default;
type ModbusRTU = InstanceType<typeof ModbusSerial.default>;

/** A connection to one unit id at one endpoint. Requests are sent one at a time. */
export interface ModbusClient {
  readonly endpoint: ModbusEndpoint;
  /** Whether the TCP connection is open. */
  readonly isOpen: boolean;
  /** Opens the connection if it is not open; concurrent calls share one attempt. */
  connect(): Promise<void>;
  /** Function 3. */
  readHoldingRegisters(address: number, count: number): Promise<number[]>;
  /** Function 4. */
  readInputRegisters(address: number, count: number): Promise<number[]>;
  /** Function 16 (also for a single register, which every device accepts). */
  writeRegisters(address: number, values: readonly number[]): Promise<void>;
  /** Closes the connection; safe to call repeatedly. A later request reconnects. */
  close(): Promise<void>;
}

/** Options of {@link createModbusClient}. */
export interface ModbusClientOptions {
  endpoint: ModbusEndpoint;
  /** Per-request and connect timeout, ms; default 1000. */
  timeoutMs?: number;
  /**
   * Whether a request on a closed connection opens a new one; default true. The setpoint
   * writer turns it off: a new connection must first go through its prepare and arm steps,
   * so a request on a closed one fails with {@link ModbusConnectionError} instead.
   */
  reconnect?: boolean;
  log?: pino.Logger;
}

function toError(err: unknown, operation: string, timeoutMs: number): Error {
  const e = err as { modbusCode?: unknown; errno?: unknown; message?: unknown; name?: unknown };
  if (typeof e?.modbusCode === 'number') return new ModbusExceptionError(e.modbusCode, operation);
  if (e?.errno === 'ETIMEDOUT' || e?.name === 'TransactionTimedOutError' || e?.message === 'Timed out')
    return new ModbusTimeoutError(operation, timeoutMs);
  return new ModbusConnectionError(`${operation} failed: ${typeof e?.message === 'string' ? e.message : 'connection error'}`, {
    cause: err,
  });
}

/**
 * Creates a client for `endpoint`. Nothing connects until {@link ModbusClient.connect} or the
 * first request. Default timeout 1000 ms.
 */
export function createModbusClient(options: ModbusClientOptions): ModbusClient {
  const { endpoint } = options;
  const timeoutMs = options.timeoutMs ?? 1000;
  let rtu: ModbusRTU | undefined;
  let connecting: Promise<void> | undefined;

  const open = async (): Promise<void> => {
    const next = new ModbusRTU();
    next.on('error', (err: unknown) => options.log?.debug({ err, endpoint }, 'modbus socket error'));
    next.on('close', () => {
      if (rtu === next) rtu = undefined;
    });
    try {
      await next.connectTCP(endpoint.host, { port: endpoint.port, timeout: timeoutMs });
    } catch (err) {
      next.close(() => undefined);
      throw new ModbusConnectionError(`cannot connect to ${endpoint.host}:${endpoint.port}`, { cause: err });
    }
    next.setID(endpoint.unitId);
    next.setTimeout(timeoutMs);
    rtu = next;
  };

  const connect = (): Promise<void> => {
    if (rtu?.isOpen) return Promise.resolve();
    connecting ??= open().finally(() => {
      connecting = undefined;
    });
    return connecting;
  };

  const run = async <T>(operation: string, fn: (c: ModbusRTU) => Promise<T>): Promise<T> => {
    if (options.reconnect !== false) await connect();
    const c = rtu?.isOpen ? rtu : undefined;
    if (!c) throw new ModbusConnectionError(`${operation} failed: not connected`);
    try {
      return await fn(c);
    } catch (err) {
      throw toError(err, operation, timeoutMs);
    }
  };

  return {
    endpoint,
    get isOpen() {
      return rtu?.isOpen === true;
    },
    connect,
    readHoldingRegisters: (address, count) =>
      run(`read ${count} registers at ${address}`, async (c) => (await c.readHoldingRegisters(address, count)).data),
    readInputRegisters: (address, count) =>
      run(`read ${count} input registers at ${address}`, async (c) => (await c.readInputRegisters(address, count)).data),
    writeRegisters: (address, values) =>
      run(`write ${values.length} registers at ${address}`, async (c) => {
        await c.writeRegisters(address, [...values]);
      }),
    close: () =>
      new Promise<void>((resolve) => {
        const c = rtu;
        rtu = undefined;
        if (!c) {
          resolve();
          return;
        }
        const done = setTimeout(resolve, 200);
        done.unref();
        c.close(() => {
          clearTimeout(done);
          resolve();
        });
      }),
  };
}
