/**
 * The per-caller ingest rate limit: readings per second, over StreamReadings and
 * WriteReadings together, so one agent (or one leaked agent token) cannot fill the disk.
 */
import type { TelemetryConfig } from '../config.ts';
import { createTokenBuckets, type TakeResult } from '../rpc/token-bucket.ts';
import type { RawBatch } from './reading-batch.ts';

/** Decides whether a caller may send a batch of readings now. */
export interface IngestLimiter {
  /** Takes `readings` from `principal`'s budget, or takes nothing and says how long to wait. */
  admit(principal: string, readings: number): TakeResult;
  /** The limit, for the refusal's message. */
  readonly limit: { readonly ratePerS: number; readonly burst: number };
}

/**
 * Creates the limiter of `config` (`ingestReadingsPerS`, `ingestBurst`), or undefined when
 * the rate is 0 (off). A token bucket per principal: `burst` readings at once, refilled at
 * the rate; a batch costs its readings, and a batch refused costs nothing, so a caller that
 * waits the advised delay is admitted then.
 */
export function createIngestLimiter(
  config: Pick<TelemetryConfig, 'ingestReadingsPerS' | 'ingestBurst'>,
  now?: () => number,
): IngestLimiter | undefined {
  if (config.ingestReadingsPerS <= 0) return undefined;
  const limit = { ratePerS: config.ingestReadingsPerS, burst: config.ingestBurst };
  const buckets = createTokenBuckets({ ...limit, ...(now ? { now } : {}) });
  return { admit: (principal, readings) => buckets.take(principal, readings), limit };
}

/** The readings of every kind in a batch, as the limit counts them. */
export function readingsIn(batch: RawBatch): number {
  return batch.meter.count + batch.bess.length + batch.datum.length;
}
