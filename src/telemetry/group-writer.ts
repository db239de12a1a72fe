import type { Logger } from '../logger.ts';
import { writeDatumRows } from './datum.repository.ts';
import { sameMaps } from '../storage/datum-layout.ts';
import type { BessRow, DatumRow, MeterRow, ReadingKind } from './reading-batch.ts';
import {
  copyRowsDirect,
  ensureStaging,
  writeBessRows,
  writeMeterRows,
  type NotStored,
  type WriteSession,
  type WriteSessions,
} from './telemetry.repository.ts';

/** Valid readings of one batch, to be committed together. */
export interface WriteRequest {
  readonly meter: readonly MeterRow[];
  readonly bess: readonly BessRow[];
  readonly datum: readonly DatumRow[];
}

/** A reading whose key was stored with other values. */
export interface Conflict {
  readonly kind: ReadingKind;
  /** Position in the request's list of that kind. */
  readonly index: number;
  readonly sent: MeterRow | BessRow | DatumRow;
  readonly stored: Record<string, unknown>;
}

/** Counts per kind of reading. */
export type KindCounts = Record<ReadingKind, number>;

/** What committing a request did. */
export interface WriteResult {
  readonly stored: KindCounts;
  readonly duplicates: KindCounts;
  readonly conflicts: readonly Conflict[];
}

/** Commits requests, grouping those that wait into one transaction. */
export interface GroupWriter {
  /** Resolves after the request's transaction committed; rejects when it failed (nothing of it is stored). */
  write(request: WriteRequest): Promise<WriteResult>;
}

/** Options of {@link createGroupWriter}. */
export interface GroupWriterOptions {
  readonly sessions: WriteSessions;
  /** Transactions at once (one connection each). */
  readonly workers: number;
  /** Most readings one transaction takes from the queue (at least one request). */
  readonly maxGroupReadings: number;
  readonly log: Logger;
}

interface Pending {
  readonly request: WriteRequest;
  readonly size: number;
  resolve(result: WriteResult): void;
  reject(err: unknown): void;
}

/** Where a group row came from. */
interface Origin {
  readonly batch: number;
  readonly index: number;
}

/** Per request tallies while a group is written. */
interface Tally {
  stored: KindCounts;
  duplicates: KindCounts;
  conflicts: Conflict[];
}

/**
 * Creates the group-commit writer: up to `workers` transactions run at once; requests
 * arriving while they run queue up and the next free worker commits all of them (up to
 * `maxGroupReadings`) in one transaction, so concurrent streams share commits. The queue
 * itself is bounded by the callers' in-flight limits.
 */
export function createGroupWriter(options: GroupWriterOptions): GroupWriter {
  const queue: Pending[] = [];
  let active = 0;

  const pump = () => {
    while (active < options.workers && queue.length > 0) {
      const group: Pending[] = [queue.shift()!];
      let size = group[0]!.size;
      while (queue.length > 0 && size + queue[0]!.size <= options.maxGroupReadings) {
        const next = queue.shift()!;
        size += next.size;
        group.push(next);
      }
      active++;
      writeGroupWithRetry(
        options.sessions,
        group.map((p) => p.request),
      )
        .then(
          (results) => group.forEach((p, i) => p.resolve(results[i]!)),
          (err: unknown) => {
            options.log.warn(
              { err: (err as Error).message, batches: group.length, readings: size },
              'group write failed; nothing of it acknowledged',
            );
            group.forEach((p) => p.reject(err));
          },
        )
        .finally(() => {
          active--;
          pump();
        });
    }
  };

  return {
    write(request) {
      return new Promise((resolve, reject) => {
        queue.push({ request, size: request.meter.length + request.bess.length + request.datum.length, resolve, reject });
        pump();
      });
    },
  };
}

/** Deadlock and serialization failures: the group is retried whole. */
const RETRYABLE = new Set(['40P01', '40001']);
const UNIQUE_VIOLATION = '23505';

async function writeGroupWithRetry(sessions: WriteSessions, requests: readonly WriteRequest[]): Promise<WriteResult[]> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await sessions.run((session) => writeGroup(session, requests));
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (attempt >= 3 || typeof code !== 'string' || !RETRYABLE.has(code)) throw err;
    }
  }
}

/**
 * Writes every request of a group in one transaction and splits the outcome per request.
 * Where the engine has COPY, the group is first copied straight into the tables (the
 * common case: nothing of it is stored yet); a unique violation rolls that back and the
 * group goes through staging, `on conflict do nothing` and classification instead.
 */
export async function writeGroup(session: WriteSession, requests: readonly WriteRequest[]): Promise<WriteResult[]> {
  const tallies: Tally[] = requests.map(() => ({ stored: zeroCounts(), duplicates: zeroCounts(), conflicts: [] }));
  const meter = gather(requests, (r) => r.meter, deviceStream);
  const bess = gather(requests, (r) => r.bess, deviceStream);
  const datum = gather(requests, (r) => r.datum, datumStream);
  let direct = session.copyIn !== undefined && meter.rows.length + bess.rows.length > 0;
  for (;;) {
    await session.query('begin');
    try {
      let meterMissed: NotStored[] = [];
      let bessMissed: NotStored[] = [];
      if (direct) {
        await copyRowsDirect(session, meter.rows, bess.rows);
      } else {
        await ensureStaging(session);
        meterMissed = await writeMeterRows(session, meter.rows);
        bessMissed = await writeBessRows(session, bess.rows);
      }
      const datumMissed = await writeDatumRows(session, datum.rows);
      await session.query('commit');
      settle('meter', meter, meterMissed, tallies, (a, b) => sameFloats(a.values, b.values));
      settle('bess', bess, bessMissed, tallies, sameBess);
      settle('datum', datum, datumMissed, tallies, sameMaps);
      return tallies;
    } catch (err) {
      await session.query('rollback').catch(() => undefined);
      // Staging tables created in this transaction are gone with it.
      session.staged = false;
      if (direct && (err as { code?: unknown }).code === UNIQUE_VIOLATION) {
        direct = false;
        continue;
      }
      throw err;
    }
  }
}

interface Gathered<R> {
  /** Rows with distinct keys, in arrival order. */
  readonly rows: R[];
  /** Per row of `rows`: the request it came from and its position in that request's list. */
  readonly originBatch: number[];
  readonly originIndex: number[];
  /** Rows whose key repeats an earlier row of the group: that row's position in `rows`. */
  readonly repeats: { origin: Origin; row: R; first: number }[];
}

/**
 * Collects a group's rows of one kind, setting aside repeated keys. Keys are looked up
 * per device (and source id) in a map of times, so no key string is built per row.
 */
function gather<R extends { readonly deviceId: string; readonly timeMicros: number }>(
  requests: readonly WriteRequest[],
  pick: (r: WriteRequest) => readonly R[],
  stream: (row: R) => string,
): Gathered<R> {
  const out: Gathered<R> = { rows: [], originBatch: [], originIndex: [], repeats: [] };
  const seen = new Map<string, Map<number, number>>();
  let lastStream: string | undefined;
  let times: Map<number, number> | undefined;
  for (let batch = 0; batch < requests.length; batch++) {
    const list = pick(requests[batch]!);
    for (let index = 0; index < list.length; index++) {
      const row = list[index]!;
      const s = stream(row);
      if (s !== lastStream || times === undefined) {
        lastStream = s;
        times = seen.get(s);
        if (times === undefined) seen.set(s, (times = new Map()));
      }
      const first = times.get(row.timeMicros);
      if (first === undefined) {
        times.set(row.timeMicros, out.rows.length);
        out.rows.push(row);
        out.originBatch.push(batch);
        out.originIndex.push(index);
      } else {
        out.repeats.push({ origin: { batch, index }, row, first });
      }
    }
  }
  return out;
}

function settle<R extends MeterRow | BessRow | DatumRow>(
  kind: ReadingKind,
  gathered: Gathered<R>,
  missed: readonly NotStored[],
  tallies: Tally[],
  same: (a: R, b: R) => boolean,
): void {
  const { rows, originBatch, originIndex } = gathered;
  if (missed.length === 0) {
    for (let ord = 0; ord < rows.length; ord++) tallies[originBatch[ord]!]!.stored[kind]++;
  } else {
    const outcome = new Map<number, NotStored>();
    for (const m of missed) outcome.set(m.ord, m);
    for (let ord = 0; ord < rows.length; ord++) {
      const tally = tallies[originBatch[ord]!]!;
      const miss = outcome.get(ord);
      if (!miss) tally.stored[kind]++;
      else if (miss.same) tally.duplicates[kind]++;
      else tally.conflicts.push({ kind, index: originIndex[ord]!, sent: rows[ord]!, stored: miss.existing });
    }
  }
  if (gathered.repeats.length === 0) return;
  const outcome = new Map<number, NotStored>();
  for (const m of missed) outcome.set(m.ord, m);
  for (const repeat of gathered.repeats) {
    const tally = tallies[repeat.origin.batch]!;
    const first = rows[repeat.first]!;
    const miss = outcome.get(repeat.first);
    if (same(first, repeat.row) && (!miss || miss.same)) tally.duplicates[kind]++;
    else
      tally.conflicts.push({
        kind,
        index: repeat.origin.index,
        sent: repeat.row,
        stored: miss && !miss.same ? miss.existing : plain(first),
      });
  }
}

/** A row as a plain object (an encoded meter row's values decoded), for logs and conflicts. */
function plain(row: MeterRow | BessRow | DatumRow): Record<string, unknown> {
  return 'values' in row ? { deviceId: row.deviceId, timeMicros: row.timeMicros, values: row.values } : { ...row };
}

/** Zero of every kind. */
export function zeroCounts(): KindCounts {
  return { meter: 0, bess: 0, datum: 0 };
}

/** Compares as the database does: both sides rounded to float4. */
function sameFloats(a: readonly (number | null)[], b: readonly (number | null)[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x === null || y === null ? x !== y : Math.fround(x) !== Math.fround(y)) return false;
  }
  return true;
}

function sameBess(a: BessRow, b: BessRow): boolean {
  return (
    sameFloats([a.soe, a.targetPower], [b.soe, b.targetPower]) &&
    a.availableInverterBlocks === b.availableInverterBlocks &&
    a.commandSource === b.commandSource
  );
}

function deviceStream(row: MeterRow | BessRow): string {
  return row.deviceId;
}

function datumStream(row: DatumRow): string {
  return `${row.deviceId}|${row.sourceId}`;
}
