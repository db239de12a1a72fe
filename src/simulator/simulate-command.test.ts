import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { runSimulateCommand, SIMULATE_USAGE } from './simulate-command.ts';
import { createModbusClient } from '../modbus/modbus-client.ts';
import { discoverSunSpec } from '../modbus/sunspec-discovery.ts';

describe('runSimulateCommand', () => {
  it('rejects a negative battery count naming the flag', async () => {
    await expect(runSimulateCommand(['--bess=-1', '--port', '0'])).rejects.toThrow(/--bess must be an integer .* \(got -1\)/);
  });

  it('rejects an unknown transport naming the flag and the value', async () => {
    await expect(runSimulateCommand(['--transport', 'slow', '--port', '0'])).rejects.toThrow(
      /--transport must be one of servertcp, fast \(got slow\)/,
    );
  });

  it('documents --transport and its default in --help', () => {
    expect(SIMULATE_USAGE).toMatch(/--transport servertcp\|fast\s+Modbus TCP server \(default servertcp\)/);
  });

  it('rejects an unknown flag', async () => {
    await expect(runSimulateCommand(['--batteries', '2'])).rejects.toThrow(/batteries/);
  });

  it.each([
    [[], 'servertcp'],
    [['--transport', 'fast'], 'fast'],
  ])('serves (flags %j: %s transport) until the signal aborts and then closes its ports', async (flags, transport) => {
    const ac = new AbortController();
    const messages: Array<Record<string, unknown>> = [];
    const log = {
      info: (o: Record<string, unknown>) => {
        messages.push(o);
      },
      child: () => log,
    } as never;
    const done = runSimulateCommand(['--bess', '2', '--meters', '1', '--port', '0', ...flags], { signal: ac.signal, log });
    for (let i = 0; i < 100 && !messages.some((m) => 'first' in m); i++) await new Promise((r) => setTimeout(r, 10));
    const ports = messages.find((m) => 'first' in m)?.ports as number[];
    expect(messages.find((m) => 'transport' in m)?.transport).toBe(transport);
    const client = createModbusClient({ endpoint: { host: '127.0.0.1', port: ports[0] ?? 0, unitId: 3 }, timeoutMs: 500 });
    expect((await discoverSunSpec(client)).models.map((m) => m.id)).toEqual([1, 203]);
    await client.close();
    ac.abort();
    await done;
    const refused = await new Promise<string | undefined>((resolve) => {
      const socket = net.connect(ports[0] ?? 0, '127.0.0.1', () => {
        socket.destroy();
        resolve(undefined);
      });
      socket.on('error', (err: NodeJS.ErrnoException) => resolve(err.code));
    });
    expect(refused).toBe('ECONNREFUSED');
  });
});
