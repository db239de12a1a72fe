/**
 * The settings of what flows through the server and what it does with it: the rate
 * limits per caller, telemetry ingest, the control loop that turns instructions into
 * setpoints, and how long readings are kept. Rows of a group keep their order here: `docs/configuration.md` lists them so.
 */
import type { IntRange, Setting, SettingGroup } from './config-settings.types.ts';

const rates: SettingGroup = 'Rate limits (per caller, per replica)';
const ingest: SettingGroup = 'Telemetry ingest';
const control: SettingGroup = 'Control loop';
const retention: SettingGroup = 'Retention';

/** A kind of reading's retention in days: unset or 0 keeps it forever. */
function retentionDays(env: string, what: string): Setting & { readonly int: IntRange } {
  return {
    env,
    group: retention,
    int: { fallback: 0, min: 0, max: 36_600 },
    default: 'unset: kept forever',
    range: '0–36600 (0 = kept forever)',
    meaning:
      `days ${what} are kept; older ones are deleted: by a TimescaleDB retention policy on a hypertable, otherwise by ` +
      'the replica owning shard 0, oldest first, at most 10000 rows a statement with pauses between them',
  };
}

/** The rate limit, telemetry ingest, control loop and retention variables, keyed by their names in `Env`. */
export const DATA_SETTINGS = {
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
    meaning:
      'registry writes (`CreateDevice`, `UpdateDevice`, `DeactivateDevice`, and `BatchUpsertDevices`, one write whatever its size) ' +
      'per second per caller; 0 = no limit',
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
  stateRefreshPeriods: {
    env: 'POWERPLANE_STATE_REFRESH_PERIODS',
    group: control,
    int: { fallback: 15, min: 1, max: 10_000 },
    meaning:
      "a site's registry rows, settings, overrides, instructions and stored sources, held in memory by its shard's owner and " +
      'read again on every announced change, are also read whole once in this many control periods',
  },
  replicaId: {
    env: 'POWERPLANE_REPLICA_ID',
    group: control,
    default: 'generated at start: `<hostname>-<pid>-<6 hex digits>`',
    range: '1–128 characters: letters, digits, `.` `_` `:` `-`, starting with a letter or digit',
    meaning:
      "this replica's name in `powerplane.replicas` and on the shards it leases (`shard_leases.owner`, " +
      'the `replica` column of setpoint events); two running replicas must never share one',
  },
  leaseMs: {
    env: 'POWERPLANE_LEASE_MS',
    group: control,
    int: { fallback: 1_500, min: 300, max: 60_000 },
    meaning:
      "how long a replica's lease on its shards lasts unless renewed; renewed every third of it. A replica that cannot renew " +
      'stops writing at two thirds; another takes its shards after the lease plus `POWERPLANE_MODBUS_TIMEOUT_MS`',
  },
  shardCount: {
    env: 'POWERPLANE_SHARD_COUNT',
    group: control,
    int: { fallback: 256, min: 1, max: 4_096 },
    meaning:
      'the number of shards sites are spread over; read by `powerplane migrate` (and `serve`) only when it creates the ' +
      'lease table, fixed afterwards. More shards than replicas by far, so each replica gets a fair share',
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
  retentionMeterDays: retentionDays('POWERPLANE_RETENTION_METER_DAYS', 'meter readings (`flux.mg_meter_readings`)'),
  retentionBessDays: retentionDays('POWERPLANE_RETENTION_BESS_DAYS', 'battery readings (`flux.mg_bess_readings`)'),
  retentionDatumDays: retentionDays('POWERPLANE_RETENTION_DATUM_DAYS', 'datum stream readings (`powerplane.datum_readings`)'),
  retentionMarketDays: retentionDays('POWERPLANE_RETENTION_MARKET_DAYS', 'market data points (`flux.market_data`)'),
} as const satisfies Record<string, Setting>;
