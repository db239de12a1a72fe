import { describe, expect, it } from 'vitest';
import { createDeviceControl } from './device-control.ts';
import type { ModbusClient } from './modbus-client.ts';
import { parseRegisterMap } from './register-map.ts';

/** A client that answers reads with zeros and records every write. */
function recordingClient(): { client: ModbusClient; writes: Array<[number, readonly number[]]> } {
  const writes: Array<[number, readonly number[]]> = [];
  const client: ModbusClient = {
    endpoint: { host: '127.0.0.1', port: 1, unitId: 1 },
    isOpen: true,
    connect: async () => undefined,
    close: async () => undefined,
    readHoldingRegisters: async (_address, count) => new Array<number>(count).fill(0),
    readInputRegisters: async (_address, count) => new Array<number>(count).fill(0),
    writeRegisters: async (address, values) => void writes.push([address, values]),
  };
  return { client, writes };
}

describe('map control', () => {
  it('refreshes a device without a heartbeat register by writing the active setpoint again', async () => {
    const { client, writes } = recordingClient();
    const map = parseRegisterMap({
      points: [
        { name: 'mode', address: 200, type: 'uint16', access: 'RW' },
        { name: 'powerSetpoint', address: 201, type: 'int32', unit: 'W', access: 'RW' },
        { name: 'timeout', address: 204, type: 'uint16', unit: 's', access: 'RW' },
      ],
      control: { powerPoint: 'powerSetpoint', modePoint: 'mode', timeoutPoint: 'timeout' },
    });
    const control = createDeviceControl({ kind: 'custom', map }, client);
    await control.prepare();
    await control.arm(10);
    const active = control.expect(50, false);
    if (!('writes' in active)) throw new Error('expected an expectation');
    writes.length = 0;
    await control.apply(active);
    const applied = writes.splice(0);
    await control.heartbeat(active);
    // Without the refresh the device would revert after 10 s while the writer believes it holds 50 kW.
    expect(writes).toEqual(applied);
    expect(writes.flatMap(([, v]) => v)).toContain(50_000);
  });
});
