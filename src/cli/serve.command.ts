import { existsSync } from 'node:fs';
import { createLogger, terminalLogOutput } from '../logger.ts';
import { installLastResort } from '../server/last-resort.ts';
import { startServer } from '../server/server.ts';
import { CONFIG_FLAGS, CONFIG_FLAGS_HELP, configFromFlags, parseFlags } from './config-flags.ts';
import { onStopSignal } from './signals.ts';

export const SERVE_HELP = `Usage: powerplane serve [flags]

Runs the control plane: gRPC, gRPC-Web and Connect on one port, with health, reflection,
/metrics and /healthz. Applies pending migrations first. Without DATABASE_URL it stores
everything in embedded PGlite under the data directory. SIGINT/SIGTERM stop it gracefully.

Flags:
${CONFIG_FLAGS_HELP}`;

/** `powerplane serve`: runs until SIGINT or SIGTERM, then stops gracefully. */
export async function serveCommand(argv: string[]): Promise<number> {
  const { values } = parseFlags(argv, CONFIG_FLAGS);
  if (values.help) {
    console.log(SERVE_HELP);
    return 0;
  }
  const config = configFromFlags(values);
  const log = createLogger(config.logLevel, undefined, terminalLogOutput(config.logFormat, process.stdout));
  // An error escaping a request is answered by that request; any other still ends the process.
  const removeLastResort = installLastResort({ log });
  const server = await startServer(config, { log });
  console.error(
    `Powerplane is serving on http://${server.address.host}:${server.address.port} (database: ${server.database.kind}). Ctrl-C stops it.`,
  );
  console.error(
    !config.auth.enabled
      ? 'Authentication is OFF (POWERPLANE_AUTH=off): every caller may do everything.'
      : config.auth.adminTokenFile && existsSync(config.auth.adminTokenFile)
        ? `Authentication is on. The admin token is in ${config.auth.adminTokenFile}; ` +
          'the CLI uses it from there, other clients send it as "authorization: Bearer <token>".'
        : 'Authentication is on. Create tokens with "powerplane tokens create".',
  );
  await onStopSignal(log).received;
  await server.stop();
  removeLastResort();
  return 0;
}
