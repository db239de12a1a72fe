import { parseArgs, type ParseArgsConfig } from 'node:util';
import { readEnv, toConfig, type Config, type Env } from '../config.ts';

/** Flags every server-side command accepts; each overrides its environment variable. */
export const CONFIG_FLAGS = {
  listen: { type: 'string' },
  'database-url': { type: 'string' },
  'data-dir': { type: 'string' },
  'log-level': { type: 'string' },
  'log-format': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

/** The help lines of {@link CONFIG_FLAGS}. */
export const CONFIG_FLAGS_HELP = `  --listen HOST:PORT     address to serve on (POWERPLANE_LISTEN, default 127.0.0.1:50051)
  --database-url URL     PostgreSQL URL (DATABASE_URL); without it, embedded PGlite
  --data-dir DIR         PGlite data directory (POWERPLANE_DATA_DIR, default ./.powerplane)
  --log-level LEVEL      fatal|error|warn|info|debug|trace|silent (POWERPLANE_LOG_LEVEL, default info)
  --log-format FORMAT    auto|json|pretty (POWERPLANE_LOG_FORMAT, default auto: pretty on a terminal)
  -h, --help             show this help`;

/** Parses `argv` with `options`, throwing a usage error that names an unknown flag. */
export function parseFlags<O extends ParseArgsConfig['options']>(argv: string[], options: O) {
  return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
}

/** Builds the config from the environment with the config flags laid over it. */
export function configFromFlags(
  values: { listen?: string; 'database-url'?: string; 'data-dir'?: string; 'log-level'?: string; 'log-format'?: string },
  env: Env = readEnv(),
): Config {
  return toConfig({
    ...env,
    ...(values.listen !== undefined ? { listen: values.listen } : {}),
    ...(values['database-url'] !== undefined ? { databaseUrl: values['database-url'] } : {}),
    ...(values['data-dir'] !== undefined ? { dataDir: values['data-dir'] } : {}),
    ...(values['log-level'] !== undefined ? { logLevel: values['log-level'] } : {}),
    ...(values['log-format'] !== undefined ? { logFormat: values['log-format'] } : {}),
  });
}
