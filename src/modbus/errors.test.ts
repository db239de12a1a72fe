import { describe, expect, it } from 'vitest';
import { CodecRangeError, isUnreachableReason, ModbusConnectionError, ModbusExceptionError, ModbusTimeoutError } from './errors.ts';

describe('whether a failure reason says the device could not be reached', () => {
  it.each([
    ['a timeout', new ModbusTimeoutError('write 2 registers at 40123', 1000).message, true],
    ['a refused connection', new ModbusConnectionError('cannot connect to 127.0.0.1:1502').message, true],
    ['a lost connection', new ModbusConnectionError('read 4 input registers at 30001 failed: Port Not Open').message, true],
    ['a request on no connection', new ModbusConnectionError('write 1 registers at 40000 failed: not connected').message, true],
    [
      'a relaying agent quoting a timeout',
      'the agent of site a could not apply it (no answer to read 2 registers at 0 within 500 ms)',
      true,
    ],
    ['an exception answer', new ModbusExceptionError(3, 'write 2 registers at 40123').message, false],
    ['a value out of range', new CodecRangeError('WSet 1e9 is out of range of int32').message, false],
    ['a relay without an agent', 'unavailable (no agent connected to any replica for site a)', false],
    ['a reason merely mentioning a timeout', 'setpoint refused after no answer to read', false],
  ])('%s: %s', (_case, reason, unreachable) => {
    expect(isUnreachableReason(reason)).toBe(unreachable);
  });
});
