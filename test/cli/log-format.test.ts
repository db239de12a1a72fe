import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const BIN = path.resolve(import.meta.dirname, '../../bin/powerplane.js');

/**
 * Runs `powerplane serve` on 127.0.0.1 port 0 in memory with its stdout a pipe, as a log
 * collector reads it; stops it with SIGTERM once it serves, or kills it after 100 s (a
 * start takes long on a loaded machine). Resolves with its stdout, stderr and exit code.
 */
async function serve(env: Record<string, string>): Promise<{ stdout: string; stderr: string; code: number | null }> {
  const childEnv: NodeJS.ProcessEnv = {
    ...process.env,
    POWERPLANE_LISTEN: '127.0.0.1:0',
    POWERPLANE_DATA_DIR: 'memory://',
    POWERPLANE_AUTH: 'off',
    POWERPLANE_LOG_LEVEL: 'info',
    ...env,
  };
  delete childEnv.DATABASE_URL;
  const child = spawn(process.execPath, [BIN, 'serve'], { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = once(child, 'exit');
  const killer = setTimeout(() => child.kill('SIGKILL'), 100_000);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  let stopping = false;
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
    const url = /is serving on (http:\/\/[\d.:]+)/.exec(stderr)?.[1];
    if (!url || stopping) return;
    stopping = true;
    // An answer means the process has gone back to its event loop, so the synchronous code
    // after the line above, which installs the SIGTERM handler, has run.
    void fetch(`${url}/healthz`)
      .catch(() => undefined)
      .then(() => child.kill('SIGTERM'));
  });
  const [code] = (await exited) as [number | null];
  clearTimeout(killer);
  return { stdout, stderr, code };
}

describe('the log lines of powerplane serve', () => {
  it('are JSON lines when stdout is a pipe', async () => {
    const { stdout, stderr, code } = await serve({});
    expect(code, stderr).toBe(0);
    const lines = stdout.trim().split('\n');
    const entries = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(entries.find((e) => typeof e.msg === 'string' && e.msg.startsWith('Powerplane listening on'))).toMatchObject({
      level: 30,
      host: '127.0.0.1',
      service: 'powerplane',
    });
  }, 120_000);

  it('are readable lines with POWERPLANE_LOG_FORMAT=pretty, uncoloured in a pipe, written to the end of a stop by SIGTERM', async () => {
    const { stdout, stderr, code } = await serve({ POWERPLANE_LOG_FORMAT: 'pretty' });
    expect(code, stderr).toBe(0);
    expect(stdout).toMatch(
      /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: Powerplane listening on 127\.0\.0\.1:\d+ host=127\.0\.0\.1 port=\d+ database=pglite$/m,
    );
    expect(stdout).toMatch(/^\[[\d:.]+\] INFO: signal received signal=SIGTERM$/m);
    expect(stdout).toMatch(/^\[[\d:.]+\] INFO: stopped$/m);
    expect(stdout).not.toMatch(/^\{/m);
    expect(stdout).not.toContain('\u001b');
  }, 120_000);
});
