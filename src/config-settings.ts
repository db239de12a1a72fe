/**
 * Every environment variable Powerplane reads, in one table: its name, the flag that
 * overrides it, its default, its range and what it means. `readEnv()` reads exactly these,
 * `toConfig()` checks whole numbers against the ranges here, and `npm run docs:config`
 * writes `docs/configuration.md` from this table, so the three never disagree.
 */

/** The sections of the configuration page, in order. */
export const SETTING_GROUPS = [
  'Listener, database, logs',
  'TLS',
  'Server limits',
  'Rate limits (per caller, per replica)',
  'Telemetry ingest',
  'Control loop',
  'Authentication',
  'Client commands',
] as const;

/** A section of the configuration page. */
export type SettingGroup = (typeof SETTING_GROUPS)[number];

/** A whole-number setting: the default and the inclusive range `toConfig` accepts. */
export interface IntRange {
  readonly fallback: number;
  readonly min: number;
  readonly max: number;
}

/** One environment variable. */
export interface Setting {
  /** The variable's name. */
  readonly env: string;
  /** The command-line flag that overrides it, where one does. */
  readonly flag?: string;
  readonly group: SettingGroup;
  /** What it does, for an operator (Markdown). */
  readonly meaning: string;
  /** A whole number: default and range, which `toConfig` enforces. */
  readonly int?: IntRange;
  /** The default in words (Markdown), where it is not `int.fallback` as it stands. */
  readonly default?: string;
  /** The values allowed in words (Markdown), where they are not `int`'s range. */
  readonly range?: string;
}

const listener: SettingGroup = 'Listener, database, logs';
const tls: SettingGroup = 'TLS';
const limits: SettingGroup = 'Server limits';
const rates: SettingGroup = 'Rate limits (per caller, per replica)';
const ingest: SettingGroup = 'Telemetry ingest';
const control: SettingGroup = 'Control loop';
const auth: SettingGroup = 'Authentication';
const client: SettingGroup = 'Client commands';

/** Every variable, keyed by its name in {@link Env}. */
export const SETTINGS = {
  listen: {
    env: 'POWERPLANE_LISTEN',
    flag: '--listen',
    group: listener,
    default: '`127.0.0.1:50051`',
    range: '`host:port`, port 0–65535 (0 picks a free one); an empty host is 127.0.0.1; IPv6 as `[::1]:50051`',
    meaning:
      'the one port serving gRPC, gRPC-Web, Connect, the fleet page, `/healthz` and `/metrics`; ' +
      'also where the client commands (`devices`, `tokens`) look for a server by default',
  },
  databaseUrl: {
    env: 'DATABASE_URL',
    flag: '--database-url',
    group: listener,
    default: 'unset',
    range: 'a `postgres://` or `postgresql://` URL',
    meaning:
      'PostgreSQL to store everything in (`postgres://user:pass@host:5432/db`); unset means embedded PGlite. The password is never logged',
  },
  dataDir: {
    env: 'POWERPLANE_DATA_DIR',
    flag: '--data-dir',
    group: listener,
    default: '`./.powerplane`',
    range: 'a directory (created 0700 if missing), or `memory://…` for a database that keeps nothing',
    meaning:
      "PGlite's data directory, and where the first start writes `admin.token` (also with PostgreSQL); " +
      'client commands look for `admin.token` there',
  },
  logLevel: {
    env: 'POWERPLANE_LOG_LEVEL',
    flag: '--log-level',
    group: listener,
    default: '`info`',
    range: '`fatal` `error` `warn` `info` `debug` `trace` `silent`',
    meaning: 'log level; logs are JSON lines on stdout',
  },
  tlsCert: {
    env: 'POWERPLANE_TLS_CERT',
    group: tls,
    default: 'unset',
    range: 'a PEM certificate chain file; needs `POWERPLANE_TLS_KEY`',
    meaning: 'with the key, the port speaks TLS only ([security](security.md#tls-and-mutual-tls))',
  },
  tlsKey: {
    env: 'POWERPLANE_TLS_KEY',
    group: tls,
    default: 'unset',
    range: 'a PEM private key file matching the certificate; needs `POWERPLANE_TLS_CERT`',
    meaning: "the certificate's private key",
  },
  tlsClientCa: {
    env: 'POWERPLANE_TLS_CLIENT_CA',
    group: tls,
    default: 'unset',
    range: 'a PEM file of CAs; needs the certificate and key',
    meaning: 'the CAs whose client certificates are accepted (mutual TLS)',
  },
  tlsClientAuth: {
    env: 'POWERPLANE_TLS_CLIENT_AUTH',
    group: tls,
    default: '`optional`',
    range: '`require` or `optional`; needs `POWERPLANE_TLS_CLIENT_CA`',
    meaning: '`require` a client certificate at the handshake, or accept one `optional`ly (clients without one send a bearer token)',
  },
  maxMessageBytes: {
    env: 'POWERPLANE_MAX_MESSAGE_BYTES',
    group: limits,
    int: { fallback: 4 * 1024 * 1024, min: 1024, max: 256 * 1024 * 1024 },
    meaning: 'largest request or response message, in bytes; larger ones get `RESOURCE_EXHAUSTED`. Listings end a page at a quarter of it',
  },
  maxTimeoutMs: {
    env: 'POWERPLANE_MAX_TIMEOUT_MS',
    group: limits,
    int: { fallback: 300_000, min: 100, max: 86_400_000 },
    meaning: 'longest deadline a client may ask for; a longer one is refused with `INVALID_ARGUMENT`',
  },
  defaultTimeoutMs: {
    env: 'POWERPLANE_DEFAULT_TIMEOUT_MS',
    group: limits,
    int: { fallback: 30_000, min: 10, max: 86_400_000 },
    range: '10–86400000, at most `POWERPLANE_MAX_TIMEOUT_MS`',
    meaning: 'deadline of a unary call whose client sent none (`DEADLINE_EXCEEDED`); streams have none',
  },
  maxConcurrentStreams: {
    env: 'POWERPLANE_MAX_CONCURRENT_STREAMS',
    group: limits,
    int: { fallback: 100, min: 1, max: 10_000 },
    meaning: 'HTTP/2 concurrent streams per connection',
  },
  keepaliveIntervalMs: {
    env: 'POWERPLANE_KEEPALIVE_INTERVAL_MS',
    group: limits,
    int: { fallback: 30_000, min: 1_000, max: 3_600_000 },
    meaning: 'HTTP/2 PING interval',
  },
  keepaliveTimeoutMs: {
    env: 'POWERPLANE_KEEPALIVE_TIMEOUT_MS',
    group: limits,
    int: { fallback: 10_000, min: 100, max: 600_000 },
    meaning: 'a connection silent this long after a PING is closed',
  },
  headersTimeoutMs: {
    env: 'POWERPLANE_HEADERS_TIMEOUT_MS',
    group: limits,
    int: { fallback: 10_000, min: 100, max: 600_000 },
    meaning:
      "a connection must say its protocol, finish its TLS handshake and complete its first request's headers (HTTP/2: open a stream) " +
      'within this, or it is closed',
  },
  idleTimeoutMs: {
    env: 'POWERPLANE_IDLE_TIMEOUT_MS',
    group: limits,
    int: { fallback: 10_000, min: 100, max: 3_600_000 },
    meaning:
      'an HTTP/1.1 keep-alive connection between requests, or an HTTP/2 connection with no open stream, is closed after this; ' +
      'open streams are never cut by it',
  },
  shutdownGraceMs: {
    env: 'POWERPLANE_SHUTDOWN_GRACE_MS',
    group: limits,
    int: { fallback: 10_000, min: 0, max: 600_000 },
    meaning: 'how long a stop waits for calls in flight',
  },
  healthProbeIntervalMs: {
    env: 'POWERPLANE_HEALTH_PROBE_INTERVAL_MS',
    group: limits,
    int: { fallback: 5_000, min: 100, max: 600_000 },
    meaning: 'database probe interval; health is NOT_SERVING while it fails',
  },
  dispatchRatePerS: {
    env: 'POWERPLANE_DISPATCH_RATE_PER_S',
    group: rates,
    int: { fallback: 10, min: 0, max: 100_000 },
    meaning: 'dispatch writes (`SubmitDispatch`, `CancelDispatch`, `SetControlMode`, `SetSiteConfig`) per second per caller; 0 = no limit',
  },
  dispatchBurst: {
    env: 'POWERPLANE_DISPATCH_BURST',
    group: rates,
    int: { fallback: 200, min: 1, max: 1_000_000 },
    meaning: 'dispatch writes a caller may make at once',
  },
  marketDataRatePerS: {
    env: 'POWERPLANE_MARKETDATA_RATE_PER_S',
    group: rates,
    int: { fallback: 5, min: 0, max: 100_000 },
    meaning: '`PublishMarketData` calls per second per caller; 0 = no limit',
  },
  marketDataBurst: {
    env: 'POWERPLANE_MARKETDATA_BURST',
    group: rates,
    int: { fallback: 50, min: 1, max: 1_000_000 },
    meaning: '`PublishMarketData` calls a caller may make at once',
  },
  registryRatePerS: {
    env: 'POWERPLANE_REGISTRY_RATE_PER_S',
    group: rates,
    int: { fallback: 50, min: 0, max: 100_000 },
    meaning: 'registry writes (`CreateDevice`, `UpdateDevice`, `DeactivateDevice`) per second per caller; 0 = no limit',
  },
  registryBurst: {
    env: 'POWERPLANE_REGISTRY_BURST',
    group: rates,
    int: { fallback: 1_000, min: 1, max: 1_000_000 },
    meaning: 'registry writes a caller may make at once',
  },
  tokensRatePerS: {
    env: 'POWERPLANE_TOKENS_RATE_PER_S',
    group: rates,
    int: { fallback: 50, min: 0, max: 100_000 },
    meaning: '`CreateToken`, `RevokeToken` per second per caller; 0 = no limit',
  },
  tokensBurst: {
    env: 'POWERPLANE_TOKENS_BURST',
    group: rates,
    int: { fallback: 1_000, min: 1, max: 1_000_000 },
    meaning: 'token administration calls a caller may make at once',
  },
  ingestReadingsPerS: {
    env: 'POWERPLANE_INGEST_READINGS_PER_S',
    group: rates,
    int: { fallback: 5_000, min: 0, max: 10_000_000 },
    meaning:
      'readings per second per caller over `StreamReadings` and `WriteReadings` together; ' +
      'a batch over it is refused whole (`RESOURCE_EXHAUSTED` with the wait) and the agent resends it from its spool; 0 = no limit',
  },
  ingestBurst: {
    env: 'POWERPLANE_INGEST_BURST',
    group: rates,
    int: { fallback: 50_000, min: 1, max: 100_000_000 },
    default: '50000, or `POWERPLANE_MAX_BATCH_READINGS` if larger',
    range: '1–100000000, at least `POWERPLANE_MAX_BATCH_READINGS`',
    meaning: 'readings a caller may send at once after a quiet spell',
  },
  backfillWindowHours: {
    env: 'POWERPLANE_BACKFILL_WINDOW_HOURS',
    group: ingest,
    int: { fallback: 168, min: 1, max: 87_600 },
    meaning: 'readings older than this are rejected (`time`); more than 5 minutes ahead always is',
  },
  maxBatchReadings: {
    env: 'POWERPLANE_MAX_BATCH_READINGS',
    group: ingest,
    int: { fallback: 5_000, min: 1, max: 100_000 },
    meaning: 'readings in one batch; a larger batch is refused whole with `INVALID_ARGUMENT`',
  },
  maxBatchesInFlightPerStream: {
    env: 'POWERPLANE_MAX_BATCHES_IN_FLIGHT_PER_STREAM',
    group: ingest,
    int: { fallback: 4, min: 1, max: 1_000 },
    meaning: 'batches one stream may have read and not yet acknowledged (flow control)',
  },
  maxBatchesInFlight: {
    env: 'POWERPLANE_MAX_BATCHES_IN_FLIGHT',
    group: ingest,
    int: { fallback: 64, min: 1, max: 100_000 },
    meaning: 'the same, for all streams together',
  },
  ingestConnections: {
    env: 'POWERPLANE_INGEST_CONNECTIONS',
    group: ingest,
    int: { fallback: 3, min: 1, max: 100 },
    meaning: 'PostgreSQL connections ingest writes with (its own pool, beside the main one)',
  },
  maxGroupReadings: {
    env: 'POWERPLANE_MAX_GROUP_READINGS',
    group: ingest,
    int: { fallback: 20_000, min: 1, max: 1_000_000 },
    meaning: 'most readings committed in one grouped transaction',
  },
  deviceCacheTtlMs: {
    env: 'POWERPLANE_DEVICE_CACHE_TTL_MS',
    group: ingest,
    int: { fallback: 5_000, min: 0, max: 600_000 },
    meaning: 'how long device lookups are cached for reading validation',
  },
  controlPeriodMs: {
    env: 'POWERPLANE_CONTROL_PERIOD_MS',
    group: control,
    int: { fallback: 4_000, min: 100, max: 600_000 },
    meaning: 'how often every site is planned',
  },
  maxTelemetryAgeMs: {
    env: 'POWERPLANE_MAX_TELEMETRY_AGE_MS',
    group: control,
    int: { fallback: 30_000, min: 1_000, max: 86_400_000 },
    meaning: 'battery telemetry older than this holds the battery at its fallback',
  },
  heartbeatIntervalMs: {
    env: 'POWERPLANE_HEARTBEAT_INTERVAL_MS',
    group: control,
    int: { fallback: 1_000, min: 50, max: 600_000 },
    meaning: 'setpoint heartbeat while a battery is dispatched',
  },
  modbusTimeoutMs: {
    env: 'POWERPLANE_MODBUS_TIMEOUT_MS',
    group: control,
    int: { fallback: 1_000, min: 50, max: 60_000 },
    meaning: "one Modbus request's timeout",
  },
  maxInstructionAheadDays: {
    env: 'POWERPLANE_MAX_INSTRUCTION_AHEAD_DAYS',
    group: control,
    int: { fallback: 7, min: 1, max: 366 },
    meaning: 'how far ahead of now a dispatch instruction may end, in days; a later `end_time` is `INVALID_ARGUMENT`',
  },
  marketDataAheadDays: {
    env: 'POWERPLANE_MARKETDATA_AHEAD_DAYS',
    group: control,
    int: { fallback: 31, min: 1, max: 366 },
    meaning: "how far ahead of now a market data point's time may be, in days",
  },
  marketDataBehindDays: {
    env: 'POWERPLANE_MARKETDATA_BEHIND_DAYS',
    group: control,
    int: { fallback: 731, min: 1, max: 36_600 },
    meaning: "how far back a market data point's time may be, in days: long enough for settlement reconciliation runs to revise prices",
  },
  auth: {
    env: 'POWERPLANE_AUTH',
    group: auth,
    default: '`on`',
    range: '`on` or `off`',
    meaning:
      '`on`: every RPC but health and reflection needs a credential; `off`: no checks, for a laboratory only ([security](security.md))',
  },
  tokenCacheMs: {
    env: 'POWERPLANE_TOKEN_CACHE_MS',
    group: auth,
    int: { fallback: 5_000, min: 0, max: 600_000 },
    meaning:
      'how long a verified static token is trusted before it is looked up again (the longest a revocation takes); ' +
      'expiry is checked on every use',
  },
  authFailureRatePerS: {
    env: 'POWERPLANE_AUTH_FAILURE_RATE_PER_S',
    group: auth,
    int: { fallback: 10, min: 0, max: 100_000 },
    meaning:
      'failed authentications one peer address may make per second; past the burst, ' +
      'its calls get `RESOURCE_EXHAUSTED` until the bucket refills; 0 = no limit',
  },
  authFailureBurst: {
    env: 'POWERPLANE_AUTH_FAILURE_BURST',
    group: auth,
    int: { fallback: 100, min: 1, max: 1_000_000 },
    meaning: 'failed authentications a peer address may make at once',
  },
  maxUnauthenticatedConnectionsPerIp: {
    env: 'POWERPLANE_MAX_UNAUTHENTICATED_CONNECTIONS_PER_IP',
    group: auth,
    int: { fallback: 64, min: 0, max: 1_000_000 },
    meaning: 'connections one IP address may hold that have carried no authenticated call; more are closed at accept; 0 = no limit',
  },
  metricsAuth: {
    env: 'POWERPLANE_METRICS_AUTH',
    group: auth,
    default: '`on`',
    range: '`on` or `off`',
    meaning: '`on`: `/metrics` needs a credential with the `metrics:read` scope; `off`: public',
  },
  jwtKeyFile: {
    env: 'POWERPLANE_JWT_KEY_FILE',
    group: auth,
    default: 'unset',
    range: 'a PEM public key, a JWKS JSON file, or (HS* only) a shared secret file; needs issuer and audience',
    meaning: 'set to accept JWTs',
  },
  jwtIssuer: {
    env: 'POWERPLANE_JWT_ISSUER',
    group: auth,
    default: 'unset',
    range: 'required with the key file',
    meaning: 'required `iss`',
  },
  jwtAudience: {
    env: 'POWERPLANE_JWT_AUDIENCE',
    group: auth,
    default: 'unset',
    range: 'required with the key file',
    meaning: 'required `aud`',
  },
  jwtAlgorithms: {
    env: 'POWERPLANE_JWT_ALGORITHMS',
    group: auth,
    default: '`RS256 ES256 EdDSA`',
    range:
      'separated by spaces or commas, from `RS256` `RS384` `RS512` `PS256` `PS384` `PS512` `ES256` `ES384` `ES512` ' +
      '`EdDSA` `HS256` `HS384` `HS512`; never `none`',
    meaning: 'accepted `alg` values',
  },
  token: {
    env: 'POWERPLANE_TOKEN',
    flag: '--token',
    group: client,
    default: 'unset',
    range: 'a token',
    meaning:
      'bearer token the client commands (`devices`, `tokens`) send; ' +
      'without it they use `<data dir>/admin.token` for a server on this machine. `serve` does not read it',
  },
} as const satisfies Record<string, Setting>;

/** The environment variables Powerplane reads, by their names in {@link SETTINGS}; unset ones are undefined. */
export type Env = { readonly [K in keyof typeof SETTINGS]?: string };

/** The key of a whole-number setting. */
export type IntSettingKey = {
  [K in keyof typeof SETTINGS]: (typeof SETTINGS)[K] extends { int: IntRange } ? K : never;
}[keyof typeof SETTINGS];
