import type { TelemetryConfig } from '../config.ts';
import { InvalidArgumentError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { DeviceCache } from './device-cache.ts';
import { createSemaphore, type Semaphore } from './flow.ts';
import { zeroCounts, type GroupWriter, type KindCounts } from './group-writer.ts';
import { type BatchOutcome, type RawBatch } from './reading-batch.ts';
import { formatMicros } from '../storage/reading-columns.ts';
import type { TelemetryMetrics } from './telemetry.metrics.ts';
import { validateBatch, type ValidatedBatch, type WritableSites } from './validation.ts';
import { normalizeDeviceId } from '../uuid.ts';

/** Readings ingest: validation, idempotent writes, acknowledgement after commit. */
export interface Ingest {
  /**
   * Validates and commits one batch; resolves with its ack after the commit. Throws
   * INVALID_ARGUMENT for a batch over the size limit, and the database's error when the
   * commit failed (then nothing of the batch is acknowledged). A reading of a device at a
   * site outside `access.sites` (default every site) is rejected like any bad reading.
   */
  writeBatch(batch: RawBatch, access?: IngestAccess): Promise<BatchOutcome>;
  /** Permits for batches in flight across every stream. */
  readonly inFlight: Semaphore;
  /** The limits streams are read with. */
  readonly config: TelemetryConfig;
}

/** Who writes a batch, as far as ingest cares. */
export interface IngestAccess {
  /** The sites whose devices the caller may write readings for; `'*'` for every site. */
  readonly sites: WritableSites;
}

/** Dependencies of {@link createIngest}. */
export interface IngestDeps {
  readonly config: TelemetryConfig;
  readonly devices: DeviceCache;
  readonly writer: GroupWriter;
  readonly metrics: TelemetryMetrics;
  readonly log: Logger;
  /** The clock, ms. Default `Date.now`. */
  readonly now?: () => number;
}

/** Readings may be at most this far ahead of the server's clock (the API's rule). */
export const MAX_AHEAD_MS = 5 * 60_000;

/** Creates the ingest domain. */
export function createIngest(deps: IngestDeps): Ingest {
  const now = deps.now ?? Date.now;
  const { config, metrics, log } = deps;
  return {
    inFlight: createSemaphore(config.maxBatchesInFlight),
    config,
    writeBatch(batch, access = { sites: '*' }) {
      const size = batch.meter.count + batch.bess.length + batch.datum.length;
      if (size > config.maxBatchReadings) {
        return Promise.reject(new InvalidArgumentError('batch', size, `must hold at most ${config.maxBatchReadings} readings`));
      }
      // The batch as sent is read only up to validation; what waits for the commit holds
      // the validated rows alone, so the decoded request goes with the next scavenge
      // instead of being promoted with every batch in flight. (No other closure of this
      // scope outlives the `then`, so none keeps `batch` alive.)
      const sites = access.sites;
      const validated = deps.devices.get(deviceIds(batch)).then((devices) =>
        validateBatch(
          batch,
          devices,
          {
            nowMicros: now() * 1_000,
            backfillMicros: config.backfillWindowMs * 1_000,
            aheadMicros: MAX_AHEAD_MS * 1_000,
          },
          sites,
        ),
      );
      return commit(batch.sequence, validated);
    },
  };

  async function commit(sequence: bigint, validated: Promise<ValidatedBatch>): Promise<BatchOutcome> {
    metrics.batchesInFlight.inc();
    try {
      const valid = await validated;
      for (const r of valid.rejections) metrics.count(r.kind, 'rejected', 1);
      const hasRows = valid.meter.length + valid.bess.length + valid.datum.length > 0;
      const result = hasRows ? await deps.writer.write(valid) : { stored: zeroCounts(), duplicates: zeroCounts(), conflicts: [] };
      const indexOf = { meter: valid.meterIndex, bess: valid.bessIndex, datum: valid.datumIndex };
      for (const conflict of result.conflicts) {
        const sent = conflict.sent;
        log.warn(
          {
            sequence: String(sequence),
            kind: conflict.kind,
            index: indexOf[conflict.kind][conflict.index],
            deviceId: sent.deviceId,
            time: formatMicros(sent.timeMicros),
            sent,
            stored: conflict.stored,
          },
          'reading conflicts with the stored one for its device and time; not stored',
        );
        metrics.count(conflict.kind, 'conflict', 1);
      }
      for (const kind of ['meter', 'bess', 'datum'] as const) {
        metrics.count(kind, 'stored', result.stored[kind]);
        metrics.count(kind, 'duplicate', result.duplicates[kind]);
      }
      return {
        sequence,
        stored: sum(result.stored),
        duplicates: sum(result.duplicates),
        conflicts: result.conflicts.length,
        rejections: valid.rejections,
      };
    } finally {
      metrics.batchesInFlight.dec();
    }
  }
}

/** The distinct device ids a batch names, normalized (ids that are no UUID left out). */
function deviceIds(batch: RawBatch): Set<string> {
  const ids = new Set<string>();
  for (const sent of batch.meter.ids) {
    const id = normalizeDeviceId(sent);
    if (id) ids.add(id);
  }
  for (const list of [batch.bess, batch.datum]) {
    let last: string | undefined;
    for (let i = 0; i < list.length; i++) {
      const raw = list[i]!.deviceId;
      if (raw === last) continue;
      last = raw;
      const id = normalizeDeviceId(raw);
      if (id) ids.add(id);
    }
  }
  return ids;
}

function sum(counts: KindCounts): number {
  return counts.meter + counts.bess + counts.datum;
}
