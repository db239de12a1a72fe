import { spawn } from 'node:child_process';
import path from 'node:path';
import type { ModbusEndpoint } from '../../src/modbus/types.ts';

const BIN = path.resolve(import.meta.dirname, '../../bin/powerplane.js');
/** Unit ids per port, as `powerplane simulate` lays devices out. */
const UNITS_PER_PORT = 247;

/** A `powerplane simulate` child process and where its batteries answer. */
export interface SimulatorProcess {
  /** Battery `i`'s endpoint: port `ports[⌊i / 247⌋]`, unit id `i mod 247 + 1`. */
  readonly bess: ModbusEndpoint[];
  stop(): Promise<void>;
}

/**
 * Starts `powerplane simulate --bess N --port 0 --transport fast` in its own process, as
 * real batteries are other machines: the benchmark then measures the control plane, not a
 * simulator sharing its event loop. Resolves once it says where it serves; bounded to 60 s.
 */
export function startSimulatorProcess(bess: number): Promise<SimulatorProcess> {
  const child = spawn(process.execPath, [BIN, 'simulate', '--bess', String(bess), '--port', '0', '--transport', 'fast'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  };
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      void stop();
      reject(new Error(`simulator did not start within 60 s: ${out}`));
    }, 60_000);
    child.once('exit', (code) => reject(new Error(`simulator exited (${code}): ${out}`)));
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk;
      const match = /ports ([\d, ]+)\n/.exec(out);
      if (!match) return;
      clearTimeout(timer);
      const ports = match[1]!.split(',').map((p) => Number(p.trim()));
      resolve({
        bess: Array.from({ length: bess }, (_, i) => ({
          host: '127.0.0.1',
          port: ports[Math.floor(i / UNITS_PER_PORT)]!,
          unitId: (i % UNITS_PER_PORT) + 1,
        })),
        stop,
      });
    });
  });
}
