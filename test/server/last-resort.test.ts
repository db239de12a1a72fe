import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import http2 from 'node:http2';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { followLogLines, type LogLine } from '../support/serve-process.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const FIXTURE = path.join(ROOT, 'test/fixtures/last-resort-server.ts');

/**
 * The last-resort handler is process-wide (it listens for `uncaughtException`), and the
 * test runner has its own listener that fails the run, so it is tried in a child process:
 * test/fixtures/last-resort-server.ts.
 */
describe('the last-resort handler', () => {
  let child: ChildProcess;
  let exit: Promise<unknown>;
  let logs: readonly LogLine[] = [];
  let waitForLog: (match: (line: LogLine) => boolean) => Promise<LogLine>;
  let h1: number;
  let h2: number;

  beforeAll(async () => {
    child = spawn(process.execPath, ['--import', 'tsx', FIXTURE], { cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit'] });
    exit = once(child, 'exit');
    const followed = followLogLines(child.stdout!);
    logs = followed.logs;
    waitForLog = (match) => followed.waitForLog(match, 30_000, () => 'no matching log line from the fixture within 30 s');
    const ready = await Promise.race([waitForLog((line) => line.msg === 'ready'), exit.then(() => ({ msg: 'exited' }) as LogLine)]);
    expect(ready.msg).toBe('ready');
    h1 = Number(ready.h1);
    h2 = Number(ready.h2);
  });
  afterAll(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exit;
    }
  });

  const alive = () => child.exitCode === null && child.signalCode === null;
  const h2Get = async (urlPath: string): Promise<number | undefined> => {
    const session = http2.connect(`http://127.0.0.1:${h2}`);
    session.on('error', () => undefined);
    try {
      return await new Promise((resolve) => {
        const stream = session.request({ ':path': urlPath });
        let status: number | undefined;
        stream.on('response', (headers) => (status = Number(headers[':status'])));
        stream.on('data', () => undefined);
        stream.on('error', () => undefined);
        stream.on('close', () => resolve(status));
        stream.end();
      });
    } finally {
      session.close();
    }
  };

  it.each([
    ['/timer-throw', 'uncaughtException', 'thrown in a timer the handler started'],
    ['/unhandled-rejection', 'unhandledRejection', 'rejected in a promise nobody handles'],
  ])('answers %s over HTTP/1.1 and HTTP/2 with 500, logs the error, and keeps the process serving', async (urlPath, origin, message) => {
    const res = await fetch(`http://127.0.0.1:${h1}${urlPath}`, { signal: AbortSignal.timeout(10_000) });
    expect(res.status).toBe(500);
    expect(await res.text()).toBe('internal error\n');
    expect(await h2Get(urlPath)).toBe(500);
    // The log reaches this process through a pipe, not necessarily before the answer.
    const logged = await Promise.all(
      ['1.1', '2.0'].map((httpVersion) =>
        waitForLog((line) => line.msg === 'request handler failed' && line.path === urlPath && line.httpVersion === httpVersion),
      ),
    );
    expect(logged.map((line) => ({ level: line.level, origin: line.origin, message: (line.err as { message?: string }).message }))).toEqual(
      [
        { level: 50, origin, message },
        { level: 50, origin, message },
      ],
    );
    expect(alive()).toBe(true);
    expect((await fetch(`http://127.0.0.1:${h1}/ok`)).status).toBe(200);
  });

  it('logs an error raised in a request context after its response was sent, and keeps serving', async () => {
    expect((await fetch(`http://127.0.0.1:${h1}/throw-after-response`)).status).toBe(200);
    const line = await waitForLog((l) => l.path === '/throw-after-response' && l.msg === 'request handler failed');
    expect(line).toMatchObject({ level: 50, origin: 'uncaughtException' });
    expect(alive()).toBe(true);
    expect(await h2Get('/ok')).toBe(200);
  });

  it('still ends the process, with a fatal log line and exit code 1, for an error outside every request', async () => {
    child.stdin!.write('outside\n');
    await exit;
    expect(child.exitCode).toBe(1);
    // The exit came after the line was written; readline may still be handing it over.
    await waitForLog((line) => line.level === 60);
    expect(logs).toContainEqual(
      expect.objectContaining({
        level: 60,
        origin: 'uncaughtException',
        msg: 'uncaught error outside any request: exiting',
        err: expect.objectContaining({ message: 'thrown outside any request' }),
      }),
    );
  });
});
