/**
 * How a setpoint writer reads a failure (retry it? recycle the connection?), and the
 * guard that refuses a write once the lease it was for has ended.
 */
import {
  CodecRangeError,
  DeviceProfileError,
  ModbusConnectionError,
  ModbusExceptionError,
  ModbusTimeoutError,
  SetpointOutOfRangeError,
  WriteRefusedError,
} from './errors.ts';
import type { ModbusClient } from './modbus-client.ts';

/** What to do about one failed attempt. */
export interface Failure {
  reason: string;
  retry: boolean;
  recycle: boolean;
  exceptionCode?: number;
}

/** Whether a failure is retried and whether it recycles the connection. */
export function classify(err: unknown): Failure {
  if (err instanceof ModbusExceptionError) {
    const retry = err.exceptionClass === 'retryable';
    const reason = err.exceptionClass === 'device-fault' ? `device fault: ${err.message}` : err.message;
    return { reason, retry, recycle: false, exceptionCode: err.code };
  }
  if (err instanceof ModbusTimeoutError) return { reason: err.message, retry: true, recycle: true };
  if (err instanceof ModbusConnectionError) return { reason: err.message, retry: true, recycle: true };
  if (
    err instanceof SetpointOutOfRangeError ||
    err instanceof CodecRangeError ||
    err instanceof DeviceProfileError ||
    err instanceof WriteRefusedError
  )
    return { reason: err.message, retry: false, recycle: false };
  return { reason: err instanceof Error ? err.message : String(err), retry: false, recycle: true };
}

export /** `client`, whose writes are refused ({@link WriteRefusedError}) while `mayWrite` says no. */
function withWriteGuard(client: ModbusClient, mayWrite: () => boolean): ModbusClient {
  const writeRegisters = async (address: number, values: readonly number[]): Promise<void> => {
    if (!mayWrite())
      throw new WriteRefusedError(`write of ${values.length} registers at ${address} refused: the lease it was for has ended`);
    return client.writeRegisters(address, values);
  };
  return new Proxy(client, {
    get: (target, prop) => (prop === 'writeRegisters' ? writeRegisters : Reflect.get(target, prop, target)),
  });
}
