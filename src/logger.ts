import { pino, type Logger } from 'pino';

export type { Logger };

/** The log levels a process accepts, most to least severe. */
export const LOG_LEVELS: readonly string[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/**
 * Creates the one root logger of a process: JSON lines on stdout, secrets redacted.
 * Modules take a child (`log.child({ module: 'registry' })`) passed in, never a global.
 */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'powerplane' },
      redact: {
        paths: ['password', 'token', 'authorization', '*.password', '*.token', '*.authorization', 'databaseUrl'],
        censor: '***',
      },
    },
    destination,
  );
}
