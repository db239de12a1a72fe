/**
 * `powerplane simulate --bess N --meters M --port P [--host 127.0.0.1] [--tesla T]
 * [--transport servertcp|fast]`: serves a simulated fleet until the signal aborts (the CLI
 * passes one tied to SIGINT/SIGTERM).
 */
import { parseArgs } from 'node:util';
import type pino from 'pino';
import { parseTransport, startSimulator } from './simulator.ts';

const SYNOPSIS = 'Usage: powerplane simulate [--bess N] [--meters M] [--tesla T] [--port P] [--host HOST] [--transport servertcp|fast]';

/** Usage text of the command. */
export const SIMULATE_USAGE = `${SYNOPSIS}

Serves simulated SunSpec batteries (models 1, 701, 704, 713, 802), SunSpec meters (1, 203)
and Tesla-style controllers over Modbus TCP, up to 247 unit ids per port (unit ids 1..247 on
port P, then P+1, ...). Batteries come first, then meters, then Tesla-style controllers.

  --bess N     simulated batteries (default 1)
  --meters M   simulated meters (default 0)
  --tesla T    simulated Tesla-style controllers (default 0)
  --port P     first TCP port (default 5020; 0 picks free ports)
  --host HOST  address to bind (default 127.0.0.1)
  --transport servertcp|fast
               Modbus TCP server (default servertcp): servertcp is modbus-serial's
               ServerTCP, which defers every request by about 1 ms; fast is a minimal
               server answering at once (for benchmarks). Same devices either way.
  --help       show this text
`;

function count(value: string | undefined, name: string, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > max) throw new RangeError(`--${name} must be an integer 0..${max} (got ${value})`);
  return n;
}

/**
 * Runs the command with `argv` (the arguments after `simulate`). Resolves after `signal`
 * aborts and everything is closed; without a signal it resolves only when the process ends.
 * Throws RangeError / TypeError for bad flags, naming the flag and value.
 */
export async function runSimulateCommand(argv: string[], opts: { signal?: AbortSignal; log?: pino.Logger } = {}): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      bess: { type: 'string' },
      meters: { type: 'string' },
      tesla: { type: 'string' },
      port: { type: 'string' },
      host: { type: 'string' },
      transport: { type: 'string' },
      help: { type: 'boolean' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(SIMULATE_USAGE);
    return;
  }
  const sim = await startSimulator({
    transport: parseTransport(values.transport ?? 'servertcp', '--transport'),
    host: values.host ?? '127.0.0.1',
    port: count(values.port, 'port', 5020, 65535),
    bess: count(values.bess, 'bess', 1, 100_000),
    meters: count(values.meters, 'meters', 0, 100_000),
    tesla: count(values.tesla, 'tesla', 0, 100_000),
    ...(opts.log ? { log: opts.log } : {}),
  });
  const summary = sim.devices.reduce<Record<string, string[]>>((acc, d) => {
    (acc[d.kind] ??= []).push(`${d.endpoint.port}/${d.endpoint.unitId}`);
    return acc;
  }, {});
  opts.log?.info(
    {
      host: sim.host,
      ports: sim.ports,
      bess: sim.bess.length,
      meters: sim.meters.length,
      tesla: sim.tesla.length,
      first: Object.fromEntries(Object.entries(summary).map(([k, v]) => [k, v[0]])),
    },
    'simulator serving',
  );
  if (!opts.log) process.stdout.write(`simulator serving ${sim.devices.length} devices on ${sim.host} ports ${sim.ports.join(', ')}\n`);
  await new Promise<void>((resolve) => {
    if (!opts.signal) return;
    if (opts.signal.aborted) {
      resolve();
      return;
    }
    opts.signal.addEventListener('abort', () => resolve(), { once: true });
  });
  await sim.stop();
}
