/**
 * The simulator's Modbus TCP transport on modbus-serial's own `ServerTCP`: one server per port
 * listening to every unit id (`unitID` 255), whose vector callbacks hand each request to the
 * shared {@link ModbusRequestHandler} through the same checks as the fast transport.
 *
 * How the device semantics survive the library:
 * - exceptions: a callback error carrying `modbusErrorCode` is answered with that code;
 * - silence: a callback that is never called leaves the request unanswered;
 * - one handler call per request: `getMultiple*` serve reads of 2+ registers, `get*Register`
 *   reads of one, `setRegisterArray` function 16 and `setRegister` function 6, so a fault
 *   limited to N requests counts requests, not registers;
 * - the connection of a write: `ServerTCP` does not pass the socket to the vector, so each
 *   socket's data listener runs inside an AsyncLocalStorage scope that the library's deferred
 *   parse (a `setTimeout`) inherits.
 * ServerTCP answers a few malformed requests itself (a quantity of 0 gets 02, not 03) and
 * answers other function codes with 01 even for a silent unit.
 * Accepted sockets get TCP_NODELAY; the 1 ms deferral of every request stays (see
 * modbus-tcp-server.ts for the fast transport).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type net from 'node:net';
import ModbusSerial, { type IServiceVector } from 'modbus-serial';
import {
  exceptionCodeOf,
  type ModbusConnection,
  ModbusServerException,
  type ModbusRequestHandler,
  type ModbusTcpServer,
  type ModbusTcpServerOptions,
  newConnection,
  serveRead,
  serveWrite,
} from './modbus-request.ts';

type Callback = (err: Error | null) => void;
type ValueCallback<T> = (err: Error | null, value: T) => void;

/* modbus-serial keeps the listening `net.Server` in `_server`; its bound port is needed with port 0. */
interface ServerTcpInternals {
  _server: net.Server;
}

const requestConnection = new AsyncLocalStorage<ModbusConnection>();

function modbusError(err: unknown): Error {
  return Object.assign(new Error(err instanceof Error ? err.message : String(err)), { modbusErrorCode: exceptionCodeOf(err) });
}

function vectorFor(handler: ModbusRequestHandler, isClosed: () => boolean): IServiceVector {
  // Requests parsed after close() (the library defers them) are dropped like on a closed socket.
  const dropped = (unitId: number): boolean => isClosed() || handler.silent?.(unitId) === true;
  const read =
    (table: 'holding' | 'input') =>
    (address: number, count: number, unitId: number, cb: ValueCallback<number[]>): void => {
      if (dropped(unitId)) return;
      let values: number[];
      try {
        values = Array.from(serveRead(handler, unitId, table, address, count), (v) => v & 0xffff);
      } catch (err) {
        cb(modbusError(err), []);
        return;
      }
      cb(null, values);
    };
  const readOne =
    (table: 'holding' | 'input') =>
    (address: number, unitId: number, cb: ValueCallback<number>): void =>
      read(table)(address, 1, unitId, (err, values) => cb(err, values[0] ?? 0));
  const write =
    (functionCode: 6 | 16) =>
    (address: number, values: number[], unitId: number, cb: Callback): void => {
      if (dropped(unitId)) return;
      const connection = requestConnection.getStore() ?? newConnection(0);
      try {
        serveWrite(handler, unitId, address, values, functionCode, connection);
      } catch (err) {
        cb(modbusError(err));
        return;
      }
      cb(null);
    };
  const illegalFunction = (unitId: number, cb: Callback): void => {
    if (!dropped(unitId)) cb(modbusError(new ModbusServerException(1)));
  };
  return {
    getHoldingRegister: readOne('holding'),
    getMultipleHoldingRegisters: read('holding'),
    getInputRegister: readOne('input'),
    getMultipleInputRegisters: read('input'),
    setRegister: (address: number, value: number, unitId: number, cb: Callback) => write(6)(address, [value], unitId, cb),
    setRegisterArray: write(16),
    // Coils and discrete inputs do not exist on these devices, as on the fast transport.
    getCoil: (_address: number, unitId: number, cb: ValueCallback<boolean>) => illegalFunction(unitId, (err) => cb(err, false)),
    getDiscreteInput: (_address: number, unitId: number, cb: ValueCallback<boolean>) => illegalFunction(unitId, (err) => cb(err, false)),
    setCoil: (_address: number, _value: boolean, unitId: number, cb: Callback) => illegalFunction(unitId, cb),
  };
}

/** Starts a `ServerTCP` on `host:port` (port 0 picks a free port) serving every unit id through `opts.handler`. */
export function startServerTcp(opts: ModbusTcpServerOptions): Promise<ModbusTcpServer> {
  let closed = false;
  // ServerTCP turns port 0 into its default 502; net accepts the string '0' as "any free port".
  const port = (opts.port === 0 ? '0' : opts.port) as number;
  const server = new ModbusSerial.ServerTCP(
    vectorFor(opts.handler, () => closed),
    { host: opts.host, port, unitID: 255 },
  );
  const listener = (server as unknown as ServerTcpInternals)._server;
  // Registered after ServerTCP's own handler, so the socket already has the library's data listener.
  listener.on('connection', (socket: net.Socket) => {
    socket.setNoDelay(true);
    const connection = newConnection(socket.remotePort);
    const theirs = socket.listeners('data') as Array<(chunk: Buffer) => void>;
    socket.removeAllListeners('data');
    for (const l of theirs) socket.on('data', (chunk: Buffer) => requestConnection.run(connection, () => l.call(socket, chunk)));
  });
  // Socket errors (a client resetting) are the client's business; without listeners they would be unhandled.
  server.on('socketError', () => undefined);
  server.on('error', () => undefined);
  return new Promise((resolve, reject) => {
    const fail = (err: Error | null): void => {
      closed = true;
      server.close(() => reject(err ?? new Error(`cannot listen on ${opts.host}:${opts.port}`)));
    };
    server.once('serverError', fail);
    server.once('initialized', () => {
      server.off('serverError', fail);
      const address = listener.address();
      let closing: Promise<void> | undefined;
      resolve({
        port: typeof address === 'object' && address ? address.port : opts.port,
        close: () => {
          closing ??= new Promise<void>((done) => {
            closed = true;
            server.close(() => done());
          });
          return closing;
        },
      });
    });
  });
}
