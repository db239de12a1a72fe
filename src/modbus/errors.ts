/**
 * Typed errors of the Modbus domain. Messages name the field and the value; they never
 * carry socket details, so callers may surface them to operators unchanged.
 */

/** Standard Modbus exception codes with their protocol names. */
export const MODBUS_EXCEPTION_NAMES: Readonly<Record<number, string>> = Object.freeze({
  0x01: 'illegal function',
  0x02: 'illegal data address',
  0x03: 'illegal data value',
  0x04: 'server device failure',
  0x05: 'acknowledge',
  0x06: 'server device busy',
  0x08: 'memory parity error',
  0x0a: 'gateway path unavailable',
  0x0b: 'gateway target device failed to respond',
});

/**
 * How the setpoint writer treats an exception: `rejected` (01–03, the request itself is
 * wrong, retrying cannot help), `device-fault` (04, reported as a fault of the device, not
 * retried), `retryable` (05, 06, 0A, 0B: the device or gateway is busy or unreachable, retried
 * with bounded backoff), `unknown` (any other code, not retried).
 */
export type ModbusExceptionClass = 'rejected' | 'device-fault' | 'retryable' | 'unknown';

/** Classifies a Modbus exception code; see {@link ModbusExceptionClass}. */
export function classifyModbusException(code: number): ModbusExceptionClass {
  if (code >= 1 && code <= 3) return 'rejected';
  if (code === 4) return 'device-fault';
  if (code === 5 || code === 6 || code === 0x0a || code === 0x0b) return 'retryable';
  return 'unknown';
}

/** A device answered a request with a Modbus exception response. */
export class ModbusExceptionError extends Error {
  override readonly name = 'ModbusExceptionError';
  /** The exception code (1–255) the device returned. */
  readonly code: number;
  /** {@link classifyModbusException} of `code`. */
  readonly exceptionClass: ModbusExceptionClass;
  constructor(code: number, operation: string) {
    super(`Modbus exception ${code} (${MODBUS_EXCEPTION_NAMES[code] ?? 'unknown'}) on ${operation}`);
    this.code = code;
    this.exceptionClass = classifyModbusException(code);
  }
}

/** A request got no answer within its timeout; the connection is recycled before the next request. */
export class ModbusTimeoutError extends Error {
  override readonly name = 'ModbusTimeoutError';
  constructor(operation: string, timeoutMs: number) {
    super(`no answer to ${operation} within ${timeoutMs} ms`);
  }
}

/** The TCP connection to a device could not be opened or was lost. */
export class ModbusConnectionError extends Error {
  override readonly name = 'ModbusConnectionError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/**
 * The messages of {@link ModbusTimeoutError} and {@link ModbusConnectionError} as
 * `modbus-client.ts` words them (`no answer to <operation> within <n> ms`, `cannot connect
 * to <host>:<port>`, `<read|write> <n> [input ]registers at <address> failed: <why>`),
 * anywhere in a longer reason (a relaying agent quotes its own failure in parentheses).
 */
const UNREACHABLE =
  /(?:^|\()(?:no answer to .+ within \d+ ms|cannot connect to \S+|(?:read|write) \d+ (?:input )?registers at \d+ failed: )/;

/**
 * Whether a recorded failure reason says the device did not answer or could not be
 * reached (a timeout, a refused or lost connection), as opposed to a device that answered
 * and refused (an exception, a value out of range).
 */
export function isUnreachableReason(reason: string): boolean {
  return UNREACHABLE.test(reason);
}

/** A value cannot be encoded in a point (out of the type's range, wrong kind, bad scale). */
export class CodecRangeError extends RangeError {
  override readonly name = 'CodecRangeError';
}

/** A register map (custom device metadata) is malformed; the message names the field path and value. */
export class RegisterMapError extends Error {
  override readonly name = 'RegisterMapError';
  /** Path of the offending field, e.g. `points[3].type`. */
  readonly path: string;
  /** The offending value, as given. */
  readonly value: unknown;
  /** What is wrong with it, e.g. `must be a point type`. */
  readonly problem: string;
  constructor(path: string, value: unknown, problem: string) {
    super(`${path} ${problem} (got ${formatValue(value)})`);
    this.path = path;
    this.value = value;
    this.problem = problem;
  }
}

/** The device does not expose what a profile needs (no SunS marker, a missing model or point). */
export class DeviceProfileError extends Error {
  override readonly name = 'DeviceProfileError';
}

/** A register write the writer's owner no longer allows (the lease it writes under has ended); it was never sent. */
export class WriteRefusedError extends Error {
  override readonly name = 'WriteRefusedError';
}

/** A setpoint is outside what the device can represent (int32 overflow after scaling). */
export class SetpointOutOfRangeError extends RangeError {
  override readonly name = 'SetpointOutOfRangeError';
}

function formatValue(value: unknown): string {
  if (value === undefined) return 'undefined';
  try {
    const text = JSON.stringify(value);
    return text.length > 80 ? `${text.slice(0, 77)}...` : text;
  } catch {
    return String(value);
  }
}
