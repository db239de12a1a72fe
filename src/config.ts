import path from 'node:path';
import { InvalidArgumentError } from './errors.ts';
import { LOG_LEVELS } from './logger.ts';

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
  readonly headersTimeoutMs?: string;
  readonly idleTimeoutMs?: string;
  readonly shutdownGraceMs?: string;
  readonly defaultTimeoutMs?: string;
  readonly dispatchRatePerS?: string;
  readonly dispatchBurst?: string;
  readonly marketDataRatePerS?: string;
  readonly marketDataBurst?: string;
  readonly registryRatePerS?: string;
  readonly registryBurst?: string;
  readonly tokensRatePerS?: string;
  readonly tokensBurst?: string;
  readonly tlsCert?: string;
  readonly tlsKey?: string;
  readonly tlsClientCa?: string;
  readonly tlsClientAuth?: string;
  readonly healthProbeIntervalMs?: string;
  readonly backfillWindowHours?: string;
  readonly maxBatchReadings?: string;
  readonly maxBatchesInFlightPerStream?: string;
  readonly maxBatchesInFlight?: string;
  readonly ingestConnections?: string;
  readonly maxGroupReadings?: string;
  readonly deviceCacheTtlMs?: string;
  readonly controlPeriodMs?: string;
  readonly maxTelemetryAgeMs?: string;
  readonly heartbeatIntervalMs?: string;
  readonly modbusTimeoutMs?: string;
  readonly auth?: string;
  readonly jwtIssuer?: string;
  readonly jwtAudience?: string;
  readonly jwtKeyFile?: string;
  readonly jwtAlgorithms?: string;
  readonly tokenCacheMs?: string;
  /** The bearer token client commands (`devices`, `tokens`) send; not used by `serve`. */
  readonly token?: string;
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
    headersTimeoutMs: source.POWERPLANE_HEADERS_TIMEOUT_MS,
    idleTimeoutMs: source.POWERPLANE_IDLE_TIMEOUT_MS,
    shutdownGraceMs: source.POWERPLANE_SHUTDOWN_GRACE_MS,
    defaultTimeoutMs: source.POWERPLANE_DEFAULT_TIMEOUT_MS,
    dispatchRatePerS: source.POWERPLANE_DISPATCH_RATE_PER_S,
    dispatchBurst: source.POWERPLANE_DISPATCH_BURST,
    marketDataRatePerS: source.POWERPLANE_MARKETDATA_RATE_PER_S,
    marketDataBurst: source.POWERPLANE_MARKETDATA_BURST,
    registryRatePerS: source.POWERPLANE_REGISTRY_RATE_PER_S,
    registryBurst: source.POWERPLANE_REGISTRY_BURST,
    tokensRatePerS: source.POWERPLANE_TOKENS_RATE_PER_S,
    tokensBurst: source.POWERPLANE_TOKENS_BURST,
    tlsCert: source.POWERPLANE_TLS_CERT,
    tlsKey: source.POWERPLANE_TLS_KEY,
    tlsClientCa: source.POWERPLANE_TLS_CLIENT_CA,
    tlsClientAuth: source.POWERPLANE_TLS_CLIENT_AUTH,
    healthProbeIntervalMs: source.POWERPLANE_HEALTH_PROBE_INTERVAL_MS,
    backfillWindowHours: source.POWERPLANE_BACKFILL_WINDOW_HOURS,
    maxBatchReadings: source.POWERPLANE_MAX_BATCH_READINGS,
    maxBatchesInFlightPerStream: source.POWERPLANE_MAX_BATCHES_IN_FLIGHT_PER_STREAM,
    maxBatchesInFlight: source.POWERPLANE_MAX_BATCHES_IN_FLIGHT,
    ingestConnections: source.POWERPLANE_INGEST_CONNECTIONS,
    maxGroupReadings: source.POWERPLANE_MAX_GROUP_READINGS,
    deviceCacheTtlMs: source.POWERPLANE_DEVICE_CACHE_TTL_MS,
    controlPeriodMs: source.POWERPLANE_CONTROL_PERIOD_MS,
    maxTelemetryAgeMs: source.POWERPLANE_MAX_TELEMETRY_AGE_MS,
    heartbeatIntervalMs: source.POWERPLANE_HEARTBEAT_INTERVAL_MS,
    modbusTimeoutMs: source.POWERPLANE_MODBUS_TIMEOUT_MS,
    auth: source.POWERPLANE_AUTH,
    jwtIssuer: source.POWERPLANE_JWT_ISSUER,
    jwtAudience: source.POWERPLANE_JWT_AUDIENCE,
    jwtKeyFile: source.POWERPLANE_JWT_KEY_FILE,
    jwtAlgorithms: source.POWERPLANE_JWT_ALGORITHMS,
    tokenCacheMs: source.POWERPLANE_TOKEN_CACHE_MS,
    token: source.POWERPLANE_TOKEN,
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
  /** Largest deadline a client may ask for; a longer one is refused with INVALID_ARGUMENT. Default 5 min. */
  readonly maxTimeoutMs: number;
  /** HTTP/2 concurrent streams per connection. Default 100. */
  readonly maxConcurrentStreams: number;
  /** Interval between HTTP/2 PINGs on an idle-looking connection. Default 30 s. */
  readonly keepaliveIntervalMs: number;
  /** A connection whose PING is unanswered this long is closed. Default 10 s. */
  readonly keepaliveTimeoutMs: number;
  /**
   * A new connection must say which protocol it speaks (and finish its TLS handshake), and
   * then complete its first request's headers (HTTP/1.1) or open its first stream (HTTP/2),
   * within this long, or it is closed. Default 10 s (`POWERPLANE_HEADERS_TIMEOUT_MS`).
   */
  readonly headersTimeoutMs: number;
  /**
   * A connection that carries no request (an HTTP/1.1 keep-alive connection between
   * requests, an HTTP/2 connection with no open stream) is closed after this long. Open
   * streams are never cut by it. Default 10 s (`POWERPLANE_IDLE_TIMEOUT_MS`).
   */
  readonly idleTimeoutMs: number;
  /** How long a graceful stop waits for calls in flight before closing them. Default 10 s. */
  readonly shutdownGraceMs: number;
  /** Deadline of a unary call whose client set none; streams have none. Default 30 s. */
  readonly defaultTimeoutMs: number;
  /**
   * Dispatch writes (SubmitDispatch, CancelDispatch, SetControlMode, SetSiteConfig) each
   * caller may make per second on average; 0 turns the limit off. Default 10.
   */
  readonly dispatchRatePerS: number;
  /** Dispatch writes a caller may make at once after a quiet spell. Default 200. */
  readonly dispatchBurst: number;
  /** PublishMarketData calls each caller may make per second on average; 0 = off. Default 5. */
  readonly marketDataRatePerS: number;
  /** PublishMarketData calls a caller may make at once after a quiet spell. Default 50. */
  readonly marketDataBurst: number;
  /**
   * Registry writes (CreateDevice, UpdateDevice, DeactivateDevice) each caller may make per
   * second on average; 0 = off. Default 50.
   */
  readonly registryRatePerS: number;
  /** Registry writes a caller may make at once: a script registering a 1000-device fleet. Default 1000. */
  readonly registryBurst: number;
  /** Token administration calls (CreateToken, RevokeToken) per caller per second on average; 0 = off. Default 50. */
  readonly tokensRatePerS: number;
  /** Token administration calls a caller may make at once: one agent token per site of a 1000-site fleet. Default 1000. */
  readonly tokensBurst: number;
}

/** TLS on the listener (`POWERPLANE_TLS_*`); without it the port speaks cleartext. */
export interface TlsConfig {
  /** PEM certificate chain file of the server. */
  readonly certFile: string;
  /** PEM private key file of the server. */
  readonly keyFile: string;
  /** PEM file of the CAs whose client certificates are accepted (mutual TLS); undefined = none asked. */
  readonly clientCaFile: string | undefined;
  /**
   * With a client CA: `require` refuses a connection without a valid client certificate at
   * the handshake; `optional` (default) also admits clients without one (they send a bearer
   * token), but never one whose certificate does not verify.
   */
  readonly clientAuth: 'require' | 'optional';
}

/** The control loop that turns instructions into setpoints. */
export interface DispatchConfig {
  /** How often every site is planned, ms. Default 4000 (`POWERPLANE_CONTROL_PERIOD_MS`). */
  readonly controlPeriodMs: number;
  /** Battery telemetry older than this holds the battery at its fallback, ms. Default 30000. */
  readonly maxTelemetryAgeMs: number;
  /** Heartbeat interval while a setpoint is active, ms. Default 1000. */
  readonly heartbeatIntervalMs: number;
  /** Timeout of one Modbus request, ms. Default 1000. */
  readonly modbusTimeoutMs: number;
}

/** Telemetry ingest: what readings are accepted and how much is held in memory at once. */
export interface TelemetryConfig {
  /** How far back a reading's time may be, ms. Default 7 days (`POWERPLANE_BACKFILL_WINDOW_HOURS`, 168). */
  readonly backfillWindowMs: number;
  /** Most readings of all kinds in one batch; a larger batch is refused whole. Default 5000. */
  readonly maxBatchReadings: number;
  /** Batches one stream may have read and not yet acknowledged. Default 4. */
  readonly maxBatchesInFlightPerStream: number;
  /** Batches all streams together may have read and not yet acknowledged. Default 64. */
  readonly maxBatchesInFlight: number;
  /** Connections (transactions at once) ingest writes with on PostgreSQL. Default 3. */
  readonly ingestConnections: number;
  /** Most readings committed in one grouped transaction. Default 20000. */
  readonly maxGroupReadings: number;
  /** How long device lookups are cached for validation, ms. Default 5 s. */
  readonly deviceCacheTtlMs: number;
}

/** Who may call: bearer tokens (static, stored hashed) and JWTs, see `src/auth/`. */
export interface AuthConfig {
  /** Whether calls need credentials. Default on (`POWERPLANE_AUTH=on|off`). */
  readonly enabled: boolean;
  /**
   * Where the first start writes the admin token it creates (0600), `<data dir>/admin.token`;
   * undefined for an in-memory database.
   */
  readonly adminTokenFile: string | undefined;
  /** JWT validation; undefined unless `POWERPLANE_JWT_KEY_FILE` is set. */
  readonly jwt: JwtConfig | undefined;
  /** How long a verified static token is trusted before it is looked up again (so revocation takes this long at most), ms. Default 5000. */
  readonly tokenCacheMs: number;
}

/** How JWTs are validated. */
export interface JwtConfig {
  /** Required `iss`. */
  readonly issuer: string;
  /** Required `aud`. */
  readonly audience: string;
  /** A PEM public key (SPKI) or a JWKS JSON file. */
  readonly keyFile: string;
  /** Accepted `alg` values; never `none`. Default RS256, ES256, EdDSA. */
  readonly algorithms: readonly string[];
}

/** The whole, checked, frozen configuration of one Powerplane process. */
export interface Config {
  readonly host: string;
  readonly port: number;
  readonly database: DatabaseConfig;
  readonly logLevel: string;
  readonly limits: ServerLimits;
  /** Undefined: cleartext. */
  readonly tls: TlsConfig | undefined;
  /** How often the database is probed for the health service. Default 5 s. */
  readonly healthProbeIntervalMs: number;
  readonly telemetry: TelemetryConfig;
  readonly dispatch: DispatchConfig;
  readonly auth: AuthConfig;
}


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
    headersTimeoutMs: int('POWERPLANE_HEADERS_TIMEOUT_MS', env.headersTimeoutMs, 10_000, 100, 600_000),
    idleTimeoutMs: int('POWERPLANE_IDLE_TIMEOUT_MS', env.idleTimeoutMs, 10_000, 100, 3_600_000),
    shutdownGraceMs: int('POWERPLANE_SHUTDOWN_GRACE_MS', env.shutdownGraceMs, 10_000, 0, 600_000),
    defaultTimeoutMs: int('POWERPLANE_DEFAULT_TIMEOUT_MS', env.defaultTimeoutMs, 30_000, 10, 86_400_000),
    dispatchRatePerS: int('POWERPLANE_DISPATCH_RATE_PER_S', env.dispatchRatePerS, 10, 0, 100_000),
    dispatchBurst: int('POWERPLANE_DISPATCH_BURST', env.dispatchBurst, 200, 1, 1_000_000),
    marketDataRatePerS: int('POWERPLANE_MARKETDATA_RATE_PER_S', env.marketDataRatePerS, 5, 0, 100_000),
    marketDataBurst: int('POWERPLANE_MARKETDATA_BURST', env.marketDataBurst, 50, 1, 1_000_000),
    registryRatePerS: int('POWERPLANE_REGISTRY_RATE_PER_S', env.registryRatePerS, 50, 0, 100_000),
    registryBurst: int('POWERPLANE_REGISTRY_BURST', env.registryBurst, 1_000, 1, 1_000_000),
    tokensRatePerS: int('POWERPLANE_TOKENS_RATE_PER_S', env.tokensRatePerS, 50, 0, 100_000),
    tokensBurst: int('POWERPLANE_TOKENS_BURST', env.tokensBurst, 1_000, 1, 1_000_000),
  });
  if (limits.defaultTimeoutMs > limits.maxTimeoutMs) {
    throw new InvalidArgumentError('POWERPLANE_DEFAULT_TIMEOUT_MS', limits.defaultTimeoutMs, `must not be above POWERPLANE_MAX_TIMEOUT_MS (${limits.maxTimeoutMs})`);
  }
  const tls = toTlsConfig(env);
  const healthProbeIntervalMs = int('POWERPLANE_HEALTH_PROBE_INTERVAL_MS', env.healthProbeIntervalMs, 5_000, 100, 600_000);
  const telemetry: TelemetryConfig = Object.freeze({
    backfillWindowMs: int('POWERPLANE_BACKFILL_WINDOW_HOURS', env.backfillWindowHours, 168, 1, 87_600) * 3_600_000,
    maxBatchReadings: int('POWERPLANE_MAX_BATCH_READINGS', env.maxBatchReadings, 5_000, 1, 100_000),
    maxBatchesInFlightPerStream: int('POWERPLANE_MAX_BATCHES_IN_FLIGHT_PER_STREAM', env.maxBatchesInFlightPerStream, 4, 1, 1_000),
    maxBatchesInFlight: int('POWERPLANE_MAX_BATCHES_IN_FLIGHT', env.maxBatchesInFlight, 64, 1, 100_000),
    ingestConnections: int('POWERPLANE_INGEST_CONNECTIONS', env.ingestConnections, 3, 1, 100),
    maxGroupReadings: int('POWERPLANE_MAX_GROUP_READINGS', env.maxGroupReadings, 20_000, 1, 1_000_000),
    deviceCacheTtlMs: int('POWERPLANE_DEVICE_CACHE_TTL_MS', env.deviceCacheTtlMs, 5_000, 0, 600_000),
  });
  const dispatch: DispatchConfig = Object.freeze({
    controlPeriodMs: int('POWERPLANE_CONTROL_PERIOD_MS', env.controlPeriodMs, 4_000, 100, 600_000),
    maxTelemetryAgeMs: int('POWERPLANE_MAX_TELEMETRY_AGE_MS', env.maxTelemetryAgeMs, 30_000, 1_000, 86_400_000),
    heartbeatIntervalMs: int('POWERPLANE_HEARTBEAT_INTERVAL_MS', env.heartbeatIntervalMs, 1_000, 50, 600_000),
    modbusTimeoutMs: int('POWERPLANE_MODBUS_TIMEOUT_MS', env.modbusTimeoutMs, 1_000, 50, 60_000),
  });
  const auth = toAuthConfig(env);
  return Object.freeze({ host, port, database: Object.freeze(database), logLevel, limits, tls, healthProbeIntervalMs, telemetry, dispatch, auth });
}

const JWT_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'HS256', 'HS384', 'HS512'];

function toAuthConfig(env: Env): AuthConfig {
  const mode = env.auth ?? 'on';
  if (mode !== 'on' && mode !== 'off') throw new InvalidArgumentError('POWERPLANE_AUTH', mode, 'must be on or off');
  const dataDir = env.dataDir ?? './.powerplane';
  let jwt: JwtConfig | undefined;
  if (env.jwtKeyFile) {
    if (!env.jwtIssuer) throw new InvalidArgumentError('POWERPLANE_JWT_ISSUER', env.jwtIssuer, 'is required with POWERPLANE_JWT_KEY_FILE');
    if (!env.jwtAudience) throw new InvalidArgumentError('POWERPLANE_JWT_AUDIENCE', env.jwtAudience, 'is required with POWERPLANE_JWT_KEY_FILE');
    const algorithms = (env.jwtAlgorithms ?? 'RS256 ES256 EdDSA').split(/[\s,]+/).filter(Boolean);
    for (const alg of algorithms) {
      if (!JWT_ALGORITHMS.includes(alg)) throw new InvalidArgumentError('POWERPLANE_JWT_ALGORITHMS', alg, `must list only ${JWT_ALGORITHMS.join(' ')}`);
    }
    jwt = Object.freeze({ issuer: env.jwtIssuer, audience: env.jwtAudience, keyFile: path.resolve(env.jwtKeyFile), algorithms: Object.freeze(algorithms) });
  }
  return Object.freeze({
    enabled: mode === 'on',
    adminTokenFile: dataDir.startsWith('memory://') ? undefined : path.resolve(dataDir, 'admin.token'),
    jwt,
    tokenCacheMs: int('POWERPLANE_TOKEN_CACHE_MS', env.tokenCacheMs, 5_000, 0, 600_000),
  });
}

function toTlsConfig(env: Env): TlsConfig | undefined {
  if (!env.tlsCert && !env.tlsKey) {
    if (env.tlsClientCa) throw new InvalidArgumentError('POWERPLANE_TLS_CLIENT_CA', env.tlsClientCa, 'needs POWERPLANE_TLS_CERT and POWERPLANE_TLS_KEY');
    if (env.tlsClientAuth) throw new InvalidArgumentError('POWERPLANE_TLS_CLIENT_AUTH', env.tlsClientAuth, 'needs POWERPLANE_TLS_CERT and POWERPLANE_TLS_KEY');
    return undefined;
  }
  if (!env.tlsCert) throw new InvalidArgumentError('POWERPLANE_TLS_CERT', env.tlsCert, 'is required with POWERPLANE_TLS_KEY');
  if (!env.tlsKey) throw new InvalidArgumentError('POWERPLANE_TLS_KEY', env.tlsKey, 'is required with POWERPLANE_TLS_CERT');
  const clientAuth = env.tlsClientAuth || 'optional';
  if (clientAuth !== 'require' && clientAuth !== 'optional') {
    throw new InvalidArgumentError('POWERPLANE_TLS_CLIENT_AUTH', clientAuth, 'must be require or optional');
  }
  if (env.tlsClientAuth && !env.tlsClientCa) {
    throw new InvalidArgumentError('POWERPLANE_TLS_CLIENT_AUTH', env.tlsClientAuth, 'needs POWERPLANE_TLS_CLIENT_CA');
  }
  return Object.freeze({
    certFile: path.resolve(env.tlsCert),
    keyFile: path.resolve(env.tlsKey),
    clientCaFile: env.tlsClientCa ? path.resolve(env.tlsClientCa) : undefined,
    clientAuth,
  });
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
