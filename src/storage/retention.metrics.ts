import { Counter, Gauge, type Registry } from 'prom-client';
import type { ReadingKind } from './retention.repository.ts';

/** What the retention job reports to Prometheus. */
export interface RetentionMetrics {
  /** Counts `rows` readings of `kind` deleted. */
  deleted(kind: ReadingKind, rows: number): void;
  /** Records the time of the oldest reading of `kind` kept; undefined when none is. */
  oldest(kind: ReadingKind, time: Date | undefined): void;
  /** Drops every oldest-reading series: a replica that does not run retention reports none. */
  forgetOldest(): void;
}

/**
 * The retention metrics, in `registry` when given (otherwise kept nowhere):
 * `powerplane_retention_deleted_rows_total{kind}` and
 * `powerplane_retention_oldest_reading_timestamp_seconds{kind}` (Unix time of the oldest
 * reading kept, set by the replica that runs retention, after each run, for the kinds
 * with a retention).
 */
export function createRetentionMetrics(registry: Registry | undefined): RetentionMetrics {
  const registers = registry ? [registry] : [];
  const deleted = new Counter({
    name: 'powerplane_retention_deleted_rows_total',
    help: 'Readings deleted because they were older than their retention, by kind (meter, bess, datum, market).',
    labelNames: ['kind'],
    registers,
  });
  const oldest = new Gauge({
    name: 'powerplane_retention_oldest_reading_timestamp_seconds',
    help: 'Unix time of the oldest reading kept, by kind with a retention; reported by the replica that runs retention.',
    labelNames: ['kind'],
    registers,
  });
  return {
    deleted: (kind, rows) => deleted.inc({ kind }, rows),
    oldest(kind, time) {
      if (time) oldest.set({ kind }, time.getTime() / 1_000);
      else oldest.remove({ kind });
    },
    forgetOldest: () => oldest.reset(),
  };
}
