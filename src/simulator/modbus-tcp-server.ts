/**
 * The simulator's fast Modbus TCP transport: a minimal `node:net` server (function codes 3, 4,
 * 6 and 16, with exception responses) that answers each request synchronously, with TCP_NODELAY.
 *
 * Why it exists beside the `ServerTCP` transport (servertcp-server.ts): modbus-serial's server
 * defers every request through `setTimeout(…, 0)`, which Node rounds up to 1 ms, so a round
 * trip costs over 1 ms against well under 0.1 ms here; benchmarks of the setpoint writer pass
 * `transport: 'fast'` so they measure the writer, not the simulator. The client side
 * (Powerplane's code path under test) is modbus-serial with either transport.
 */
import net from 'node:net';
import {
  exceptionCodeOf,
  type ModbusConnection,
  type ModbusRequestHandler,
  type ModbusTcpServer,
  type ModbusTcpServerOptions,
  newConnection,
  serveRead,
  serveWrite,
} from './modbus-request.ts';

export { ModbusServerException, type ModbusConnection, type ModbusRequestHandler, type ModbusTcpServer } from './modbus-request.ts';

const MBAP = 7;

function exception(fc: number, code: number): Buffer {
  return Buffer.from([fc | 0x80, code]);
}

function handlePdu(unitId: number, pdu: Buffer, handler: ModbusRequestHandler, connection: ModbusConnection): Buffer {
  const fc = pdu[0] ?? 0;
  try {
    switch (fc) {
      case 3:
      case 4: {
        if (pdu.length < 5) return exception(fc, 3);
        const count = pdu.readUInt16BE(3);
        const regs = serveRead(handler, unitId, fc === 3 ? 'holding' : 'input', pdu.readUInt16BE(1), count);
        const out = Buffer.allocUnsafe(2 + count * 2);
        out[0] = fc;
        out[1] = count * 2;
        for (let i = 0; i < count; i++) out.writeUInt16BE((regs[i] ?? 0) & 0xffff, 2 + i * 2);
        return out;
      }
      case 6: {
        if (pdu.length < 5) return exception(fc, 3);
        serveWrite(handler, unitId, pdu.readUInt16BE(1), [pdu.readUInt16BE(3)], 6, connection);
        return Buffer.from(pdu.subarray(0, 5));
      }
      case 16: {
        if (pdu.length < 6) return exception(fc, 3);
        const count = pdu.readUInt16BE(3);
        const bytes = pdu[5] ?? 0;
        if (bytes !== count * 2 || pdu.length < 6 + bytes) return exception(fc, 3);
        const values: number[] = [];
        for (let i = 0; i < count; i++) values.push(pdu.readUInt16BE(6 + i * 2));
        serveWrite(handler, unitId, pdu.readUInt16BE(1), values, 16, connection);
        return Buffer.from(pdu.subarray(0, 5));
      }
      default:
        return exception(fc, 1);
    }
  } catch (err) {
    return exception(fc, exceptionCodeOf(err));
  }
}

/**
 * Starts a server on `host:port` (port 0 picks a free port). Accepted sockets get TCP_NODELAY.
 * Requests are answered synchronously in arrival order.
 */
export function startModbusTcpServer(opts: ModbusTcpServerOptions): Promise<ModbusTcpServer> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    sockets.add(socket);
    const connection = newConnection(socket.remotePort);
    let pending: Buffer = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      while (pending.length >= MBAP + 1) {
        const length = pending.readUInt16BE(4);
        if (length < 2 || length > 254) {
          socket.destroy();
          return;
        }
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
