import type { Registry } from 'prom-client';
import type { Clock, ClockTimer } from '../clock.ts';
import { InvalidArgumentError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Database, Session } from './database.ts';
import { createRetentionMetrics } from './retention.metrics.ts';
import {
  deleteExpiredReadings,
  MAX_DELETE_ROWS,
  oldestReading,
  READING_KINDS,
  READING_TABLES,
  type ReadingKind,
} from './retention.repository.ts';
import { checkRetentionDays, type RetentionDays } from './retention.types.ts';
import { hypertableNames } from './timescale.ts';

const DAY_MS = 86_400_000;

/** How the retention job paces itself; every field has a default. */
export interface RetentionJobOptions {
  /** Rows one statement deletes at most, 1–10000. Default 10000. */
  readonly batchRows?: number;
  /**
   * Statements per kind in one run. A run that reaches it leaves the rest for the next
   * run, which then starts at the next check rather than after the interval. Default 100.
   */
  readonly maxBatchesPerRun?: number;
  /** From the end of a run that left nothing behind to the start of the next, ms. Default 10 minutes. */
  readonly intervalMs?: number;
  /** How often the job looks whether it is due and this replica owns shard 0, ms. Default 1000. */
  readonly checkMs?: number;
  /** Least pause after each statement, ms; the pause is at least as long as the statement took. Default 100. */
  readonly pauseMs?: number;
}

/** What {@link startRetentionJob} needs. */
export interface RetentionJobDeps {
  readonly database: Pick<Database, 'withSession'>;
  /** Days kept per kind; a kind without a number is kept forever. */
  readonly retention: RetentionDays;
  /** Whether this replica runs retention now: it may write shard 0 (on PGlite it holds every shard). */
  readonly isOwner: () => boolean;
  /** Monotonic time and the timers of the job's pacing. */
  readonly clock: Clock;
  /** Wall time in ms since the Unix epoch, which cutoffs are counted back from. Default `Date.now`. */
  readonly wallClock?: () => number;
  readonly log: Logger;
  readonly metricsRegistry?: Registry;
  /** The hypertables, whose retention TimescaleDB's policy does. Default {@link hypertableNames}. */
  readonly hypertables?: (session: Session) => Promise<ReadonlySet<string>>;
  readonly options?: RetentionJobOptions;
}

/** What one finished run did. */
export interface RetentionRun {
  /** Readings deleted per kind worked on (hypertables are not). */
  readonly deleted: Readonly<Partial<Record<ReadingKind, number>>>;
  /** Kinds left to TimescaleDB's retention policy: their tables are hypertables. */
  readonly skipped: readonly ReadingKind[];
  /** Kinds that still had readings past their retention when the run reached its bound. */
  readonly backlog: readonly ReadingKind[];
}

/** The running job. */
export interface RetentionJob {
  /** The last finished run; undefined before the first. */
  readonly lastRun: RetentionRun | undefined;
  /** Resolves once the step under way, if any (one statement and the timer of the next step), is done. */
  settled(): Promise<void>;
  /** Stops after the statement under way. Idempotent. */
  stop(): Promise<void>;
}

interface Work {
  readonly kind: ReadingKind;
  readonly olderThan: Date;
  batches: number;
}

interface Run {
  readonly pending: Work[];
  readonly deleted: Partial<Record<ReadingKind, number>>;
  readonly skipped: ReadingKind[];
  readonly backlog: ReadingKind[];
}

/**
 * Deletes readings older than their kind's retention on plain PostgreSQL and PGlite, in the
 * replica that owns shard 0, so that one replica of a fleet does it. Every `checkMs` the job
 * looks whether it owns the shard; when a run is due it works through the kinds one
 * statement at a time: each deletes at most `batchRows` of the oldest readings past the
 * cutoff (wall time minus the kind's days, fixed at the run's start) and is followed by a
 * pause at least as long as the statement took, so ingest keeps most of the database. A
 * kind is done when a statement deletes fewer than `batchRows`, or after
 * `maxBatchesPerRun` statements. After each run the oldest reading kept of every kind with
 * a retention is measured. Tables that are hypertables are left alone: TimescaleDB's
 * retention policy drops their chunks. A replica that loses shard 0 stops between two
 * statements; one that gains it runs at once. A failed statement ends the run, logged,
 * and the next starts after a minute (or the interval, if shorter).
 */
export function startRetentionJob(deps: RetentionJobDeps): RetentionJob {
  const { database, isOwner, clock, log } = deps;
  const wallClock = deps.wallClock ?? Date.now;
  const hypertables = deps.hypertables ?? hypertableNames;
  const options = deps.options ?? {};
  const batchRows = options.batchRows ?? MAX_DELETE_ROWS;
  const maxBatchesPerRun = options.maxBatchesPerRun ?? 100;
  const intervalMs = options.intervalMs ?? 600_000;
  const checkMs = options.checkMs ?? 1_000;
  const pauseMs = options.pauseMs ?? 100;
  if (!Number.isInteger(batchRows) || batchRows < 1 || batchRows > MAX_DELETE_ROWS)
    throw new InvalidArgumentError('batchRows', batchRows, `must be a whole number from 1 to ${MAX_DELETE_ROWS}`);
  if (!Number.isInteger(maxBatchesPerRun) || maxBatchesPerRun < 1)
    throw new InvalidArgumentError('maxBatchesPerRun', maxBatchesPerRun, 'must be a whole number, at least 1');
  checkRetentionDays(deps.retention);
  const kinds = READING_KINDS.filter((kind) => deps.retention[kind] !== undefined);

  const metrics = createRetentionMetrics(deps.metricsRegistry);
  for (const kind of kinds) metrics.deleted(kind, 0);
  const leftToTimescale = new Set<ReadingKind>();
  let run: Run | undefined;
  let lastRun: RetentionRun | undefined;
  let owner = false;
  let dueAt = 0;
  let stopped = false;
  let timer: ClockTimer | undefined;
  let current: Promise<void> | undefined;

  const withSession = <T>(fn: (session: Session) => Promise<T>) => database.withSession(fn);

  function schedule(ms: number): void {
    timer = clock.setTimeout(() => {
      timer = undefined;
      const step = work().finally(() => {
        if (current === step) current = undefined;
      });
      current = step;
    }, ms);
  }

  /** One step: at most one delete statement, then the timer of the next step. */
  async function work(): Promise<void> {
    if (stopped) return;
    let next = checkMs;
    try {
      if (!isOwner()) {
        if (owner) log.info("shard 0 is no longer this replica's: readings retention runs elsewhere");
        owner = false;
        run = undefined;
        metrics.forgetOldest();
      } else {
        if (!owner) {
          owner = true;
          dueAt = clock.now();
          log.info({ retentionDays: deps.retention }, 'this replica owns shard 0: it deletes readings past their retention');
        }
        if (!run && clock.now() >= dueAt) run = await begin();
        if (run) next = await advance(run);
      }
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'readings retention failed; trying again later');
      run = undefined;
      dueAt = clock.now() + Math.min(intervalMs, 60_000);
    }
    if (!stopped) schedule(next);
  }

  async function begin(): Promise<Run> {
    const tables = await withSession(hypertables);
    const started: Run = { pending: [], deleted: {}, skipped: [], backlog: [] };
    const now = wallClock();
    for (const kind of kinds) {
      if (tables.has(READING_TABLES[kind].table)) {
        started.skipped.push(kind);
        if (!leftToTimescale.has(kind))
          log.info({ kind, table: READING_TABLES[kind].table }, "a hypertable: its retention is TimescaleDB's policy");
        leftToTimescale.add(kind);
        continue;
      }
      leftToTimescale.delete(kind);
      started.pending.push({ kind, olderThan: new Date(now - deps.retention[kind]! * DAY_MS), batches: 0 });
      started.deleted[kind] = 0;
    }
    return started;
  }

  /** Deletes one batch of the run's current kind; returns the pause before the next step. */
  async function advance(active: Run): Promise<number> {
    const head = active.pending[0];
    if (!head) return finish(active);
    const startedAt = clock.now();
    const deleted = await withSession((session) => deleteExpiredReadings(session, head.kind, head.olderThan, batchRows));
    const tookMs = clock.now() - startedAt;
    metrics.deleted(head.kind, deleted);
    active.deleted[head.kind] = (active.deleted[head.kind] ?? 0) + deleted;
    head.batches++;
    if (deleted >= batchRows && head.batches >= maxBatchesPerRun) active.backlog.push(head.kind);
    if (deleted < batchRows || head.batches >= maxBatchesPerRun) active.pending.shift();
    if (active.pending.length === 0) return finish(active);
    return Math.max(pauseMs, tookMs);
  }

  async function finish(done: Run): Promise<number> {
    for (const kind of kinds) metrics.oldest(kind, await withSession((session) => oldestReading(session, kind)));
    run = undefined;
    lastRun = { deleted: { ...done.deleted }, skipped: [...done.skipped], backlog: [...done.backlog] };
    dueAt = clock.now() + (done.backlog.length > 0 ? 0 : intervalMs);
    const total = Object.values(done.deleted).reduce((sum, n) => sum + n, 0);
    if (total > 0 || done.backlog.length > 0) log.info(lastRun, 'readings past their retention deleted');
    else log.debug(lastRun, 'no readings past their retention');
    return done.backlog.length > 0 ? pauseMs : checkMs;
  }

  if (kinds.length > 0) schedule(checkMs);
  return {
    get lastRun() {
      return lastRun;
    },
    settled: async () => {
      await current;
    },
    async stop() {
      stopped = true;
      clock.clearTimeout(timer);
      timer = undefined;
      await current;
    },
  };
}
