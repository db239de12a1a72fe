/**
 * The one place a request reaches a simulated device, whichever transport carried it: finds
 * the device behind the unit id, applies the test's faults (exception codes, ignored writes,
 * silence) and records every write in the log.
 */
import type { SimDevice } from './sim-device.ts';
import { exceptionCodeOf, ModbusServerException, type ModbusRequestHandler } from './modbus-request.ts';

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

/** A device behind a unit id, with its fault switches. */
export interface FleetUnit {
  device: SimDevice;
  faults: DeviceFaults;
  /** Reads asked of the device, by the first address of each read (answered or not). */
  reads?: Map<number, number>;
}

/** The exception code `faults` answer a request of kind `op` with, counting it down; undefined when none. */
function consumeException(faults: DeviceFaults, op: 'read' | 'write'): number | undefined {
  if (faults.exceptionCode === undefined) return undefined;
  const on = faults.exceptionOn ?? 'write';
  if (on !== 'all' && on !== op) return undefined;
  const code = faults.exceptionCode;
  if (faults.exceptionCount !== undefined && --faults.exceptionCount <= 0) {
    delete faults.exceptionCode;
    delete faults.exceptionCount;
  }
  return code;
}

/**
 * The request handler of one port: `units` by unit id (read on every request, so devices
 * rebuilt in place are served at once), `now` the simulator's clock, `port` the bound port
 * for the log, `record` where writes go.
 */
export function createFleetHandler(o: {
  units: ReadonlyMap<number, FleetUnit>;
  now: () => number;
  port: () => number;
  record: (entry: WriteLogEntry) => void;
}): ModbusRequestHandler {
  return {
    silent: (unitId) => o.units.get(unitId)?.faults.silent === true,
    read: (unitId, table, address, count) => {
      const unit = o.units.get(unitId);
      if (!unit) throw new ModbusServerException(0x0b, `no device at unit id ${unitId}`);
      unit.reads?.set(address, (unit.reads.get(address) ?? 0) + 1);
      const code = consumeException(unit.faults, 'read');
      if (code !== undefined) throw new ModbusServerException(code);
      return unit.device.read(table, address, count, o.now());
    },
    write: (unitId, address, values, functionCode, connection) => {
      const unit = o.units.get(unitId);
      const entry: WriteLogEntry = {
        time: new Date(),
        port: o.port(),
        unitId,
        functionCode,
        address,
        values,
        outcome: 'applied',
        connection: connection.id,
        remotePort: connection.remotePort,
      };
      try {
        if (!unit) throw new ModbusServerException(0x0b, `no device at unit id ${unitId}`);
        const code = consumeException(unit.faults, 'write');
        if (code !== undefined) throw new ModbusServerException(code);
        if (unit.faults.ignoreWrites) {
          entry.outcome = 'ignored';
          return;
        }
        unit.device.write(address, values, o.now());
      } catch (err) {
        entry.outcome = exceptionCodeOf(err);
        throw err;
      } finally {
        o.record(entry);
      }
    },
  };
}
