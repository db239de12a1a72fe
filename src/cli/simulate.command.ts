import { runSimulateCommand } from '../simulator/simulate-command.ts';

export { SIMULATE_USAGE } from '../simulator/simulate-command.ts';

/** `powerplane simulate`: serves the simulated fleet until SIGINT or SIGTERM. */
export async function simulateCommand(argv: string[]): Promise<number> {
  const stop = new AbortController();
  const abort = () => stop.abort();
  process.once('SIGINT', abort);
  process.once('SIGTERM', abort);
  try {
    await runSimulateCommand(argv, { signal: stop.signal });
  } finally {
    process.off('SIGINT', abort);
    process.off('SIGTERM', abort);
  }
  return 0;
}
