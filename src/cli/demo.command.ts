import { runDemo } from '../demo/demo.ts';
import { createLogger } from '../logger.ts';
import { parseFlags } from './config-flags.ts';
import { commandLogOutput } from './log-output.ts';
import { onStopSignal } from './signals.ts';

export const DEMO_HELP = `Usage: powerplane demo [--quick] [--listen HOST:PORT] [--log-level LEVEL] [--log-format FORMAT]

Runs the whole story in one process tree: the control plane on embedded storage, a
simulated fleet (3 sites, each a meter and 2 batteries) over Modbus TCP, an edge agent per
site, and a synthetic trading desk and operator (market data, schedules, NIV chase, an
override, a cancellation), with a live view of every site and a summary at the end. Open
the printed URL for the operator console while it runs. Ctrl-C stops everything cleanly.

  --quick            short timings (under two minutes); ends with one JSON line
  --listen HOST:PORT where the control plane listens (default 127.0.0.1:50051)
  --log-level LEVEL  log level of the components (default warn)
  --log-format FORMAT
                     auto|json|pretty (POWERPLANE_LOG_FORMAT, default auto: pretty on a
                     terminal, JSON lines otherwise)
  -h, --help         show this help`;

const FLAGS = {
  quick: { type: 'boolean' },
  listen: { type: 'string' },
  'log-level': { type: 'string' },
  'log-format': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** `powerplane demo`: runs the demo until its story ends or SIGINT/SIGTERM. */
export async function demoCommand(argv: string[]): Promise<number> {
  const { values } = parseFlags(argv, FLAGS);
  if (values.help) {
    console.log(DEMO_HELP);
    return 0;
  }
  const output = commandLogOutput(values['log-format']);
  const stop = onStopSignal();
  try {
    const summary = await runDemo({
      quick: values.quick ?? false,
      listen: values.listen ?? '127.0.0.1:50051',
      out: (text) => process.stdout.write(text),
      redraw: process.stdout.isTTY === true,
      log: createLogger(values['log-level'] ?? 'warn', undefined, output),
      signal: stop.signal,
    });
    if (values.quick) console.log(JSON.stringify(summary));
    return 0;
  } finally {
    stop.dispose();
  }
}
