import { describe, expect, it } from 'vitest';
import { runSimulateCommand } from './simulate-command.ts';
import { createModbusClient } from '../modbus/modbus-client.ts';
import { discoverSunSpec } from '../modbus/sunspec-discovery.ts';

describe('runSimulateCommand', () => {
  it('rejects a negative battery count naming the flag', async () => {
    await expect(runSimulateCommand(['--bess=-1', '--port', '0'])).rejects.toThrow(/--bess must be an integer .* \(got -1\)/);
  });

  it('rejects an unknown flag', async () => {
    await expect(runSimulateCommand(['--batteries', '2'])).rejects.toThrow(/batteries/);
  });

  it('serves until the signal aborts and then closes its ports', async () => {
    const ac = new AbortController();
    const messages: Array<Record<string, unknown>> = [];
    const log = { info: (o: Record<string, unknown>) => { messages.push(o); }, child: () => log } as never;
    const done = runSimulateCommand(['--bess', '2', '--meters', '1', '--port', '0'], { signal: ac.signal, log });
    for (let i = 0; i < 100 && !messages.some((m) => 'first' in m); i++) await new Promise((r) => setTimeout(r, 10));
    const ports = messages.find((m) => 'first' in m)?.ports as number[];
    const client = createModbusClient({ endpoint: { host: '127.0.0.1', port: ports[0] ?? 0, unitId: 3 }, timeoutMs: 500 });
    expect((await discoverSunSpec(client)).models.map((m) => m.id)).toEqual([1, 203]);
    await client.close();
    ac.abort();
    await done;
  });
});
