import type { Registry as MetricsRegistry } from 'prom-client';
import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import type { Database } from '../storage/database.ts';
import { createDeviceCache } from './device-cache.ts';
import { createGroupWriter } from './group-writer.ts';
import { createIngest, type Ingest } from './ingest.ts';
import { createTelemetryMetrics } from './telemetry.metrics.ts';
import { createWriteSessions, findDeviceFacts, type WriteSessions } from './telemetry.repository.ts';

/** The telemetry domain as the server holds it. */
export interface Telemetry {
  readonly ingest: Ingest;
  /** Closes ingest's own connections; call after the listener drained. */
  close(): Promise<void>;
}

/** Dependencies of {@link createTelemetry}. */
export interface TelemetryDeps {
  readonly config: Config;
  readonly database: Database;
  readonly metricsRegistry: MetricsRegistry;
  readonly log: Logger;
  /** Replaces the connections ingest writes with (tests wrap them to slow the database). */
  readonly sessions?: WriteSessions;
}

/** Builds ingest: device cache, group-commit writer over its own connections, metrics. */
export function createTelemetry(deps: TelemetryDeps): Telemetry {
  const { config, database, log } = deps;
  const url = config.database.kind === 'postgres' ? config.database.url : undefined;
  const sessions = deps.sessions ?? createWriteSessions(database, url, config.telemetry.ingestConnections, log);
  const writer = createGroupWriter({
    sessions,
    workers: database.kind === 'pglite' ? 1 : config.telemetry.ingestConnections,
    maxGroupReadings: config.telemetry.maxGroupReadings,
    log,
  });
  const devices = createDeviceCache({ lookup: (ids) => findDeviceFacts(database, ids), ttlMs: config.telemetry.deviceCacheTtlMs });
  const ingest = createIngest({ config: config.telemetry, devices, writer, metrics: createTelemetryMetrics(deps.metricsRegistry), log });
  return { ingest, close: () => sessions.close() };
}
