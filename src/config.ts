import path from 'node:path';
import { InvalidArgumentError } from './errors.ts';
import { isLogFormatSetting, LOG_FORMAT_SETTINGS, LOG_LEVELS, type LogFormatSetting } from './logger.ts';
import { SETTINGS, type Env, type IntSettingKey } from './config-settings.ts';
import type {
  AuthConfig,
  Config,
  DatabaseConfig,
  DispatchConfig,
  JwtConfig,
  RetentionConfig,
  ServerLimits,
  TelemetryConfig,
  TlsConfig,
} from './config.types.ts';

export type { Env } from './config-settings.ts';
export type {
  AuthConfig,
  Config,
  DatabaseConfig,
  DispatchConfig,
  JwtConfig,
  RetentionConfig,
  ServerLimits,
  TelemetryConfig,
  TlsConfig,
} from './config.types.ts';

/**
 * Reads the process environment: exactly the variables of {@link SETTINGS}. It is the only
 * reader of `process.env` in the product, so every setting is visible in one table and
 * tests build configs without touching globals.
 */
export function readEnv(source: NodeJS.ProcessEnv = process.env): Env {
  const env: Record<string, string | undefined> = {};
  for (const [key, setting] of Object.entries(SETTINGS)) env[key] = source[setting.env];
  return env as Env;
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
  const logFormat = parseLogFormat(env.logFormat);
  const limits: ServerLimits = Object.freeze({
    maxMessageBytes: int('maxMessageBytes', env),
    maxTimeoutMs: int('maxTimeoutMs', env),
    maxConcurrentStreams: int('maxConcurrentStreams', env),
    keepaliveIntervalMs: int('keepaliveIntervalMs', env),
    keepaliveTimeoutMs: int('keepaliveTimeoutMs', env),
    headersTimeoutMs: int('headersTimeoutMs', env),
    idleTimeoutMs: int('idleTimeoutMs', env),
    shutdownGraceMs: int('shutdownGraceMs', env),
    defaultTimeoutMs: int('defaultTimeoutMs', env),
    dispatchRatePerS: int('dispatchRatePerS', env),
    dispatchBurst: int('dispatchBurst', env),
    marketDataRatePerS: int('marketDataRatePerS', env),
    marketDataBurst: int('marketDataBurst', env),
    registryRatePerS: int('registryRatePerS', env),
    registryBurst: int('registryBurst', env),
    tokensRatePerS: int('tokensRatePerS', env),
    tokensBurst: int('tokensBurst', env),
  });
  if (limits.defaultTimeoutMs > limits.maxTimeoutMs) {
    throw new InvalidArgumentError(
      'POWERPLANE_DEFAULT_TIMEOUT_MS',
      limits.defaultTimeoutMs,
      `must not be above POWERPLANE_MAX_TIMEOUT_MS (${limits.maxTimeoutMs})`,
    );
  }
  const tls = toTlsConfig(env);
  const healthProbeIntervalMs = int('healthProbeIntervalMs', env);
  const maxBatchReadings = int('maxBatchReadings', env);
  const ingestBurst = int('ingestBurst', env, Math.max(50_000, maxBatchReadings));
  if (ingestBurst < maxBatchReadings) {
    throw new InvalidArgumentError(
      'POWERPLANE_INGEST_BURST',
      ingestBurst,
      `must not be below POWERPLANE_MAX_BATCH_READINGS (${maxBatchReadings}), so a full batch can pass`,
    );
  }
  const telemetry: TelemetryConfig = Object.freeze({
    backfillWindowMs: int('backfillWindowHours', env) * 3_600_000,
    maxBatchReadings,
    ingestReadingsPerS: int('ingestReadingsPerS', env),
    ingestBurst,
    maxBatchesInFlightPerStream: int('maxBatchesInFlightPerStream', env),
    maxBatchesInFlight: int('maxBatchesInFlight', env),
    ingestConnections: int('ingestConnections', env),
    maxGroupReadings: int('maxGroupReadings', env),
    deviceCacheTtlMs: int('deviceCacheTtlMs', env),
  });
  const dispatch: DispatchConfig = Object.freeze({
    controlPeriodMs: int('controlPeriodMs', env),
    maxTelemetryAgeMs: int('maxTelemetryAgeMs', env),
    heartbeatIntervalMs: int('heartbeatIntervalMs', env),
    modbusTimeoutMs: int('modbusTimeoutMs', env),
    stateRefreshPeriods: int('stateRefreshPeriods', env),
    replicaId: replicaId(env.replicaId),
    leaseMs: int('leaseMs', env),
    shardCount: int('shardCount', env),
    maxInstructionAheadMs: int('maxInstructionAheadDays', env) * DAY_MS,
    marketDataAheadMs: int('marketDataAheadDays', env) * DAY_MS,
    marketDataBehindMs: int('marketDataBehindDays', env) * DAY_MS,
  });
  const auth = toAuthConfig(env);
  const retention = toRetentionConfig(env);
  return Object.freeze({
    host,
    port,
    database: Object.freeze(database),
    logLevel,
    logFormat,
    limits,
    tls,
    healthProbeIntervalMs,
    telemetry,
    dispatch,
    retention,
    auth,
  });
}

/** The kinds with a retention; 0 or unset keeps a kind forever, so it is left out. */
function toRetentionConfig(env: Env): RetentionConfig {
  const days = {
    meter: int('retentionMeterDays', env),
    bess: int('retentionBessDays', env),
    datum: int('retentionDatumDays', env),
    market: int('retentionMarketDays', env),
  };
  return Object.freeze(Object.fromEntries(Object.entries(days).filter(([, value]) => value > 0)) as RetentionConfig);
}

/**
 * The value of `POWERPLANE_LOG_FORMAT` (`auto` when unset or empty). Exported for the
 * commands that log without a whole server config (`agent`, `demo`); a bad value names
 * the variable.
 */
export function parseLogFormat(raw: string | undefined): LogFormatSetting {
  if (raw === undefined || raw === '') return 'auto';
  if (!isLogFormatSetting(raw)) {
    throw new InvalidArgumentError('POWERPLANE_LOG_FORMAT', raw, `must be one of ${LOG_FORMAT_SETTINGS.join(' | ')}`);
  }
  return raw as LogFormatSetting;
}

const JWT_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'HS256',
  'HS384',
  'HS512',
];

function toAuthConfig(env: Env): AuthConfig {
  const enabled = onOff('POWERPLANE_AUTH', env.auth, true);
  const dataDir = env.dataDir ?? './.powerplane';
  let jwt: JwtConfig | undefined;
  if (env.jwtKeyFile) {
    if (!env.jwtIssuer) throw new InvalidArgumentError('POWERPLANE_JWT_ISSUER', env.jwtIssuer, 'is required with POWERPLANE_JWT_KEY_FILE');
    if (!env.jwtAudience)
      throw new InvalidArgumentError('POWERPLANE_JWT_AUDIENCE', env.jwtAudience, 'is required with POWERPLANE_JWT_KEY_FILE');
    const algorithms = (env.jwtAlgorithms ?? 'RS256 ES256 EdDSA').split(/[\s,]+/).filter(Boolean);
    for (const alg of algorithms) {
      if (!JWT_ALGORITHMS.includes(alg))
        throw new InvalidArgumentError('POWERPLANE_JWT_ALGORITHMS', alg, `must list only ${JWT_ALGORITHMS.join(' ')}`);
    }
    jwt = Object.freeze({
      issuer: env.jwtIssuer,
      audience: env.jwtAudience,
      keyFile: path.resolve(env.jwtKeyFile),
      algorithms: Object.freeze(algorithms),
    });
  }
  return Object.freeze({
    enabled,
    adminTokenFile: dataDir.startsWith('memory://') ? undefined : path.resolve(dataDir, 'admin.token'),
    jwt,
    tokenCacheMs: int('tokenCacheMs', env),
    failureRatePerS: int('authFailureRatePerS', env),
    failureBurst: int('authFailureBurst', env),
    maxUnauthenticatedConnectionsPerIp: int('maxUnauthenticatedConnectionsPerIp', env),
    metricsAuth: onOff('POWERPLANE_METRICS_AUTH', env.metricsAuth, true),
  });
}

function toTlsConfig(env: Env): TlsConfig | undefined {
  if (!env.tlsCert && !env.tlsKey) {
    if (env.tlsClientCa)
      throw new InvalidArgumentError('POWERPLANE_TLS_CLIENT_CA', env.tlsClientCa, 'needs POWERPLANE_TLS_CERT and POWERPLANE_TLS_KEY');
    if (env.tlsClientAuth)
      throw new InvalidArgumentError('POWERPLANE_TLS_CLIENT_AUTH', env.tlsClientAuth, 'needs POWERPLANE_TLS_CERT and POWERPLANE_TLS_KEY');
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

const DAY_MS = 86_400_000;

/** What a configured replica id may be: it is stored, logged and sent in notifications. */
export const REPLICA_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

function replicaId(raw: string | undefined): string | undefined {
  if (raw === undefined || raw === '') return undefined;
  if (!REPLICA_ID_PATTERN.test(raw)) {
    throw new InvalidArgumentError(
      'POWERPLANE_REPLICA_ID',
      raw,
      'must be 1 to 128 letters, digits, dots, underscores, colons or hyphens, starting with a letter or digit',
    );
  }
  return raw;
}

function onOff(name: string, raw: string | undefined, fallback: boolean): boolean {
  if (raw === undefined || raw === '') return fallback;
  if (raw !== 'on' && raw !== 'off') throw new InvalidArgumentError(name, raw, 'must be on or off');
  return raw === 'on';
}

/**
 * The whole number `key` names, from `env`, checked against its range in {@link SETTINGS};
 * its default when unset or empty (`fallback` replaces the table's where it depends on
 * another setting). A bad value names the variable.
 */
function int(key: IntSettingKey, env: Env, fallback: number = SETTINGS[key].int.fallback): number {
  const raw = env[key];
  if (raw === undefined || raw === '') return fallback;
  const { min, max } = SETTINGS[key].int;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new InvalidArgumentError(SETTINGS[key].env, raw, `must be a whole number from ${min} to ${max}`);
  }
  return value;
}
