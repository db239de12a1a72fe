/**
 * Runs one Powerplane server for the ingest benchmark in its own process (so agents and
 * server do not share an event loop), configured from the environment like `powerplane
 * serve`. Prints `{"port":N}` once listening; SIGTERM stops it.
 */
import { readEnv, toConfig } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';
import { startServer } from '../../src/server/server.ts';

// Authentication off unless the environment says otherwise: agents here carry no token.
// So every agent is one principal, whose ingest rate limit would cap the whole run: the
// benchmark measures what the server can take, so the limit is off unless asked for.
const config = toConfig(readEnv({ POWERPLANE_AUTH: 'off', POWERPLANE_INGEST_READINGS_PER_S: '0', ...process.env }));
const server = await startServer(config, { log: createLogger(config.logLevel) });
// The dispatch benchmark needs the control loop running (a few seconds on PostgreSQL).
if (process.env.BENCH_WAIT_FOR_CONTROL === '1') {
  for (let i = 0; i < 600 && !server.controlsBatteries(); i++) await new Promise((resolve) => setTimeout(resolve, 100));
}
process.stdout.write(`${JSON.stringify({ port: server.address.port })}\n`);
await new Promise<void>((resolve) => process.once('SIGTERM', () => resolve()));
await server.stop();
process.exit(0);
