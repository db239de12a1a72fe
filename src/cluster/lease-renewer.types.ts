import type { HeldTenure, LeaseDeadlinesMemory } from './lease-deadlines.ts';
import type { Renewal } from './leases.repository.ts';

/** What the lease renewal thread is started with. */
export interface RenewerData {
  /** PostgreSQL URL of the thread's own connections. */
  readonly url: string;
  readonly replicaId: string;
  readonly leaseMs: number;
  readonly renewEveryMs: number;
  /** From a renewal's sending to the deadline it sets, ms. */
  readonly deadlineMs: number;
  /** Renewals on the way at once, and the thread's connections. */
  readonly maxInFlight: number;
  /** The main thread's clock less `process.hrtime` in ms: the thread reads the same clock. */
  readonly offsetMs: number;
  readonly shardCount: number;
  readonly memory: LeaseDeadlinesMemory;
}

/** What the lease renewal thread tells the main thread. */
export type RenewerReport =
  /** Connected and renewing. */
  | { readonly t: 'ready' }
  /** A renewal succeeded: the deadlines of `renewal.renewed` are already moved. Times are the main thread's clock. */
  | {
      readonly t: 'renewed';
      readonly sentAt: number;
      readonly receivedAt: number;
      readonly tickLateMs: number;
      readonly sent: readonly HeldTenure[];
      readonly renewal: Renewal;
    }
  /** A renewal failed or took longer than the deadline allows. */
  | { readonly t: 'failed'; readonly sentAt: number; readonly receivedAt: number; readonly tickLateMs: number; readonly err: string }
  /** A line for the main thread's log. */
  | { readonly t: 'log'; readonly fields: object; readonly msg: string }
  /** Stopped renewing, its connections closed. */
  | { readonly t: 'stopped' };
