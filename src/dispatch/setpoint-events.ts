import type { CommandSource } from './command-source.ts';

/** A step in a setpoint's life, as the API names it. */
export type SetpointPhaseName = 'PLANNED' | 'WRITTEN' | 'VERIFIED' | 'FAILED' | 'EXPIRED';

/** One step of one setpoint. */
export interface SetpointRecord {
  readonly setpointId: string;
  readonly deviceId: string;
  readonly site: string;
  readonly phase: SetpointPhaseName;
  readonly targetPowerKw: number;
  readonly source: CommandSource;
  /** The dispatch instruction the setpoint carries out, if any. */
  readonly instructionId?: string;
  /**
   * Who is behind it: the instruction's submitter or the override's operator; for a
   * setpoint that follows neither, whoever released or cancelled what the battery followed.
   */
  readonly principal?: string;
  readonly reason?: string;
  readonly at: Date;
  /** Time since the setpoint was planned, ms. */
  readonly elapsedMs: number;
  /** The replica that planned the setpoint; stored with the event, so other replicas can find theirs. */
  readonly replica?: string;
  /** The epoch of the site's shard lease the setpoint was planned under. */
  readonly epoch?: number;
  /**
   * The site's shard. With `replica` and `epoch` it is the fence of the event: the event is
   * stored only while that lease still holds (see `cluster/fence.ts`); without all three it
   * is stored unconditionally.
   */
  readonly shard?: number;
}

/** A watcher's view of the bus: an async iterable that ends when its signal aborts. */
export interface SetpointBus {
  publish(record: SetpointRecord): void;
  /**
   * Streams records matching `filter` from now on, in batches of what has queued since the
   * last one (at most `maxBatch`); at most `maxQueued` wait, the oldest dropped beyond that.
   */
  subscribe(
    filter: (r: SetpointRecord) => boolean,
    signal: AbortSignal,
    options?: { maxQueued?: number; maxBatch?: number },
  ): AsyncIterable<SetpointRecord[]>;
  /** Number of current subscribers (for metrics and tests). */
  readonly subscribers: number;
}
