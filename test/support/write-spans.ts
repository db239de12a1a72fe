/**
 * Who wrote to each simulated battery, and whether two writers ever interleaved.
 *
 * A battery cannot check a fencing token, so the guarantee for direct Modbus is a timing
 * rule: the new owner of a shard waits out the old lease plus the longest write before its
 * first write, and the old owner stops by its own deadline. What the batteries received
 * shows whether the rule held. The simulator logs every write with the client connection it
 * came on; a replica keeps one connection per battery (its setpoint writer's), so the
 * writes of one connection to one battery are one writer's, and the log's order is the
 * order the battery saw them in.
 *
 * **The rule.** A battery is *written by two epochs interleaved* when, after the first write
 * on a newer connection from another replica, an older connection writes to it again. In
 * spans: connections A and B wrote to the battery, A's first write came before B's first
 * write, A and B belong to different replicas, and A's last write came after B's first
 * write. A clean hand-over (the old writer's last write before the new writer's first) is
 * not one, nor is a replica that reconnects (its old connection is closed and writes no
 * more; if it did, both connections are the same replica's). A connection whose replica is
 * unknown (opened and closed between two looks at the replicas' sockets) counts as a
 * writer of its own, so an unknown connection can only make the count higher, never hide
 * an interleaving.
 */
import type { WriteLogEntry } from '../../src/simulator/simulator.ts';

/** One client connection's writes to one battery: from its first to its last, in log order. */
export interface WriteSpan {
  /** The battery, `port/unitId` on the simulator. */
  readonly battery: string;
  /** The simulator's id of the client connection (unique per simulator process). */
  readonly connection: number;
  /** The client's TCP port on that connection: how the connection is traced to a process. */
  readonly remotePort: number;
  /** Position of the first and the last write in the simulator's log (one counter per simulator process). */
  readonly firstSeq: number;
  readonly lastSeq: number;
  /** Wall-clock ms of the first and the last write. */
  readonly firstMs: number;
  readonly lastMs: number;
  /** Writes on this connection to this battery. */
  readonly writes: number;
}

/** The key of a battery in spans: `port/unitId`. */
export const batteryKey = (endpoint: { port: number; unitId: number }): string => `${endpoint.port}/${endpoint.unitId}`;

/**
 * Accumulates write log entries into spans, one per (battery, connection). `add` takes each
 * entry with its position in the log; spans grow in place, so a long run keeps one small
 * record per battery and connection instead of every write.
 */
export function createSpanCollector(): { add(entry: WriteLogEntry, seq: number): void; spans(): WriteSpan[] } {
  const spans = new Map<string, { -readonly [K in keyof WriteSpan]: WriteSpan[K] }>();
  return {
    add(entry, seq) {
      const battery = `${entry.port}/${entry.unitId}`;
      const key = `${battery}|${entry.connection}`;
      const t = entry.time.getTime();
      const span = spans.get(key);
      if (span) {
        span.lastSeq = seq;
        span.lastMs = t;
        span.writes++;
        return;
      }
      spans.set(key, {
        battery,
        connection: entry.connection,
        remotePort: entry.remotePort,
        firstSeq: seq,
        lastSeq: seq,
        firstMs: t,
        lastMs: t,
        writes: 1,
      });
    },
    spans: () => [...spans.values()].map((s) => ({ ...s })),
  };
}

/** The spans of a whole write log, each entry's position being its index. */
export function spansOf(log: readonly WriteLogEntry[]): WriteSpan[] {
  const collector = createSpanCollector();
  log.forEach((entry, i) => collector.add(entry, i));
  return collector.spans();
}

/** One interleaving found: the battery, the older and the newer writer. */
export interface Interleaving {
  readonly battery: string;
  readonly older: WriteSpan;
  readonly newer: WriteSpan;
  readonly olderWriter: string;
  readonly newerWriter: string;
}

/**
 * Every battery written by two epochs interleaved (see the rule above), with the first
 * pair of connections that shows it. `writerOf` names the replica a span's connection
 * belongs to, or undefined when unknown.
 */
export function interleavings(spans: readonly WriteSpan[], writerOf: (span: WriteSpan) => string | undefined): Interleaving[] {
  const byBattery = new Map<string, WriteSpan[]>();
  for (const span of spans) {
    const list = byBattery.get(span.battery);
    if (list) list.push(span);
    else byBattery.set(span.battery, [span]);
  }
  const found: Interleaving[] = [];
  for (const [battery, list] of byBattery) {
    const ordered = [...list].sort((a, b) => a.firstSeq - b.firstSeq);
    const writer = (s: WriteSpan) => writerOf(s) ?? `connection ${s.connection}`;
    search: for (let j = 1; j < ordered.length; j++) {
      const newer = ordered[j]!;
      for (let i = 0; i < j; i++) {
        const older = ordered[i]!;
        if (older.lastSeq > newer.firstSeq && writer(older) !== writer(newer)) {
          found.push({ battery, older, newer, olderWriter: writer(older), newerWriter: writer(newer) });
          break search;
        }
      }
    }
  }
  return found;
}
