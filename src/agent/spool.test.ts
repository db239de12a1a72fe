import { mkdtemp, open, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openSpool, type Spool } from './spool.ts';

const text = (s: string): Uint8Array => Buffer.from(s);
const str = (b: Uint8Array | undefined): string | undefined => (b ? Buffer.from(b).toString() : undefined);

async function drain(spool: Spool): Promise<Array<[bigint, string]>> {
  const out: Array<[bigint, string]> = [];
  let after = 0n;
  for (let i = 0; i < 10_000; i++) {
    const r = await spool.next(after);
    if (!r) break;
    out.push([r.sequence, str(r.payload)!]);
    after = r.sequence;
  }
  return out;
}

describe('spool', () => {
  let dir: string;
  const opened: Spool[] = [];
  const openIt = async (opts: { maxBytes?: number; segmentBytes?: number } = {}): Promise<Spool> => {
    const s = await openSpool({
      dir,
      maxBytes: opts.maxBytes ?? 1 << 20,
      ...(opts.segmentBytes ? { segmentBytes: opts.segmentBytes } : {}),
    });
    opened.push(s);
    return s;
  };
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'pp-spool-'));
  });
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((s) => s.close()));
    await rm(dir, { recursive: true, force: true });
  });

  it('numbers batches from 1, hands the sequence to the encoder and replays them oldest first', async () => {
    const spool = await openIt();
    for (let i = 0; i < 5; i++) await spool.append((seq) => text(`batch ${seq}`));
    expect(await drain(spool)).toEqual([
      [1n, 'batch 1'],
      [2n, 'batch 2'],
      [3n, 'batch 3'],
      [4n, 'batch 4'],
      [5n, 'batch 5'],
    ]);
    expect(str((await spool.next(3n))?.payload)).toBe('batch 4');
    expect(spool.stats()).toMatchObject({ pendingBatches: 5, nextSequence: 6n });
  });

  it('skips acknowledged batches, acknowledges once, and ignores unknown sequences', async () => {
    const spool = await openIt();
    for (let i = 0; i < 4; i++) await spool.append(() => text(`b${i}`));
    expect(await spool.ack(3n)).toBe(true);
    expect(await spool.ack(1n)).toBe(true);
    expect(await spool.ack(1n)).toBe(false);
    expect(await spool.ack(99n)).toBe(false);
    expect((await drain(spool)).map(([s]) => s)).toEqual([2n, 4n]);
    expect(spool.stats().pendingBatches).toBe(2);
  });

  it('deletes a segment once all its batches are acknowledged, keeping the newest', async () => {
    const spool = await openIt({ segmentBytes: 4096 });
    const payload = Buffer.alloc(1000, 1);
    for (let i = 0; i < 12; i++) await spool.append(() => payload);
    const segments = spool.stats().segments;
    expect(segments).toBeGreaterThanOrEqual(3);
    for (let s = 1n; s <= 12n; s++) await spool.ack(s);
    expect(spool.stats()).toMatchObject({ segments: 1, pendingBatches: 0 });
    expect((await readdir(dir)).filter((n) => n.endsWith('.seg'))).toHaveLength(1);
  });

  it('keeps unacknowledged batches, acks and the next sequence across a restart', async () => {
    const first = await openIt();
    for (let i = 1; i <= 6; i++) await first.append((seq) => text(`b${seq}`));
    await first.ack(1n);
    await first.ack(4n);
    await first.close();
    const second = await openIt();
    expect((await drain(second)).map(([s]) => s)).toEqual([2n, 3n, 5n, 6n]);
    expect(await second.append((seq) => text(`b${seq}`))).toBe(7n);
  });

  it('continues the sequence after a restart even when everything was acknowledged', async () => {
    const first = await openIt({ segmentBytes: 4096 });
    for (let i = 0; i < 10; i++) await first.append(() => Buffer.alloc(900));
    for (let s = 1n; s <= 10n; s++) await first.ack(s);
    await first.close();
    const second = await openIt({ segmentBytes: 4096 });
    expect(second.stats().pendingBatches).toBe(0);
    expect(await second.append(() => text('x'))).toBe(11n);
  });

  it('truncates a torn last record left by a crash mid-write and keeps the records before it', async () => {
    const first = await openIt();
    for (let i = 1; i <= 3; i++) await first.append((seq) => text(`b${seq}`));
    await first.close();
    const [seg] = (await readdir(dir)).filter((n) => n.endsWith('.seg'));
    const file = path.join(dir, seg!);
    const size = (await stat(file)).size;
    // A header announcing 100 bytes, followed by only 5 of them.
    const torn = Buffer.alloc(13);
    torn.writeUInt32LE(100, 0);
    const fh = await open(file, 'a');
    await fh.write(torn);
    await fh.close();

    const second = await openIt();
    expect(second.stats()).toMatchObject({ truncatedRecords: 1, pendingBatches: 3, nextSequence: 4n });
    expect((await stat(file)).size).toBe(size);
    expect(await second.append((seq) => text(`b${seq}`))).toBe(4n);
    await second.close();
    const third = await openIt();
    expect(await drain(third)).toEqual([
      [1n, 'b1'],
      [2n, 'b2'],
      [3n, 'b3'],
      [4n, 'b4'],
    ]);
  });

  it('detects a record whose bytes were corrupted by its CRC and drops it and what follows', async () => {
    const first = await openIt();
    for (let i = 1; i <= 3; i++) await first.append((seq) => text(`batch-${seq}`));
    await first.close();
    const [seg] = (await readdir(dir)).filter((n) => n.endsWith('.seg'));
    const file = path.join(dir, seg!);
    const size = (await stat(file)).size;
    const fh = await open(file, 'r+');
    // The last byte of the last record's payload.
    await fh.write(Buffer.from('X'), 0, 1, size - 1);
    await fh.close();
    const second = await openIt();
    expect(second.stats().truncatedRecords).toBe(1);
    expect((await drain(second)).map(([, p]) => p)).toEqual(['batch-1', 'batch-2']);
  });

  it('recovers a segment file created but cut off before its header was written', async () => {
    const first = await openIt();
    await first.append(() => text('a'));
    await first.close();
    await writeFile(path.join(dir, `${'5'.padStart(20, '0')}.seg`), Buffer.from('PP'));
    const second = await openIt();
    expect(second.stats().truncatedRecords).toBe(1);
    expect(await second.append(() => text('b'))).toBe(5n);
    expect((await drain(second)).map(([s, p]) => `${s}:${p}`)).toEqual(['1:a', '5:b']);
  });

  it('when full, drops the oldest segment, counts its unacknowledged batches and keeps the newest', async () => {
    const spool = await openIt({ maxBytes: 65_536, segmentBytes: 8192 });
    const payload = Buffer.alloc(1000, 7);
    for (let i = 0; i < 200; i++) await spool.append(() => payload);
    const stats = spool.stats();
    expect(stats.bytes).toBeLessThanOrEqual(65_536);
    expect(stats.droppedBatches).toBeGreaterThan(0);
    expect(stats.pendingBatches + stats.droppedBatches).toBe(200);
    const kept = await drain(spool);
    expect(kept[kept.length - 1]![0]).toBe(200n);
    // What is kept is a contiguous run of the newest batches.
    expect(kept[0]![0]).toBe(BigInt(200 - kept.length + 1));
    const files = await readdir(dir);
    let onDisk = 0;
    for (const f of files.filter((n) => n.endsWith('.seg'))) onDisk += (await stat(path.join(dir, f))).size;
    expect(onDisk).toBeLessThanOrEqual(65_536);
  });

  it('refuses a batch that could never fit the bound', async () => {
    const spool = await openIt({ maxBytes: 65_536, segmentBytes: 8192 });
    await expect(spool.append(() => Buffer.alloc(40_000))).rejects.toThrow(RangeError);
    expect(await spool.append(() => text('ok'))).toBe(1n);
  });

  it('tells watchers about appends', async () => {
    const spool = await openIt();
    let calls = 0;
    const unwatch = spool.watch(() => calls++);
    await spool.append(() => text('a'));
    unwatch();
    await spool.append(() => text('b'));
    expect(calls).toBe(1);
  });
});
