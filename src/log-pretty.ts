/**
 * The human-readable form of the log, for a person at a terminal: pino's own pretty printer
 * (`pino-pretty`) run in-process as pino's destination stream, one line per entry:
 *
 *     [14:03:07.412] INFO (migrator): migration applied version=3 name=datum_streams durationMs=41
 *
 * Local time, level, module, message, then the entry's other fields as `key=value`. An
 * `err` also prints its stack below the line. The stream is synchronous, so what was logged
 * is on the terminal when the process exits on a signal or a fatal error.
 */
import { Writable } from 'node:stream';
import type { DestinationStream } from 'pino';
import pinoPretty, { type MessageFormatFunc, type Prettifier } from 'pino-pretty';

/** Where a pretty stream writes: a pino destination (`{ write(line) }`), or stdout when absent. */
export interface PrettyStreamOptions {
  readonly destination?: DestinationStream;
  /** ANSI colours; only for a terminal that has them. */
  readonly colorize: boolean;
}

/** Keys the line shows in its own places, or that are the same on every line of a process. */
const SHOWN_ELSEWHERE = new Set(['level', 'time', 'msg', 'module', 'service']);
/** Keys pino serializes errors under. */
const ERROR_KEYS = new Set(['err', 'error']);

/** Creates the stream to pass to `pino(options, stream)` for readable lines. */
export function createPrettyStream(options: PrettyStreamOptions): NodeJS.WritableStream {
  return pinoPretty({
    colorize: options.colorize,
    sync: true,
    // pino-pretty pipes into its destination, so it takes a Node stream, or stdout when absent.
    ...(options.destination ? { destination: toWritable(options.destination) } : {}),
    translateTime: 'SYS:HH:MM:ss.l',
    // pino-pretty would print these as the logger's `(name/pid on hostname) <caller>`; here
    // they are ordinary fields (a device's or a token's name), which `messageFormat` writes.
    ignore: 'name,pid,hostname,caller',
    // The fields are written by `messageFormat`, on the entry's one line.
    hideObject: true,
    messageFormat,
    customPrettifiers: { level: levelWithModule },
  });
}

/** `INFO (module)`: the level, then the module that logged, as pino-pretty shows a logger's name. */
const levelWithModule: Prettifier = (_level, _key, log, { labelColorized }) => {
  const module = (log as Record<string, unknown>).module;
  return typeof module === 'string' ? `${labelColorized} (${escapeControls(module)})` : labelColorized;
};

/** The message followed by the entry's fields as `key=value`, and an error's stack below. */
const messageFormat: MessageFormatFunc = (log, messageKey, _levelLabel, { colors }) => {
  const message = log[messageKey];
  const parts: string[] = typeof message === 'string' ? [escapeControls(message)] : [];
  const stacks: string[] = [];
  for (const [key, value] of Object.entries(log)) {
    if (key === messageKey || SHOWN_ELSEWHERE.has(key) || value === undefined) continue;
    const error = ERROR_KEYS.has(key) ? serializedError(value) : undefined;
    if (error?.stack) stacks.push(error.stack);
    parts.push(`${colors.gray(`${escapeControls(key)}=`)}${formatValue(error ? error.message : value)}`);
  }
  const stackLines = stacks.flatMap((stack) => stack.split('\n')).map((line) => `\n    ${escapeControls(line)}`);
  return parts.join(' ') + stackLines.join('');
};

/** The message and stack of an error as pino serializes it (`{ type, message, stack }`); undefined for anything else. */
function serializedError(value: unknown): { message: string; stack: string | undefined } | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const { message, stack } = value as { message?: unknown; stack?: unknown };
  if (typeof message !== 'string') return undefined;
  return { message, stack: typeof stack === 'string' ? stack : undefined };
}

/**
 * A field's value: a plain word as it is, any other string quoted as JSON, numbers and
 * booleans as they are, objects and arrays as compact JSON. Control characters are always
 * escaped, so a value can neither break the line nor send the terminal escape sequences.
 */
export function formatValue(value: unknown): string {
  if (typeof value === 'string') return /^[^\s"=\\\p{C}]+$/u.test(value) ? value : escapeControls(JSON.stringify(value));
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint' || value === null) return String(value);
  return escapeControls(JSON.stringify(value) ?? String(value));
}

/** Replaces C0 and C1 control characters (newlines and ANSI escapes among them) with `\uXXXX`. */
function escapeControls(text: string): string {
  return text.replace(/\p{Cc}/gu, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** A Node stream over a pino destination, which is all pino-pretty pipes into. */
function toWritable(destination: DestinationStream): NodeJS.WritableStream {
  if (destination instanceof Writable) return destination;
  return new Writable({
    write(chunk: Buffer | string, _encoding, callback) {
      destination.write(chunk.toString());
      callback();
    },
  });
}
