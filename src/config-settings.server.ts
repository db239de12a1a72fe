/**
 * The settings of how the server is reached and protected: its listener, database and
 * logs, TLS, the server limits, authentication, and the variables of the client commands.
 * Rows of a group keep their order here: `docs/configuration.md` lists them so.
 */
import type { Setting, SettingGroup } from './config-settings.types.ts';

const listener: SettingGroup = 'Listener, database, logs';
const tls: SettingGroup = 'TLS';
const limits: SettingGroup = 'Server limits';
const auth: SettingGroup = 'Authentication';
const client: SettingGroup = 'Client commands';

/** The listener, TLS, server limit, authentication and client command variables, keyed by their names in `Env`. */
export const SERVER_SETTINGS = {
  listen: {
    env: 'POWERPLANE_LISTEN',
    flag: '--listen',
    group: listener,
    default: '`127.0.0.1:50051`',
    range: '`host:port`, port 0–65535 (0 picks a free one); an empty host is 127.0.0.1; IPv6 as `[::1]:50051`',
    meaning:
      'the one port serving gRPC, gRPC-Web, Connect, the operator console, `/healthz` and `/metrics`; ' +
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
    meaning: 'log level; logs go to stdout',
  },
  logFormat: {
    env: 'POWERPLANE_LOG_FORMAT',
    flag: '--log-format',
    group: listener,
    default: '`auto`',
    range: '`auto` `json` `pretty`',
    meaning:
      'how log lines are written: `json` one JSON object a line (for log collectors), `pretty` one readable line ' +
      '(time, level, module, message, fields; coloured on a terminal that has colours), `auto` `pretty` when stdout is ' +
      'a terminal and `json` otherwise. `serve`, `migrate`, `agent` and `demo` follow it',
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
