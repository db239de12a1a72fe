import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** Why a shard's tenure began or ended, the label of `powerplane_shard_epoch_changes_total`. */
export type EpochChange = 'acquired' | 'released' | 'expired' | 'taken';

/** What the lease manager reports to Prometheus. */
export interface LeaseMetrics {
  /** Counts one shard claimed (its epoch incremented) or lost. */
  change(why: EpochChange): void;
  /** Records how long one renewal statement took, in seconds. */
  renewed(seconds: number): void;
}

/**
 * The lease metrics, in `registry` when given (otherwise kept nowhere):
 * `powerplane_shards_owned` (lease rows this replica holds now, those still in their
 * write guard included), `powerplane_shard_epoch_changes_total{why}` and
 * `powerplane_lease_renew_seconds`.
 */
export function createLeaseMetrics(registry: Registry | undefined, owned: () => number): LeaseMetrics {
  const registers = registry ? [registry] : [];
  new Gauge({
    name: 'powerplane_shards_owned',
    help: 'Shards this replica holds a lease on (including those waiting out the write guard).',
    registers,
    collect() {
      this.set(owned());
    },
  });
  const changes = new Counter({
    name: 'powerplane_shard_epoch_changes_total',
    help: 'Shards this replica claimed (acquired) or lost (released, expired, taken).',
    labelNames: ['why'],
    registers,
  });
  const renewals = new Histogram({
    name: 'powerplane_lease_renew_seconds',
    help: 'Time of one lease renewal statement (heartbeat and every owned shard).',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers,
  });
  return {
    change: (why) => changes.inc({ why }),
    renewed: (seconds) => renewals.observe(seconds),
  };
}
