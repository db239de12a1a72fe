/**
 * What both Modbus TCP transports of the simulator share: the contract with the devices behind
 * them ({@link ModbusRequestHandler}), the exception type devices throw, and the protocol checks
 * of a read or write request, so the fast server and the modbus-serial `ServerTCP` adapter
 * answer the same request with the same registers or the same exception code.
 */

/** Thrown by a {@link ModbusRequestHandler} to answer with a Modbus exception `code`. */
export class ModbusServerException extends Error {
  override readonly name = 'ModbusServerException';
  readonly code: number;
  constructor(code: number, message?: string) {
    super(message ?? `Modbus exception ${code}`);
    this.code = code;
  }
}

/** The client connection a request came on. */
export interface ModbusConnection {
  /** Unique in this process across every server, transport and restart, from 1. */
  readonly id: number;
  /** The client's TCP port, as the server sees it. */
  readonly remotePort: number;
}

/** What the server asks of the devices behind it, per unit id. Throw {@link ModbusServerException} to refuse. */
export interface ModbusRequestHandler {
  /** Reads `count` registers of `table` from `address`; unknown unit ids should throw 0x0B. */
  read(unitId: number, table: 'holding' | 'input', address: number, count: number): ArrayLike<number>;
  /** Writes `values` from `address` (functions 6 and 16) received on `connection`. */
  write(unitId: number, address: number, values: number[], functionCode: 6 | 16, connection: ModbusConnection): void;
  /** Returns true to drop the request without any answer (a silent device, for timeout tests). */
  silent?(unitId: number): boolean;
}

/** A listening server of either transport. */
export interface ModbusTcpServer {
  /** The bound port (useful with port 0). */
  readonly port: number;
  /** Closes the listener and destroys every open connection; requests not yet answered are dropped. Idempotent. */
  close(): Promise<void>;
}

/** Where and to whom a transport serves. */
export interface ModbusTcpServerOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  handler: ModbusRequestHandler;
}

// Connection ids count per process, so writes of several simulators or restarts never share one.
let connections = 0;

/** A new connection identity for a socket just accepted. */
export function newConnection(remotePort: number | undefined): ModbusConnection {
  return { id: ++connections, remotePort: remotePort ?? 0 };
}

/** The exception code to answer for `err`: its own for a {@link ModbusServerException}, else 04 (device failure). */
export function exceptionCodeOf(err: unknown): number {
  return err instanceof ModbusServerException ? err.code : 4;
}

/** Functions 3 and 4: checks the quantity (1..125, else 03) and the range (else 02), then reads. */
export function serveRead(
  handler: ModbusRequestHandler,
  unitId: number,
  table: 'holding' | 'input',
  address: number,
  count: number,
): ArrayLike<number> {
  if (count < 1 || count > 125) throw new ModbusServerException(3, `read of ${count} registers`);
  if (address + count > 0x10000) throw new ModbusServerException(2, `read past register 65535`);
  return handler.read(unitId, table, address, count);
}

/** Functions 6 and 16: checks the quantity (1..123, else 03) and the range (else 02), then writes. */
export function serveWrite(
  handler: ModbusRequestHandler,
  unitId: number,
  address: number,
  values: number[],
  functionCode: 6 | 16,
  connection: ModbusConnection,
): void {
  if (values.length < 1 || values.length > 123) throw new ModbusServerException(3, `write of ${values.length} registers`);
  if (address + values.length > 0x10000) throw new ModbusServerException(2, `write past register 65535`);
  handler.write(unitId, address, values, functionCode, connection);
}
