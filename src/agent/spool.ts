/**
 * The agent's on-disk spool: every batch is appended here, durably, before it is sent, and
 * removed only after the control plane has acknowledged it. It survives control-plane
 * outages and agent restarts.
 *
 * Layout: a directory of append-only segment files `<first sequence, 20 digits>.seg`, each
 * an 8-byte magic `PPSPOOL1` followed by records `[u32 LE body length][u32 LE CRC-32 of
 * body][body]`, body = `[u64 LE sequence][payload]`. Beside each segment, `<same>.ack`
 * lists the acknowledged sequences (u64 LE each).
 *
 * Durability: each append is written and `fdatasync`'d before `append` resolves (one fsync
 * per batch; batches are closed by size or delay, so this is a few fsyncs per second).
 * Ack files are not fsync'd: an ack lost in a crash only makes the agent resend that batch
 * once, which the server counts as a duplicate and stores no second time.
 *
 * Recovery: at open every segment is scanned; a record whose length runs past the end of
 * the file or whose CRC does not match (a crash mid-write) ends the segment, which is
 * truncated there and the loss logged. Sequence numbers continue after the highest one
 * found; the newest segment is never deleted, so the next sequence survives restarts even
 * when everything was acknowledged.
 *
 * Size bound: the segment files together never exceed `maxBytes`. When an append would go
 * over, the oldest segments are deleted, acknowledged or not, and their unacknowledged
 * batches are counted in `droppedBatches` and logged as a warning: the newest readings are
 * kept, the oldest are lost.
 */
import { mkdir, open, readdir, readFile, rename, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { crc32 } from 'node:zlib';
import type { Logger } from '../logger.ts';

/** Options of {@link openSpool}. */
export interface SpoolOptions {
  /** Directory of the segment files; created if missing. */
  dir: string;
  /** Bound on the total size of the segment files, bytes; at least 64 KiB. */
  maxBytes: number;
  /** A segment is closed when the next record would take it past this size; default maxBytes/8, at most 16 MiB. */
  segmentBytes?: number;
  log?: Logger;
}

/** One spooled batch. */
export interface SpoolRecord {
  sequence: bigint;
  payload: Uint8Array;
}

/** What the spool holds and has lost. */
export interface SpoolStats {
  segments: number;
  /** Total size of the segment files, bytes. */
  bytes: number;
  /** Batches appended and not yet acknowledged. */
  pendingBatches: number;
  /** Unacknowledged batches deleted by the size bound since open. */
  droppedBatches: number;
  /** Records found torn or corrupt at open and truncated away. */
  truncatedRecords: number;
  /** The sequence the next append gets. */
  nextSequence: bigint;
}

/** An open spool. Operations run one at a time, in call order. */
export interface Spool {
  /**
   * Appends a batch durably and returns its sequence; `encode` receives the sequence and returns
   * the payload. Throws RangeError when the record could never fit (over maxBytes / 2).
   */
  append(encode: (sequence: bigint) => Uint8Array): Promise<bigint>;
  /** The oldest unacknowledged batch whose sequence is above `after` (0n: the oldest of all), or undefined. */
  next(after: bigint): Promise<SpoolRecord | undefined>;
  /**
   * Marks a batch acknowledged; a segment whose batches are all acknowledged is deleted (unless it
   * is the newest). Returns false for a sequence not pending (already acked, dropped, unknown).
   */
  ack(sequence: bigint): Promise<boolean>;
  /** Calls `listener` after every append; returns a function that removes it. */
  watch(listener: () => void): () => void;
  stats(): SpoolStats;
  /** Closes the files; pending batches stay on disk for the next open. Idempotent. */
  close(): Promise<void>;
}

const MAGIC = Buffer.from('PPSPOOL1', 'latin1');
const RECORD_HEADER = 8;
const SEQ_BYTES = 8;

interface Entry {
  sequence: bigint;
  offset: number;
  length: number;
  acked: boolean;
}

interface Segment {
  first: bigint;
  file: string;
  ackFile: string;
  size: number;
  entries: Entry[];
  pending: number;
  reader?: FileHandle;
  acker?: FileHandle;
}

/** Thrown when the spool is used after close. */
export class SpoolClosedError extends Error {
  override readonly name = 'SpoolClosedError';
  constructor() {
    super('spool is closed');
  }
}

const segName = (first: bigint): string => first.toString().padStart(20, '0');

/** Opens (or creates) the spool in `options.dir`, recovering from a crash mid-write. */
export async function openSpool(options: SpoolOptions): Promise<Spool> {
  const { dir, maxBytes, log } = options;
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 65_536) throw new RangeError(`spool maxBytes must be at least 65536 (got ${maxBytes})`);
  const segmentBytes = options.segmentBytes ?? Math.min(16 * 1024 * 1024, Math.floor(maxBytes / 8));
  if (!Number.isSafeInteger(segmentBytes) || segmentBytes < 4096 || segmentBytes > maxBytes / 2)
    throw new RangeError(`spool segmentBytes must be from 4096 to maxBytes / 2 (got ${segmentBytes})`);
  await mkdir(dir, { recursive: true });

  const segments: Segment[] = [];
  let truncatedRecords = 0;
  let droppedBatches = 0;
  let nextSequence = 1n;

  const names = (await readdir(dir)).filter((n) => /^\d{20}\.seg$/.test(n)).sort();
  for (const name of names) {
    const first = BigInt(name.slice(0, 20));
    const file = path.join(dir, name);
    const seg: Segment = { first, file, ackFile: file.replace(/\.seg$/, '.ack'), size: 0, entries: [], pending: 0 };
    const data = await readFile(file);
    if (data.length >= MAGIC.length && !data.subarray(0, MAGIC.length).equals(MAGIC)) {
      log?.error({ segment: name }, 'spool segment has an unknown format; moved aside as .corrupt');
      await rename(file, `${file}.corrupt`);
      continue;
    }
    let offset = MAGIC.length;
    let last = first - 1n;
    while (offset + RECORD_HEADER <= data.length) {
      const bodyLength = data.readUInt32LE(offset);
      const crc = data.readUInt32LE(offset + 4);
      const end = offset + RECORD_HEADER + bodyLength;
      if (bodyLength < SEQ_BYTES || end > data.length) break;
      const body = data.subarray(offset + RECORD_HEADER, end);
      if (crc32(body) !== crc) break;
      const sequence = body.readBigUInt64LE(0);
      if (sequence <= last) break;
      seg.entries.push({ sequence, offset, length: end - offset, acked: false });
      last = sequence;
      offset = end;
    }
    const valid = Math.max(offset, MAGIC.length);
    if (data.length !== valid) {
      truncatedRecords++;
      log?.warn(
        { segment: name, offset: valid, bytesDropped: data.length - valid },
        'spool segment ends in a torn or corrupt record; truncated',
      );
      const fh = await open(file, 'r+');
      try {
        if (data.length < MAGIC.length) await fh.write(MAGIC, 0, MAGIC.length, 0);
        await fh.truncate(valid);
        await fh.datasync();
      } finally {
        await fh.close();
      }
    }
    seg.size = valid;
    const acks = await readFile(seg.ackFile).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return Buffer.alloc(0);
      throw err;
    });
    const acked = new Set<bigint>();
    for (let i = 0; i + 8 <= acks.length; i += 8) acked.add(acks.readBigUInt64LE(i));
    for (const e of seg.entries) e.acked = acked.has(e.sequence);
    seg.pending = seg.entries.filter((e) => !e.acked).length;
    if (last + 1n > nextSequence) nextSequence = last + 1n;
    if (first > nextSequence) nextSequence = first;
    segments.push(seg);
  }
  // Fully acknowledged segments other than the newest are left over from a crash between the last ack and the delete.
  for (const seg of segments.slice(0, -1)) if (seg.pending === 0) await removeSegment(seg);
  for (let i = segments.length - 2; i >= 0; i--) if (segments[i]!.pending === 0) segments.splice(i, 1);

  let writer: FileHandle | undefined;
  const active = (): Segment | undefined => segments[segments.length - 1];
  const createSegment = async (first: bigint): Promise<void> => {
    await writer?.close();
    const file = path.join(dir, `${segName(first)}.seg`);
    const fh = await open(file, 'wx');
    await fh.write(MAGIC, 0, MAGIC.length, 0);
    await fh.datasync();
    await fh.close();
    await syncDir(dir);
    segments.push({ first, file, ackFile: file.replace(/\.seg$/, '.ack'), size: MAGIC.length, entries: [], pending: 0 });
    writer = undefined;
  };
  if (segments.length === 0) await createSegment(nextSequence);
  writer = await open(active()!.file, 'a');
  log?.info({ dir, segments: segments.length, pendingBatches: pendingCount(), nextSequence: nextSequence.toString() }, 'spool opened');

  function pendingCount(): number {
    return segments.reduce((n, s) => n + s.pending, 0);
  }

  async function removeSegment(seg: Segment): Promise<void> {
    await seg.reader?.close();
    await seg.acker?.close();
    delete seg.reader;
    delete seg.acker;
    await unlink(seg.file).catch(ignoreMissing);
    await unlink(seg.ackFile).catch(ignoreMissing);
  }

  const listeners = new Set<() => void>();
  let closed = false;
  let chain: Promise<unknown> = Promise.resolve();
  const exclusive = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = chain.then(() => {
      if (closed) throw new SpoolClosedError();
      return fn();
    });
    chain = run.catch(() => undefined);
    return run;
  };

  const totalBytes = (): number => segments.reduce((n, s) => n + s.size, 0);

  const dropOldest = async (): Promise<void> => {
    const seg = segments.shift()!;
    if (seg.pending > 0) {
      droppedBatches += seg.pending;
      const lost = seg.entries.filter((e) => !e.acked);
      log?.warn(
        {
          segment: path.basename(seg.file),
          droppedBatches: seg.pending,
          fromSequence: lost[0]?.sequence.toString(),
          toSequence: lost[lost.length - 1]?.sequence.toString(),
          totalDroppedBatches: droppedBatches,
        },
        'spool full: dropped the oldest segment with unacknowledged batches',
      );
    }
    await removeSegment(seg);
  };

  const findEntry = (sequence: bigint): { seg: Segment; entry: Entry } | undefined => {
    for (let i = segments.length - 1; i >= 0; i--) {
      const seg = segments[i]!;
      if (sequence < seg.first) continue;
      const idx = lowerBound(seg.entries, sequence);
      const entry = seg.entries[idx];
      return entry && entry.sequence === sequence ? { seg, entry } : undefined;
    }
    return undefined;
  };

  return {
    append(encode) {
      return exclusive(async () => {
        const sequence = nextSequence;
        const payload = encode(sequence);
        const record = Buffer.allocUnsafe(RECORD_HEADER + SEQ_BYTES + payload.length);
        record.writeUInt32LE(SEQ_BYTES + payload.length, 0);
        record.writeBigUInt64LE(sequence, RECORD_HEADER);
        record.set(payload, RECORD_HEADER + SEQ_BYTES);
        record.writeUInt32LE(crc32(record.subarray(RECORD_HEADER)), 4);
        if (record.length + MAGIC.length > maxBytes / 2)
          throw new RangeError(`batch of ${record.length} bytes cannot fit a spool of ${maxBytes} bytes`);
        let seg = active()!;
        if (seg.entries.length > 0 && seg.size + record.length > segmentBytes) {
          const old = seg;
          await createSegment(sequence);
          writer = await open(active()!.file, 'a');
          if (old.pending === 0) {
            segments.splice(segments.indexOf(old), 1);
            await removeSegment(old);
          }
          seg = active()!;
        }
        while (totalBytes() + record.length > maxBytes && segments.length > 1) await dropOldest();
        await writer!.write(record, 0, record.length);
        await writer!.datasync();
        seg.entries.push({ sequence, offset: seg.size, length: record.length, acked: false });
        seg.size += record.length;
        seg.pending++;
        nextSequence = sequence + 1n;
        for (const l of listeners) l();
        return sequence;
      });
    },
    next(after) {
      return exclusive(async () => {
        for (const seg of segments) {
          const lastEntry = seg.entries[seg.entries.length - 1];
          if (seg.pending === 0 || !lastEntry || lastEntry.sequence <= after) continue;
          for (let i = lowerBound(seg.entries, after + 1n); i < seg.entries.length; i++) {
            const e = seg.entries[i]!;
            if (e.acked) continue;
            seg.reader ??= await open(seg.file, 'r');
            const buf = Buffer.allocUnsafe(e.length);
            const { bytesRead } = await seg.reader.read(buf, 0, e.length, e.offset);
            if (bytesRead !== e.length) throw new Error(`spool segment ${seg.file} is shorter than its index`);
            return { sequence: e.sequence, payload: buf.subarray(RECORD_HEADER + SEQ_BYTES) };
          }
        }
        return undefined;
      });
    },
    ack(sequence) {
      return exclusive(async () => {
        const found = findEntry(sequence);
        if (!found || found.entry.acked) return false;
        const { seg, entry } = found;
        entry.acked = true;
        seg.pending--;
        if (seg.pending === 0 && seg !== active()) {
          segments.splice(segments.indexOf(seg), 1);
          await removeSegment(seg);
          return true;
        }
        seg.acker ??= await open(seg.ackFile, 'a');
        const b = Buffer.allocUnsafe(8);
        b.writeBigUInt64LE(sequence, 0);
        await seg.acker.write(b, 0, 8);
        return true;
      });
    },
    watch(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    stats: () => ({
      segments: segments.length,
      bytes: totalBytes(),
      pendingBatches: pendingCount(),
      droppedBatches,
      truncatedRecords,
      nextSequence,
    }),
    async close() {
      if (closed) return;
      await chain;
      closed = true;
      listeners.clear();
      await writer?.close();
      writer = undefined;
      for (const seg of segments) {
        await seg.reader?.close();
        await seg.acker?.close();
        delete seg.reader;
        delete seg.acker;
      }
    },
  };
}

/** Index of the first entry whose sequence is ≥ `sequence`. */
function lowerBound(entries: readonly Entry[], sequence: bigint): number {
  let lo = 0;
  let hi = entries.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (entries[mid]!.sequence < sequence) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function ignoreMissing(err: NodeJS.ErrnoException): void {
  if (err.code !== 'ENOENT') throw err;
}

/** Makes a file creation durable: fsync of the directory (a no-op where directories cannot be opened). */
async function syncDir(dir: string): Promise<void> {
  let fh: FileHandle | undefined;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch {
    // Some platforms cannot fsync a directory; the segment's own fsync is all there is then.
  } finally {
    await fh?.close();
  }
}
