import { onStopSignal } from './signals.ts';
import { runSimulateCommand } from '../simulator/simulate-command.ts';

export { SIMULATE_USAGE } from '../simulator/simulate-command.ts';

/** `powerplane simulate`: serves the simulated fleet until SIGINT or SIGTERM. */
export async function simulateCommand(argv: string[]): Promise<number> {
  const stop = onStopSignal();
  try {
    await runSimulateCommand(argv, { signal: stop.signal });
  } finally {
    stop.dispose();
  }
  return 0;
}
