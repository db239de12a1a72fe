import { readdir, readFile, readlink } from 'node:fs/promises';
import type { WriteSpan } from './write-spans.ts';

/** A process whose connections to the simulator are traced. */
export interface TracedProcess {
  readonly id: string;
  readonly pid: number;
}

/**
 * Which replica each client connection to the simulator came from. The simulator sees a
 * connection's client port; which process holds a socket with that local port towards a
 * simulator port is read from Linux's `/proc/<pid>/fd` and `/proc/net/tcp{,6}`. Only
 * sockets whose remote port is one of the simulator's count: a replica's database or HTTP
 * sockets may use the same local port at the same time, towards another peer.
 *
 * A port is reused over a long run, so each port keeps runs of (replica, first seen, last
 * seen), and a span is traced to the first run still seen at or after its first write
 * (less a small slack: a writer connects just before it writes). A connection opened and
 * closed between two samples is not traced; the double-write check then counts it as a
 * writer of its own.
 */
export function createConnectionOwners(simulatorPorts: readonly number[]): {
  /** Looks at every process's sockets now. */
  sample(processes: readonly TracedProcess[]): Promise<void>;
  /** The replica id the span's connection belonged to, or undefined when never seen. */
  ownerOf(span: WriteSpan): string | undefined;
} {
  const targets = new Set(simulatorPorts);
  const runs = new Map<number, Array<{ owner: string; from: number; to: number }>>();
  const SLACK_MS = 250;

  return {
    async sample(processes) {
      const at = Date.now();
      const ownerOfInode = new Map<string, string>();
      await Promise.all(
        processes.map(async (p) => {
          const fds = await readdir(`/proc/${p.pid}/fd`).catch(() => [] as string[]);
          await Promise.all(
            fds.map(async (fd) => {
              const match = /^socket:\[(\d+)\]$/.exec(await readlink(`/proc/${p.pid}/fd/${fd}`).catch(() => ''));
              if (match) ownerOfInode.set(match[1]!, p.id);
            }),
          );
        }),
      );
      for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
        const text = await readFile(table, 'utf8').catch(() => '');
        for (const line of text.split('\n').slice(1)) {
          // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
          const fields = line.trim().split(/\s+/);
          if (fields.length <= 9) continue;
          const owner = ownerOfInode.get(fields[9]!);
          if (!owner || !targets.has(parseInt(fields[2]!.split(':')[1]!, 16))) continue;
          const port = parseInt(fields[1]!.split(':')[1]!, 16);
          const list = runs.get(port) ?? [];
          const last = list.at(-1);
          if (last?.owner === owner) last.to = at;
          else list.push({ owner, from: at, to: at });
          runs.set(port, list);
        }
      }
    },
    ownerOf(span) {
      return runs.get(span.remotePort)?.find((run) => run.to >= span.firstMs - SLACK_MS)?.owner;
    },
  };
}
