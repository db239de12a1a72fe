/** What one {@link TokenBuckets.take} decided. */
export type TakeResult = { readonly ok: true } | { readonly ok: false; readonly retryAfterMs: number };

/** A token bucket per key (a principal): `burst` calls at once, refilled at `ratePerS`. */
export interface TokenBuckets {
  /**
   * Takes `cost` tokens (default 1; more than the burst counts as the burst) from `key`'s
   * bucket, or takes none and says how long until that many are there.
   */
  take(key: string, cost?: number): TakeResult;
  /** Whether `key` could take a token now, without taking it (an unknown key can). */
  peek(key: string): TakeResult;
  /** Buckets held now (for tests and metrics). */
  readonly size: number;
}

/** Options of {@link createTokenBuckets}. */
export interface TokenBucketOptions {
  /** Tokens added per second; above 0. */
  readonly ratePerS: number;
  /** Bucket capacity: calls allowed at once after a quiet spell; at least 1. */
  readonly burst: number;
  /** Most buckets kept; past it the least recently used is dropped. Default 10000. */
  readonly maxKeys?: number;
  /** Monotonic clock in ms. Default `performance.now`. */
  readonly now?: () => number;
}

interface Bucket {
  tokens: number;
  at: number;
}

/**
 * Token buckets keyed by caller, with bounded memory. A bucket left alone long enough to
 * refill completely is the same as a new one, so it is dropped: the map is kept in
 * least-recently-used order (a use moves a key to the end) and each call sweeps full
 * buckets off the front, which costs O(1) amortised. `maxKeys` caps the map even if every
 * bucket is busy; the one dropped then is the least recently used, which at worst lets that
 * caller start over with a full burst.
 */
export function createTokenBuckets(options: TokenBucketOptions): TokenBuckets {
  const { ratePerS, burst } = options;
  const maxKeys = options.maxKeys ?? 10_000;
  const now = options.now ?? (() => performance.now());
  const refillMs = (burst / ratePerS) * 1000;
  const buckets = new Map<string, Bucket>();

  const sweep = (t: number) => {
    for (const [key, bucket] of buckets) {
      if (t - bucket.at < refillMs && buckets.size <= maxKeys) break;
      buckets.delete(key);
    }
  };

  return {
    take(key, cost = 1) {
      const need = Math.min(cost, burst);
      const t = now();
      let bucket = buckets.get(key);
      if (bucket) {
        buckets.delete(key);
        bucket.tokens = Math.min(burst, bucket.tokens + ((t - bucket.at) * ratePerS) / 1000);
        bucket.at = t;
      } else {
        bucket = { tokens: burst, at: t };
      }
      buckets.set(key, bucket);
      sweep(t);
      // A hair of tolerance: a caller that waited exactly the advised delay gets its tokens
      // even when floating point lands just under them.
      if (bucket.tokens >= need - 1e-9) {
        bucket.tokens = Math.max(0, bucket.tokens - need);
        return { ok: true };
      }
      return { ok: false, retryAfterMs: Math.ceil(((need - bucket.tokens) * 1000) / ratePerS) };
    },
    peek(key) {
      const bucket = buckets.get(key);
      if (!bucket) return { ok: true };
      const tokens = Math.min(burst, bucket.tokens + ((now() - bucket.at) * ratePerS) / 1000);
      if (tokens >= 1 - 1e-9) return { ok: true };
      return { ok: false, retryAfterMs: Math.ceil(((1 - tokens) * 1000) / ratePerS) };
    },
    get size() {
      return buckets.size;
    },
  };
}
