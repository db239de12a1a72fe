import type { Kysely, Transaction } from 'kysely';

/**
 * What replicas of one fleet tell each other, and the fence every controller write carries.
 * Replicas share one PostgreSQL: shards are leased in `powerplane.shard_leases` and
 * messages travel on one `LISTEN/NOTIFY` channel, {@link CLUSTER_CHANNEL}.
 */

/** The one notification channel of the fleet's replicas. */
export const CLUSTER_CHANNEL = 'powerplane';

/**
 * The lease a controller write is made under: the writing replica, the shard of the site
 * written, and the shard's epoch when the replica took it. A write whose fence no longer
 * matches the shard's lease row is refused by the database (see `fence.ts`).
 */
export interface Fence {
  readonly replica: string;
  readonly shard: number;
  readonly epoch: number;
}

/** Why a site's owner should plan it now. */
export type ChangeReason = 'instruction' | 'override' | 'config' | 'registry';

/**
 * One message between replicas. `from` is the sending replica's id; a replica acting on
 * its own change has already done so and ignores its own message. `to`, when present,
 * addresses one replica; the others ignore it. A payload stays well under PostgreSQL's
 * 8000-byte NOTIFY limit.
 */
export type ClusterMessage =
  /** A site's instructions, overrides, settings or batteries changed: its owner plans it at once. */
  | { readonly k: 'change'; readonly from: string; readonly site: string; readonly reason: ChangeReason }
  /** Market data was published: owners plan their sites that follow market signals. */
  | { readonly k: 'market'; readonly from: string }
  /** Leases were released (a graceful stop or a rebalance): claim now rather than at the next renewal. */
  | { readonly k: 'leases'; readonly from: string }
  /** `from` appended setpoint events `min`..`max` (ids of `powerplane.setpoint_events`, its own rows among them). */
  | { readonly k: 'events'; readonly from: string; readonly min: number; readonly max: number }
  /** Agent streams opened or closed on `from` (`powerplane.agent_streams`). */
  | { readonly k: 'streams'; readonly from: string }
  /** A relayed setpoint for the agent stream of `site` that replica `to` holds. */
  | {
      readonly k: 'relay';
      readonly from: string;
      readonly to: string;
      readonly site: string;
      readonly setpointId: string;
      readonly deviceId: string;
      readonly targetPowerKw: number;
      readonly release: boolean;
      /** ms since the Unix epoch. */
      readonly expireAt: number;
      readonly epoch: number;
    }
  /** The agent's outcome of a relayed setpoint, back to the replica that sent it. */
  | {
      readonly k: 'relay-outcome';
      readonly from: string;
      readonly to: string;
      readonly setpointId: string;
      readonly verified: boolean;
      readonly reason: string;
    };

/** What the owner of shards does when one becomes, or stops being, this replica's to write. */
export interface LeaseListener {
  /** The shard is this replica's to write from now on (any guard wait is over). */
  acquired(shard: number, epoch: number): void;
  /** Stop writing the shard's batteries now; resolves once nothing more will be written. */
  lost(shard: number, epoch: number, why: 'released' | 'expired' | 'taken'): Promise<void>;
}

/** This replica's leases on shards (see `leases.ts`). */
export interface LeaseManager {
  readonly replicaId: string;
  /** The number of shards; known once {@link start} resolved. */
  readonly shardCount: number;
  /** The fence of a shard this replica may write now; undefined when not held, not yet writable or no longer. */
  fence(shard: number): Fence | undefined;
  /** The shards writable now. */
  writableShards(): number[];
  /** Joins the replicas, claims a fair share and keeps renewing until {@link stop}. */
  start(listener: LeaseListener): Promise<void>;
  /** Graceful hand-over: every shard lost ('released'), rows released, others told. Idempotent. */
  stop(): Promise<void>;
  /** Claims now rather than at the next renewal (leases were released elsewhere). */
  claimSoon(): void;
}

/** Messages between the replicas of one database (see `notifications.ts`). */
export interface Notifications {
  /** Hands every message for this replica to `handler`; returns the unsubscribe. */
  subscribe(handler: (message: ClusterMessage) => void): () => void;
  /** Calls `handler` after the listening connection was re-established: messages may have been missed. */
  onResync(handler: () => void): () => void;
  /** Sends `message`, on `executor` when given (delivered after its transaction commits). */
  notify(message: ClusterMessage, executor?: Kysely<object> | Transaction<object>): Promise<void>;
  /** Stops listening. Idempotent. */
  close(): Promise<void>;
}
