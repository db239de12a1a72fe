/**
 * Runs one Powerplane server for the ingest benchmark in its own process (so agents and
 * server do not share an event loop), configured from the environment like `powerplane
 * serve`. Prints `{"port":N}` once listening; SIGTERM stops it.
 */
import { readEnv, toConfig } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';
import { startServer } from '../../src/server/server.ts';

// Authentication off unless the environment says otherwise: agents here carry no token.
const config = toConfig(readEnv({ POWERPLANE_AUTH: 'off', ...process.env }));
const server = await startServer(config, { log: createLogger(config.logLevel) });
process.stdout.write(`${JSON.stringify({ port: server.address.port })}\n`);
await new Promise<void>((resolve) => process.once('SIGTERM', () => resolve()));
await server.stop();
process.exit(0);
