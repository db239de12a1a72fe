import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { createInterface } from 'node:readline';

const ROOT = path.resolve(import.meta.dirname, '../..');

/**
 * Starts `bench/support/serve.ts` in its own process (so the benchmark's clients and the
 * server do not share an event loop), configured by `env` like `powerplane serve`; resolves
 * with its port once it listens (and, with `BENCH_WAIT_FOR_CONTROL=1`, runs the control
 * loop). `BENCH_SERVER_NODE_ARGS` adds node flags to it, e.g. `--cpu-prof`.
 */
export async function startServerProcess(env: Record<string, string>): Promise<{ port: number; child: ChildProcess }> {
  const extra = (process.env.BENCH_SERVER_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...extra, '--import', 'tsx', path.join(ROOT, 'bench/support/serve.ts')], {
    cwd: ROOT,
    env: { ...process.env, POWERPLANE_LISTEN: '127.0.0.1:0', POWERPLANE_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout! });
  for await (const line of lines) {
    if (line.startsWith('{"port"')) return { port: (JSON.parse(line) as { port: number }).port, child };
    process.stderr.write(`${line}\n`);
  }
  throw new Error('benchmark server exited before listening');
}

/** Stops a server started by {@link startServerProcess} and waits for it to exit. */
export async function stopServerProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  child.kill('SIGTERM');
  await once(child, 'exit');
}
