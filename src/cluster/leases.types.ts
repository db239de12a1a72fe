import type { Kysely } from 'kysely';
import type { Registry } from 'prom-client';
import type { Clock, ClockTimer } from '../clock.ts';
import type { Logger } from '../logger.ts';
import type { ClusterMessage } from './cluster.types.ts';

/** What `createLeaseManager` needs. */
export interface LeaseManagerDeps {
  readonly db: Kysely<object>;
  /** This replica's id (`POWERPLANE_REPLICA_ID`, or `generateReplicaId()`). */
  readonly replicaId: string;
  /** How long a lease lasts unless renewed, ms; renewed every third of it. Default in config: 1500. */
  readonly leaseMs: number;
  /**
   * How long after a previous owner's lease ran out a write of it may still reach a
   * battery: the Modbus request timeout. A new owner of a shard that was not handed over
   * waits out the old lease and this before it writes.
   */
  readonly writeGuardMs: number;
  /** Monotonic time and timers; wall time is always the database's. */
  readonly clock: Clock;
  readonly log: Logger;
  readonly metricsRegistry?: Registry;
  /** Tells the other replicas (`{k:'leases'}` after shards were released, so they claim at once). */
  readonly notify?: (message: ClusterMessage) => Promise<void>;
  /**
   * Renew on a thread of its own, on its own connections to this PostgreSQL URL (see
   * `lease-renewer.ts`), so a busy main thread cannot make a renewal late. Needs `clock`
   * to be the process's `performance.now()` ({@link SYSTEM_CLOCK}). Without it, renewals
   * run on `db` from the main thread's timers.
   */
  readonly renewalThreadUrl?: string;
}

/** Why a shard stopped being this replica's. */
export type LostWhy = 'released' | 'expired' | 'taken';

/** One shard held under one epoch; its deadline is in the shared `LeaseDeadlines`. */
export interface Tenure {
  readonly shard: number;
  readonly epoch: number;
  /** `guard`: claimed, waiting out a previous owner; `writable`: the listener acquired it; `leaving`: being handed over. */
  state: 'guard' | 'writable' | 'leaving';
  /** The listener was told `acquired`, so it must be told `lost`. */
  acquired: boolean;
  guardTimer: ClockTimer | undefined;
}
