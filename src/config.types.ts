/**
 * The shape of a checked configuration: what `toConfig()` in `config.ts` returns, group by
 * group, with each value's unit and default. Kept apart from the parsing so the server,
 * the domains and the tests can read what a setting means without the code that checks it;
 * `config.ts` re-exports every type, so they are imported from there.
 */

import type { LogFormatSetting } from './logger.ts';

/** Where the database is: a PostgreSQL server, or embedded PGlite in a data directory. */
export type DatabaseConfig = { readonly kind: 'postgres'; readonly url: string } | { readonly kind: 'pglite'; readonly dataDir: string };

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
   * Registry writes (CreateDevice, UpdateDevice, DeactivateDevice, BatchUpsertDevices: one
   * batch is one write) each caller may make per second on average; 0 = off. Default 50.
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
  /**
   * A site's state held in memory by its owner is read whole again once in this many control
   * periods, whatever changes were announced. Default 15 (`POWERPLANE_STATE_REFRESH_PERIODS`, 1–10000).
   */
  readonly stateRefreshPeriods: number;
  /**
   * This replica's id in the lease tables (`POWERPLANE_REPLICA_ID`); undefined: generated at
   * start as `<hostname>-<pid>-<6 hex digits>` (see `cluster/replica-id.ts`), so a restarted
   * process is a new replica.
   */
  readonly replicaId: string | undefined;
  /**
   * How long a lease on shards lasts unless renewed, ms; renewed every third of it. A replica
   * that cannot renew stops writing at two thirds, and another takes over after the whole
   * lease plus `modbusTimeoutMs`. Default 1500 (`POWERPLANE_LEASE_MS`, 300–60000).
   */
  readonly leaseMs: number;
  /**
   * The number of shards sites are spread over, used only by the migration that creates the
   * lease table (afterwards the database's `powerplane.cluster_settings` is the truth).
   * Default 256 (`POWERPLANE_SHARD_COUNT`, 1–4096).
   */
  readonly shardCount: number;
  /**
   * How far ahead of now a dispatch instruction may end, ms: a schedule reaches at most this
   * far, so a mistyped year cannot hold a battery for decades. Default 7 days
   * (`POWERPLANE_MAX_INSTRUCTION_AHEAD_DAYS`, 1–366).
   */
  readonly maxInstructionAheadMs: number;
  /**
   * How far ahead of now a market data point's time may be, ms: day-ahead prices and
   * forecasts, not a far-future value waiting to steer batteries. Default 31 days
   * (`POWERPLANE_MARKETDATA_AHEAD_DAYS`, 1–366).
   */
  readonly marketDataAheadMs: number;
  /**
   * How far back a market data point's time may be, ms: long enough for settlement
   * reconciliation runs (the final one some 14 months after the day) to revise imbalance
   * prices. Default 731 days (`POWERPLANE_MARKETDATA_BEHIND_DAYS`, 1–36600).
   */
  readonly marketDataBehindMs: number;
}

/** Telemetry ingest: what readings are accepted and how much is held in memory at once. */
export interface TelemetryConfig {
  /** How far back a reading's time may be, ms. Default 7 days (`POWERPLANE_BACKFILL_WINDOW_HOURS`, 168). */
  readonly backfillWindowMs: number;
  /** Most readings of all kinds in one batch; a larger batch is refused whole. Default 5000. */
  readonly maxBatchReadings: number;
  /**
   * Readings (of all kinds) each caller may send per second on average, over StreamReadings
   * and WriteReadings together; a batch over it is refused with RESOURCE_EXHAUSTED and the
   * wait (`POWERPLANE_INGEST_READINGS_PER_S`, 0 = off). Default 5000: a site of 500 devices
   * at 2 readings a second uses a fifth of it, and the rest drains an agent's spool after
   * an outage (an hour offline is sent again in about 15 minutes). With authentication off
   * every caller is one principal and shares it.
   */
  readonly ingestReadingsPerS: number;
  /**
   * Readings a caller may send at once after a quiet spell (`POWERPLANE_INGEST_BURST`);
   * at least `maxBatchReadings`, so a full batch can always pass. Default 50000, or
   * `maxBatchReadings` if that is larger.
   */
  readonly ingestBurst: number;
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

/**
 * Days of readings kept per kind (`POWERPLANE_RETENTION_METER_DAYS`, `…_BESS_DAYS`,
 * `…_DATUM_DAYS`, `…_MARKET_DAYS`); an absent kind is kept forever. The same shape as
 * storage's `RetentionDays`, which `migrate` and the retention job take.
 */
export interface RetentionConfig {
  /** Meter readings (`flux.mg_meter_readings`). */
  readonly meter?: number;
  /** Battery readings (`flux.mg_bess_readings`). */
  readonly bess?: number;
  /** Datum stream readings (`powerplane.datum_readings`). */
  readonly datum?: number;
  /** Market data points (`flux.market_data`). */
  readonly market?: number;
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
  /**
   * Failed authentications (a token, JWT or authorization header that is refused) one
   * peer address may make per second on average; past its burst, every call from that
   * address that needs credentials is refused RESOURCE_EXHAUSTED before any lookup, until
   * the bucket refills. 0 turns the limit off. Default 10 (`POWERPLANE_AUTH_FAILURE_RATE_PER_S`).
   */
  readonly failureRatePerS: number;
  /** Failed authentications a peer address may make at once after a quiet spell. Default 100 (`POWERPLANE_AUTH_FAILURE_BURST`). */
  readonly failureBurst: number;
  /**
   * Connections one peer IP address may hold open that have not yet carried an
   * authenticated call; a new connection past it is closed at once. 0 turns the limit
   * off. Default 64 (`POWERPLANE_MAX_UNAUTHENTICATED_CONNECTIONS_PER_IP`).
   */
  readonly maxUnauthenticatedConnectionsPerIp: number;
  /**
   * Whether `/metrics` needs a bearer credential with the `metrics:read` scope (its series
   * name every site). Default on (`POWERPLANE_METRICS_AUTH=on|off`); with authentication
   * off it is public regardless.
   */
  readonly metricsAuth: boolean;
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
  /** How log lines are written (`POWERPLANE_LOG_FORMAT`); `auto` decides by whether stdout is a terminal. Default `auto`. */
  readonly logFormat: LogFormatSetting;
  readonly limits: ServerLimits;
  /** Undefined: cleartext. */
  readonly tls: TlsConfig | undefined;
  /** How often the database is probed for the health service. Default 5 s. */
  readonly healthProbeIntervalMs: number;
  readonly telemetry: TelemetryConfig;
  readonly dispatch: DispatchConfig;
  /** How long readings are kept; empty (the default) keeps them forever. */
  readonly retention: RetentionConfig;
  readonly auth: AuthConfig;
}
