import { Counter, Gauge, type Registry as MetricsRegistry } from 'prom-client';
import type { ReadingKind } from './reading-batch.ts';

/** Ingest's Prometheus metrics. */
export interface TelemetryMetrics {
  /** Counts readings by kind and outcome (stored, duplicate, conflict, rejected). */
  count(kind: ReadingKind, outcome: 'stored' | 'duplicate' | 'conflict' | 'rejected', n: number): void;
  /** Tracks batches being validated or written. */
  readonly batchesInFlight: Gauge;
}

/** Registers ingest's metrics on the server's registry. */
export function createTelemetryMetrics(metricsRegistry: MetricsRegistry): TelemetryMetrics {
  const readings = new Counter({
    name: 'powerplane_telemetry_readings_total',
    help: 'Readings received, by kind and outcome (stored, duplicate, conflict, rejected).',
    labelNames: ['kind', 'outcome'],
    registers: [metricsRegistry],
  });
  const conflicts = new Counter({
    name: 'powerplane_telemetry_conflicts_total',
    help: 'Readings whose (device_id, time) was already stored with other values; not stored.',
    labelNames: ['kind'],
    registers: [metricsRegistry],
  });
  const batchesInFlight = new Gauge({
    name: 'powerplane_telemetry_batches_in_flight',
    help: 'Batches read from clients and not yet acknowledged.',
    registers: [metricsRegistry],
  });
  return {
    count(kind, outcome, n) {
      if (n === 0) return;
      readings.inc({ kind, outcome }, n);
      if (outcome === 'conflict') conflicts.inc({ kind }, n);
    },
    batchesInFlight,
  };
}
