import { pino, type DestinationStream, type Logger } from 'pino';
import { createPrettyStream } from './log-pretty.ts';

export type { Logger };

/** The log levels a process accepts, most to least severe. */
export const LOG_LEVELS: readonly string[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** What `POWERPLANE_LOG_FORMAT` and `--log-format` accept: `auto` picks by whether stdout is a terminal. */
export const LOG_FORMAT_SETTINGS = ['auto', 'json', 'pretty'] as const;

/** A value of `POWERPLANE_LOG_FORMAT`. */
export type LogFormatSetting = (typeof LOG_FORMAT_SETTINGS)[number];

/** Whether `value` is one of {@link LOG_FORMAT_SETTINGS}. */
export const isLogFormatSetting = (value: string): value is LogFormatSetting => (LOG_FORMAT_SETTINGS as readonly string[]).includes(value);

/** How log lines are written: JSON lines for machines, or readable lines for a person at a terminal. */
export type LogFormat = 'json' | 'pretty';

/** How a logger writes: its format, and for readable lines whether they are coloured. */
export interface LogOutput {
  readonly format: LogFormat;
  /** ANSI colours on readable lines; default false. Ignored for JSON. */
  readonly colorize?: boolean;
}

/** What {@link terminalLogOutput} needs to know of stdout: `process.stdout` has both. */
export interface OutputStream {
  readonly isTTY?: boolean;
  hasColors?(): boolean;
}

/**
 * The format `setting` means for a stdout that is or is not a terminal: `auto` is readable
 * lines on a terminal and JSON lines otherwise (a pipe, a file, a log collector).
 */
export function resolveLogFormat(setting: LogFormatSetting, isTTY: boolean): LogFormat {
  return setting === 'auto' ? (isTTY ? 'pretty' : 'json') : setting;
}

/**
 * How a command run from a shell logs to `stdout`: the format by {@link resolveLogFormat},
 * coloured only when stdout is a terminal that has colours (Node's `hasColors()`, which
 * honours `NO_COLOR`, `FORCE_COLOR` and `TERM=dumb`).
 */
export function terminalLogOutput(setting: LogFormatSetting, stdout: OutputStream): LogOutput {
  const isTTY = stdout.isTTY === true;
  const format = resolveLogFormat(setting, isTTY);
  return { format, colorize: format === 'pretty' && isTTY && (stdout.hasColors?.() ?? false) };
}

/**
 * Creates the one root logger of a process, secrets redacted, writing to `destination`
 * (stdout when absent): JSON lines by default, or readable lines (`log-pretty.ts`) when
 * `output` says so. Modules take a child (`log.child({ module: 'registry' })`) passed in,
 * never a global.
 */
export function createLogger(level: string, destination?: DestinationStream, output: LogOutput = { format: 'json' }): Logger {
  const options = {
    level,
    base: { service: 'powerplane' },
    redact: {
      paths: ['password', 'token', 'authorization', '*.password', '*.token', '*.authorization', 'databaseUrl'],
      censor: '***',
    },
  };
  if (output.format === 'json') return pino(options, destination);
  return pino(options, createPrettyStream({ colorize: output.colorize ?? false, ...(destination ? { destination } : {}) }));
}
