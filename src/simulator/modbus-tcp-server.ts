/**
 * A minimal Modbus TCP server (function codes 3, 4, 6 and 16, with exception responses).
 *
 * Why not modbus-serial's `ServerTCP`: it defers every request through `setTimeout(…, 0)`,
 * which Node rounds up to 1 ms, and does not set TCP_NODELAY on accepted sockets. Measured on
 * this machine with modbus-serial 8.0.25 over loopback: 1.28 ms p50 per write round trip,
 * against well under 0.1 ms here — the simulator would dominate every benchmark of the writer.
 * The client side (Powerplane's code path under test) still is modbus-serial.
 */
import net from 'node:net';

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
  /** Unique in this process across every server and restart, from 1. */
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

/** A listening server. */
export interface ModbusTcpServer {
  /** The bound port (useful with port 0). */
  readonly port: number;
  /** Closes the listener and destroys every open connection. Idempotent. */
  close(): Promise<void>;
}

const MBAP = 7;

// Connection ids count per process, so writes of several simulators or restarts never share one.
let connections = 0;

function exception(fc: number, code: number): Buffer {
  return Buffer.from([fc | 0x80, code]);
}

function handlePdu(unitId: number, pdu: Buffer, handler: ModbusRequestHandler, connection: ModbusConnection): Buffer {
  const fc = pdu[0] ?? 0;
  try {
    switch (fc) {
      case 3: case 4: {
        if (pdu.length < 5) return exception(fc, 3);
        const address = pdu.readUInt16BE(1);
        const count = pdu.readUInt16BE(3);
        if (count < 1 || count > 125) return exception(fc, 3);
        if (address + count > 0x10000) return exception(fc, 2);
        const regs = handler.read(unitId, fc === 3 ? 'holding' : 'input', address, count);
        const out = Buffer.allocUnsafe(2 + count * 2);
        out[0] = fc;
        out[1] = count * 2;
        for (let i = 0; i < count; i++) out.writeUInt16BE((regs[i] ?? 0) & 0xffff, 2 + i * 2);
        return out;
      }
      case 6: {
        if (pdu.length < 5) return exception(fc, 3);
        handler.write(unitId, pdu.readUInt16BE(1), [pdu.readUInt16BE(3)], 6, connection);
        return Buffer.from(pdu.subarray(0, 5));
      }
      case 16: {
        if (pdu.length < 6) return exception(fc, 3);
        const address = pdu.readUInt16BE(1);
        const count = pdu.readUInt16BE(3);
        const bytes = pdu[5] ?? 0;
        if (count < 1 || count > 123 || bytes !== count * 2 || pdu.length < 6 + bytes) return exception(fc, 3);
        if (address + count > 0x10000) return exception(fc, 2);
        const values: number[] = [];
        for (let i = 0; i < count; i++) values.push(pdu.readUInt16BE(6 + i * 2));
        handler.write(unitId, address, values, 16, connection);
        return Buffer.from(pdu.subarray(0, 5));
      }
      default:
        return exception(fc, 1);
    }
  } catch (err) {
    return exception(fc, err instanceof ModbusServerException ? err.code : 4);
  }
}

/**
 * Starts a server on `host:port` (port 0 picks a free port). Accepted sockets get TCP_NODELAY.
 * Requests are answered synchronously in arrival order.
 */
export function startModbusTcpServer(opts: { host: string; port: number; handler: ModbusRequestHandler }): Promise<ModbusTcpServer> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    sockets.add(socket);
    const connection: ModbusConnection = { id: ++connections, remotePort: socket.remotePort ?? 0 };
    let pending: Buffer = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      while (pending.length >= MBAP + 1) {
        const length = pending.readUInt16BE(4);
        if (length < 2 || length > 254) { socket.destroy(); return; }
        if (pending.length < 6 + length) break;
        const frame = pending.subarray(0, 6 + length);
        pending = pending.subarray(6 + length);
        const unitId = frame[6] ?? 0;
        if (opts.handler.silent?.(unitId)) continue;
        const pdu = handlePdu(unitId, frame.subarray(MBAP), opts.handler, connection);
        const out = Buffer.allocUnsafe(MBAP + pdu.length);
        frame.copy(out, 0, 0, 4);
        out.writeUInt16BE(pdu.length + 1, 4);
        out[6] = unitId;
        pdu.copy(out, MBAP);
        socket.write(out);
      }
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => sockets.delete(socket));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : opts.port;
      let closing: Promise<void> | undefined;
      resolve({
        port,
        close: () => {
          closing ??= new Promise<void>((done) => {
            server.close(() => done());
            for (const s of sockets) s.destroy();
          });
          return closing;
        },
      });
    });
  });
}
