import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { createInterface } from 'node:readline';

const ROOT = path.resolve(import.meta.dirname, '../..');

/** One JSON log line of a child process (pino: `level`, `time`, `msg` and fields). */
export type LogLine = Record<string, unknown> & { msg?: string };

/** `powerplane serve` running as a child process, as an operator would run it. */
export interface ServeProcess {
  readonly pid: number;
  readonly port: number;
  readonly baseUrl: string;
  /** The JSON lines it has logged so far (stdout), oldest first; the last {@link KEPT_LINES}. */
  readonly logs: readonly LogLine[];
  /** Whether the process has exited. */
  exited(): boolean;
  /** Resolves with the first log line (already logged or still to come) matching `match`; rejects after `timeoutMs`. */
  waitForLog(match: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** Kills it with SIGKILL (no cleanup of any kind, like a crash) and waits for the exit. */
  kill(): Promise<void>;
  /** SIGTERM (a graceful stop), then SIGKILL if it has not exited after `graceMs`. Idempotent. */
  stop(graceMs?: number): Promise<void>;
}

/** Log lines kept per process, so a long run (the soak) does not grow without bound. */
export const KEPT_LINES = 10_000;

const running = new Set<ChildProcess>();
// A test that fails half way must not leave servers behind: whatever is still running
// when this worker exits is killed.
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/**
 * Starts `node bin/powerplane.js serve` on 127.0.0.1 port 0 with `env` added to the
 * environment (POWERPLANE_LISTEN, POWERPLANE_LOG_LEVEL=info and POWERPLANE_AUTH=off are
 * set unless `env` says otherwise; DATABASE_URL only if `env` gives it, so without it the
 * child uses PGlite in POWERPLANE_DATA_DIR). `nodeArgs` go to node before the script (flags
 * `NODE_OPTIONS` refuses, such as `--cpu-prof`). Resolves once it logs that it listens.
 */
export async function startServeProcess(
  env: Record<string, string>,
  timeoutMs = 60_000,
  nodeArgs: readonly string[] = [],
): Promise<ServeProcess> {
  const childEnv: NodeJS.ProcessEnv = {
    ...process.env,
    POWERPLANE_LISTEN: '127.0.0.1:0',
    POWERPLANE_LOG_LEVEL: 'info',
    POWERPLANE_AUTH: 'off',
    ...env,
  };
  if (!('DATABASE_URL' in env)) delete childEnv.DATABASE_URL;
  const child = spawn(process.execPath, [...nodeArgs, path.join(ROOT, 'bin/powerplane.js'), 'serve'], {
    cwd: ROOT,
    env: childEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4_000);
  });
  const { logs, waitForLog: waitForLine } = followLogLines(child.stdout!);
  const exit = once(child, 'exit').then(() => running.delete(child));

  const waitForLog = (match: (line: LogLine) => boolean, ms = 30_000): Promise<LogLine> =>
    waitForLine(
      match,
      ms,
      () => `no matching log line from serve (pid ${child.pid}) within ${ms} ms; stderr: ${stderr.trim() || '(empty)'}`,
    );
  const killNow = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exit;
  };

  const listening = await Promise.race([
    waitForLog((line) => typeof line.msg === 'string' && line.msg.startsWith('Powerplane listening on'), timeoutMs),
    exit.then(() => {
      throw new Error(`serve exited with ${child.exitCode ?? child.signalCode} before listening; stderr: ${stderr.trim()}`);
    }),
  ]).catch(async (err: unknown) => {
    await killNow();
    throw err;
  });
  const port = Number(listening.port);
  let stopping: Promise<void> | undefined;
  return {
    pid: child.pid!,
    port,
    baseUrl: `http://127.0.0.1:${port}`,
    logs,
    exited: () => child.exitCode !== null || child.signalCode !== null,
    waitForLog,
    kill: killNow,
    stop(graceMs = 15_000) {
      stopping ??= (async () => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        await exit;
        clearTimeout(timer);
      })();
      return stopping;
    },
  };
}

/**
 * Reads a child's stdout as JSON log lines (a line that is not JSON becomes `{ msg }`),
 * keeping the last {@link KEPT_LINES}; `waitForLog` resolves with the first line, seen or
 * to come, that matches, and rejects with `describe()` after `ms`.
 */
export function followLogLines(stdout: NodeJS.ReadableStream): {
  logs: LogLine[];
  waitForLog(match: (line: LogLine) => boolean, ms: number, describe: () => string): Promise<LogLine>;
} {
  const logs: LogLine[] = [];
  const waiters = new Set<{ match: (line: LogLine) => boolean; resolve: (line: LogLine) => void }>();
  createInterface({ input: stdout }).on('line', (text) => {
    let line: LogLine;
    try {
      line = JSON.parse(text) as LogLine;
    } catch {
      line = { msg: text };
    }
    logs.push(line);
    if (logs.length > KEPT_LINES) logs.splice(0, logs.length - KEPT_LINES);
    for (const waiter of [...waiters]) {
      if (waiter.match(line)) {
        waiters.delete(waiter);
        waiter.resolve(line);
      }
    }
  });
  return {
    logs,
    waitForLog(match, ms, describe) {
      const seen = logs.find(match);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const waiter = {
          match,
          resolve: (line: LogLine) => {
            clearTimeout(timer);
            resolve(line);
          },
        };
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new Error(describe()));
        }, ms);
        waiters.add(waiter);
      });
    },
  };
}
