import path from 'node:path';
import { InvalidArgumentError } from './errors.ts';

/** The environment variables Powerplane reads: `POWERPLANE_*` and `DATABASE_URL`. */
export interface Env {
  readonly listen?: string;
  readonly databaseUrl?: string;
  readonly dataDir?: string;
  readonly logLevel?: string;
  readonly maxMessageBytes?: string;
  readonly maxTimeoutMs?: string;
  readonly maxConcurrentStreams?: string;
  readonly keepaliveIntervalMs?: string;
  readonly keepaliveTimeoutMs?: string;
  readonly shutdownGraceMs?: string;
  readonly healthProbeIntervalMs?: string;
}

/**
 * Reads the process environment. It is the only reader of `process.env` in the product,
 * so every setting is visible here and tests build configs without touching globals.
 */
export function readEnv(source: NodeJS.ProcessEnv = process.env): Env {
  return {
    listen: source.POWERPLANE_LISTEN,
    databaseUrl: source.DATABASE_URL,
    dataDir: source.POWERPLANE_DATA_DIR,
    logLevel: source.POWERPLANE_LOG_LEVEL,
    maxMessageBytes: source.POWERPLANE_MAX_MESSAGE_BYTES,
    maxTimeoutMs: source.POWERPLANE_MAX_TIMEOUT_MS,
    maxConcurrentStreams: source.POWERPLANE_MAX_CONCURRENT_STREAMS,
    keepaliveIntervalMs: source.POWERPLANE_KEEPALIVE_INTERVAL_MS,
    keepaliveTimeoutMs: source.POWERPLANE_KEEPALIVE_TIMEOUT_MS,
    shutdownGraceMs: source.POWERPLANE_SHUTDOWN_GRACE_MS,
    healthProbeIntervalMs: source.POWERPLANE_HEALTH_PROBE_INTERVAL_MS,
  };
}

/** Where the database is: a PostgreSQL server, or embedded PGlite in a data directory. */
export type DatabaseConfig =
  | { readonly kind: 'postgres'; readonly url: string }
  | { readonly kind: 'pglite'; readonly dataDir: string };

/** The server's limits; every one is explicit so an operator can see and change it. */
export interface ServerLimits {
  /** Largest request or response message, in bytes. Default 4 MiB. */
  readonly maxMessageBytes: number;
  /** Largest deadline a client may ask for; longer ones are cut to it. Default 5 min. */
  readonly maxTimeoutMs: number;
  /** HTTP/2 concurrent streams per connection. Default 100. */
  readonly maxConcurrentStreams: number;
  /** Interval between HTTP/2 PINGs on an idle-looking connection. Default 30 s. */
  readonly keepaliveIntervalMs: number;
  /** A connection whose PING is unanswered this long is closed. Default 10 s. */
  readonly keepaliveTimeoutMs: number;
  /** How long a graceful stop waits for calls in flight before closing them. Default 10 s. */
  readonly shutdownGraceMs: number;
}

/** The whole, checked, frozen configuration of one Powerplane process. */
export interface Config {
  readonly host: string;
  readonly port: number;
  readonly database: DatabaseConfig;
  readonly logLevel: string;
  readonly limits: ServerLimits;
  /** How often the database is probed for the health service. Default 5 s. */
  readonly healthProbeIntervalMs: number;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/**
 * Applies defaults to `env`, checks every value and freezes the result. A bad value
 * throws an {@link InvalidArgumentError} that names the variable and the value.
 */
export function toConfig(env: Env): Config {
  const { host, port } = parseListen(env.listen ?? '127.0.0.1:50051');
  const database: DatabaseConfig = env.databaseUrl
    ? { kind: 'postgres', url: parseDatabaseUrl(env.databaseUrl) }
    : { kind: 'pglite', dataDir: env.dataDir?.startsWith('memory://') ? env.dataDir : path.resolve(env.dataDir ?? './.powerplane') };
  const logLevel = env.logLevel ?? 'info';
  if (!LOG_LEVELS.includes(logLevel)) {
    throw new InvalidArgumentError('POWERPLANE_LOG_LEVEL', logLevel, `must be one of ${LOG_LEVELS.join(' | ')}`);
  }
  const limits: ServerLimits = Object.freeze({
    maxMessageBytes: int('POWERPLANE_MAX_MESSAGE_BYTES', env.maxMessageBytes, 4 * 1024 * 1024, 1024, 256 * 1024 * 1024),
    maxTimeoutMs: int('POWERPLANE_MAX_TIMEOUT_MS', env.maxTimeoutMs, 300_000, 100, 86_400_000),
    maxConcurrentStreams: int('POWERPLANE_MAX_CONCURRENT_STREAMS', env.maxConcurrentStreams, 100, 1, 10_000),
    keepaliveIntervalMs: int('POWERPLANE_KEEPALIVE_INTERVAL_MS', env.keepaliveIntervalMs, 30_000, 1_000, 3_600_000),
    keepaliveTimeoutMs: int('POWERPLANE_KEEPALIVE_TIMEOUT_MS', env.keepaliveTimeoutMs, 10_000, 100, 600_000),
    shutdownGraceMs: int('POWERPLANE_SHUTDOWN_GRACE_MS', env.shutdownGraceMs, 10_000, 0, 600_000),
  });
  const healthProbeIntervalMs = int('POWERPLANE_HEALTH_PROBE_INTERVAL_MS', env.healthProbeIntervalMs, 5_000, 100, 600_000);
  return Object.freeze({ host, port, database: Object.freeze(database), logLevel, limits, healthProbeIntervalMs });
}

function parseListen(value: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(value.trim());
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65_535) {
    throw new InvalidArgumentError('POWERPLANE_LISTEN', value, 'must be host:port with a port from 0 to 65535');
  }
  const host = match[1] ?? match[2] ?? '';
  return { host: host === '' ? '127.0.0.1' : host, port };
}

function parseDatabaseUrl(value: string): string {
  try {
    const url = new URL(value);
    if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') throw new Error('scheme');
  } catch {
    throw new InvalidArgumentError('DATABASE_URL', redactUrl(value), 'must be a postgres:// or postgresql:// URL');
  }
  return value;
}

/** Replaces the password of a URL with `***`, for logs and error messages. */
export function redactUrl(value: string): string {
  return value.replace(/(\/\/[^:/@]+:)[^@]*@/, '$1***@');
}

function int(name: string, raw: string | undefined, fallback: number, min: number, max: number): number {
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new InvalidArgumentError(name, raw, `must be a whole number from ${min} to ${max}`);
  }
  return value;
}
