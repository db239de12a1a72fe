import { readFileSync } from 'node:fs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LISTEN_APPLICATION_NAME, listenPostgres } from '../../src/storage/pg-listener.ts';
import { createPgPool, TCP_KEEPALIVE_IDLE_MS } from '../../src/storage/pg-pool.ts';
import { createTestDatabase, silentLog, type TestDatabase } from '../support/databases.ts';
import { startTcpProxy } from '../support/tcp-proxy.ts';
import { waitFor } from '../support/wait.ts';

/**
 * The kernel's timer on the client end of the connection `port` names: in /proc/net/tcp
 * each socket's `tr:tm->when` is the timer kind (2: keepalive) and the time until it fires
 * in clock ticks (USER_HZ, 100 per second on Linux).
 */
function clientTimer(port: number): { kind: number; ms: number } {
  const local = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  const lines = ['/proc/net/tcp', '/proc/net/tcp6'].flatMap((file) => readFileSync(file, 'utf8').trim().split('\n').slice(1));
  const line = lines.map((l) => l.trim().split(/\s+/)).find((f) => f[1]!.endsWith(local) && f[3] === '01');
  if (!line) throw new Error(`no established socket with local port ${port}`);
  const [kind, when] = line[5]!.split(':') as [string, string];
  return { kind: parseInt(kind, 16), ms: parseInt(when, 16) * 10 };
}

describe('noticing a PostgreSQL connection that went silent', () => {
  let testDb: TestDatabase;
  let url: string;
  beforeAll(async () => {
    testDb = await createTestDatabase('postgres');
    if (testDb.config.kind !== 'postgres') throw new Error('a PostgreSQL database was expected');
    url = testDb.config.url;
  });
  afterAll(() => testDb?.drop());

  /** The client port of the connection to this test's database named `applicationName`, as PostgreSQL sees it. */
  async function clientPort(applicationName: string): Promise<number> {
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    try {
      const { rows } = await admin.query<{ port: number }>(
        'select client_port as port from pg_stat_activity where application_name = $1 and datname = current_database()',
        [applicationName],
      );
      if (rows.length !== 1) throw new Error(`expected one ${applicationName} connection, found ${rows.length}`);
      return rows[0]!.port;
    } finally {
      await admin.end();
    }
  }

  /** Expects the kernel's next event on the idle connection named `applicationName` to be a keepalive probe within 10 s. */
  async function expectKeepaliveSoon(applicationName: string): Promise<void> {
    const timer = clientTimer(await clientPort(applicationName));
    expect(timer.kind).toBe(2);
    expect(timer.ms).toBeGreaterThan(0);
    expect(timer.ms).toBeLessThanOrEqual(TCP_KEEPALIVE_IDLE_MS);
  }

  it("probes an idle pool connection after 10 s of silence, not after the system's default of hours", async () => {
    const pool = createPgPool(url, { max: 1, applicationName: 'keepalive-pool', log: silentLog });
    try {
      await pool.query('select 1');
      await expectKeepaliveSoon('keepalive-pool');
    } finally {
      await pool.end();
    }
  });

  it('probes the listening connection after 10 s of silence too', async () => {
    const listening = await listenPostgres({
      url,
      channel: 'keepalive_test',
      onPayload: () => undefined,
      onReconnect: () => undefined,
      log: silentLog,
    });
    try {
      await expectKeepaliveSoon(LISTEN_APPLICATION_NAME);
    } finally {
      await listening.close();
    }
  });

  it('replaces a listening connection that stopped carrying bytes without closing, and hears notifications again', async () => {
    const target = new URL(url);
    const proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port) });
    const heard: string[] = [];
    let reconnects = 0;
    const listening = await listenPostgres({
      url: Object.assign(new URL(url), { port: String(proxy.port) }).toString(),
      channel: 'stall_test',
      onPayload: (payload) => heard.push(payload),
      onReconnect: () => reconnects++,
      log: silentLog,
      pingEveryMs: 200,
      queryTimeoutMs: 300,
    });
    const sender = new pg.Client({ connectionString: url });
    await sender.connect();
    try {
      await sender.query("select pg_notify('stall_test', 'before')");
      await waitFor('the first notification', () => heard.includes('before'), 5_000);
      // Half-open: the connection stays up but carries nothing; TCP alone would not tell for minutes.
      proxy.stall();
      await waitFor('a new listening connection', () => reconnects === 1, 10_000);
      await sender.query("select pg_notify('stall_test', 'after')");
      await waitFor('a notification on the new connection', () => heard.includes('after'), 5_000);
      expect(proxy.stats().accepted).toBe(2);
    } finally {
      await sender.end();
      await listening.close();
      await proxy.close();
    }
  });

  it("lets PostgreSQL cancel a statement that outruns the pool's statement timeout", async () => {
    const pool = createPgPool(url, { max: 1, applicationName: 'timeout-pool', log: silentLog, statementTimeoutMs: 200 });
    try {
      await expect(pool.query('select pg_sleep(5)')).rejects.toMatchObject({ code: '57014' });
      expect((await pool.query<{ one: number }>('select 1 as one')).rows).toEqual([{ one: 1 }]);
    } finally {
      await pool.end();
    }
  });
});
