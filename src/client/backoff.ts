/**
 * How long the client waits before sending a refused call again: exponential backoff with
 * full jitter, unless the server said how long with a `google.rpc.RetryInfo` detail.
 */
import type { ConnectError } from '@connectrpc/connect';
import { RetryInfoSchema } from '../../gen/google/rpc/error_details_pb.ts';

/** The backoff ceiling of the first retry, ms; it doubles with each further failure. */
export const INITIAL_BACKOFF_MS = 100;

/** The largest backoff ceiling, ms. */
export const MAX_BACKOFF_MS = 2_000;

/** The longest wait a RetryInfo may ask for, ms: a larger one (a bad server clock, a bug) is cut to this. */
export const MAX_RETRY_INFO_MS = 5 * 60_000;

/**
 * The wait before the next attempt after `failures` failed attempts (1 or more): a uniform
 * draw of `random()` (in [0, 1)) times min({@link MAX_BACKOFF_MS},
 * {@link INITIAL_BACKOFF_MS} × 2^(failures − 1)), "full jitter", so callers refused
 * together do not come back together.
 */
export function backoffDelayMs(failures: number, random: () => number): number {
  const ceiling = Math.min(MAX_BACKOFF_MS, INITIAL_BACKOFF_MS * 2 ** Math.max(0, failures - 1));
  return Math.floor(random() * ceiling);
}

/**
 * The wait a server asked for in a `google.rpc.RetryInfo` detail of `err`, ms, at most
 * {@link MAX_RETRY_INFO_MS}; undefined when it sent none. connect-es reads the detail from
 * `grpc-status-details-bin` in gRPC and from the error's `details` in Connect.
 */
export function retryInfoDelayMs(err: ConnectError): number | undefined {
  let delay;
  try {
    delay = err.findDetails(RetryInfoSchema)[0]?.retryDelay;
  } catch {
    // A detail that does not decode says nothing usable: fall back to the backoff.
    return undefined;
  }
  if (!delay) return undefined;
  const ms = Number(delay.seconds) * 1_000 + Math.ceil(delay.nanos / 1e6);
  return Number.isFinite(ms) ? Math.min(MAX_RETRY_INFO_MS, Math.max(0, ms)) : undefined;
}
