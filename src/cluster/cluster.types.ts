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
