import { sql, type Transaction } from 'kysely';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MAX_PAYLOAD_BYTES, MessageTooLargeError } from '../../src/cluster/cluster-message.ts';
import { CLUSTER_CHANNEL, type ClusterMessage, type Notifications } from '../../src/cluster/cluster.types.ts';
import { createNotifications } from '../../src/cluster/notifications.ts';
import { createLogger } from '../../src/logger.ts';
import type { Database } from '../../src/storage/database.ts';
import { openDatabase } from '../../src/storage/database.ts';
import { LISTEN_APPLICATION_NAME } from '../../src/storage/pg-listener.ts';
import { createTestDatabase, ENGINES, silentLog, type Engine, type TestDatabase } from '../support/databases.ts';
import { startTcpProxy } from '../support/tcp-proxy.ts';
import { waitFor } from '../support/wait.ts';

/**
 * Messages between replicas over LISTEN/NOTIFY on a real database: delivered once the
 * sending transaction commits and never after a rollback, seen by every replica, addressed
 * messages only by their addressee, malformed payloads dropped with a warning, oversize
 * messages refused whole, and (PostgreSQL) a killed listening connection re-established
 * with a resync. An absence is proved by a later message arriving first, never by waiting.
 */

/** A replica's messages as they arrive. */
interface Inbox {
  readonly notifications: Notifications;
  readonly received: ClusterMessage[];
  /**
   * Sends a marker message from `sender` and waits until this inbox has it: everything
   * committed before has arrived. Markers are not kept in {@link received}.
   */
  settle(sender?: Notifications): Promise<void>;
}

let marker = 0;

function inbox(notifications: Notifications): Inbox {
  const received: ClusterMessage[] = [];
  const markers = new Set<string>();
  notifications.subscribe((message) => {
    if (message.from.startsWith('marker-')) markers.add(message.from);
    else received.push(message);
  });
  return {
    notifications,
    received,
    async settle(sender = notifications) {
      const from = `marker-${++marker}`;
      await sender.notify({ k: 'leases', from });
      await waitFor(`marker ${from}`, () => markers.has(from));
    },
  };
}

/** A logger whose lines (parsed) a test can read. */
function capturingLog() {
  const lines: Array<{ level: number; msg: string; [key: string]: unknown }> = [];
  return { log: createLogger('warn', { write: (line: string) => void lines.push(JSON.parse(line)) }), lines };
}

const change = (from: string, site: string): ClusterMessage => ({ k: 'change', from, site, reason: 'instruction' });

describe.each(ENGINES)('cluster notifications on %s', (engine: Engine) => {
  let testDb: TestDatabase;
  let database: Database;
  const opened: Notifications[] = [];

  async function open(replicaId: string, on: Database = database, log = silentLog): Promise<Inbox> {
    const notifications = await createNotifications({ database: on, replicaId, log });
    opened.push(notifications);
    return inbox(notifications);
  }

  /**
   * Proves that what `trx` sent has not been delivered while it is open: on PostgreSQL a
   * marker sent on another connection arrives first; PGlite is one connection, so a
   * statement runs in the transaction and the notifications it would carry are let through.
   */
  async function whileOpen(trx: Transaction<object>, box: Inbox): Promise<void> {
    if (engine === 'postgres') return box.settle();
    await sql`select 1`.execute(trx);
    await new Promise((resolve) => setImmediate(resolve));
  }

  beforeAll(async () => {
    testDb = await createTestDatabase(engine);
    database = await testDb.open();
  });
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((n) => n.close()));
  });
  afterAll(() => testDb?.drop());

  it('hands on a message sent in a transaction only once it commits', async () => {
    const box = await open('replica-a');
    const trx = await database.db.startTransaction().execute();
    await box.notifications.notify(change('replica-b', 'committed'), trx);
    await whileOpen(trx, box);
    expect(box.received).toEqual([]);
    await trx.commit().execute();
    await waitFor('the committed message', () => box.received.length > 0);
    expect(box.received).toEqual([change('replica-b', 'committed')]);
  });

  it('never hands on a message sent in a transaction that rolled back', async () => {
    const box = await open('replica-a');
    const trx = await database.db.startTransaction().execute();
    await box.notifications.notify(change('replica-b', 'rolled-back'), trx);
    await trx.rollback().execute();
    await box.notifications.notify(change('replica-b', 'after'));
    await box.settle();
    expect(box.received).toEqual([change('replica-b', 'after')]);
  });

  it('lets two replicas on one database see each other’s messages, their own included', async () => {
    const other = engine === 'postgres' ? await testDb.open() : database;
    const a = await open('replica-a');
    const b = await open('replica-b', other);
    await a.notifications.notify(change('replica-a', 'north'));
    await b.notifications.notify(change('replica-b', 'south'));
    await a.settle(b.notifications);
    await b.settle(a.notifications);
    expect(a.received).toEqual([change('replica-a', 'north'), change('replica-b', 'south')]);
    expect(b.received).toEqual([change('replica-a', 'north'), change('replica-b', 'south')]);
  });

  it('hands a message addressed to one replica to that replica only', async () => {
    const a = await open('replica-a');
    const b = await open('replica-b');
    const outcome: ClusterMessage = {
      k: 'relay-outcome',
      from: 'replica-a',
      to: 'replica-b',
      setpointId: 's-1',
      verified: true,
      reason: '',
    };
    await a.notifications.notify(outcome);
    await b.settle(a.notifications);
    await a.settle();
    expect(b.received).toEqual([outcome]);
    expect(a.received).toEqual([]);
  });

  it('logs malformed payloads at warn and hands on none of them', async () => {
    const { log, lines } = capturingLog();
    const box = await open('replica-a', database, log);
    const payloads = [
      'not json',
      '[1, 2]',
      '{"k":"gossip","from":"x"}',
      '{"k":"change","from":"x","reason":"instruction"}',
      '{"k":"change","from":"","site":"s","reason":"instruction"}',
      '{"k":"change","from":"x","site":"s","reason":"whim"}',
      '{"k":"events","from":"x","min":1.5,"max":2}',
      '{"k":"market","from":"x","to":7}',
    ];
    for (const payload of payloads) await sql`select pg_notify(${CLUSTER_CHANNEL}, ${payload})`.execute(database.db);
    await box.settle();
    expect(box.received).toEqual([]);
    const warnings = lines.filter((l) => l.msg === 'malformed cluster message ignored');
    expect(warnings).toHaveLength(payloads.length);
    expect(warnings.every((l) => l.level === 40)).toBe(true);
    expect(warnings.map((l) => l.problem)).toEqual([
      'is not JSON',
      'is not a JSON object',
      'has an unknown kind k="gossip"',
      "'change' has a missing or malformed site",
      "'change' has no from",
      "'change' has a missing or malformed reason",
      "'events' has a missing or malformed min",
      "'market' has a to that is not a replica id",
    ]);
  });

  it('refuses a message over the limit whole and delivers one at the limit intact', async () => {
    const box = await open('replica-a');
    const bare = JSON.stringify(change('replica-b', '')).length;
    const atLimit = change('replica-b', 'x'.repeat(MAX_PAYLOAD_BYTES - bare));
    // Two bytes a character in UTF-8: the limit is in bytes, not characters.
    const overLimit = change('replica-b', 'é'.repeat(Math.ceil((MAX_PAYLOAD_BYTES - bare + 1) / 2)));
    const overBytes = Buffer.byteLength(JSON.stringify(overLimit));
    expect(overBytes).toBeGreaterThan(MAX_PAYLOAD_BYTES);
    const refused = await box.notifications.notify(overLimit).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(MessageTooLargeError);
    expect((refused as Error).message).toBe(
      `a 'change' cluster message of ${overBytes} bytes is over the ${MAX_PAYLOAD_BYTES}-byte NOTIFY limit`,
    );
    await box.notifications.notify(atLimit);
    await box.settle();
    expect(box.received).toEqual([atLimit]);
  });

  it('keeps handing on to the other subscribers when one throws, and nothing after close', async () => {
    const { log, lines } = capturingLog();
    const box = await open('replica-a', database, log);
    box.notifications.subscribe(() => {
      throw new Error('subscriber bug');
    });
    const other = await open('replica-b');
    await other.notifications.notify(change('replica-b', 'one'));
    await box.settle(other.notifications);
    expect(box.received).toEqual([change('replica-b', 'one')]);
    expect(lines.filter((l) => l.msg === "'change' subscriber failed")).toHaveLength(1);
    await box.notifications.close();
    await box.notifications.close();
    await other.notifications.notify(change('replica-b', 'two'));
    await other.settle();
    expect(box.received).toEqual([change('replica-b', 'one')]);
  });
});

describe('cluster notifications on postgres, whose listening connection can be lost', () => {
  let testDb: TestDatabase;
  let database: Database;
  let notifications: Notifications | undefined;

  beforeAll(async () => {
    testDb = await createTestDatabase('postgres');
    database = await testDb.open();
  });
  afterAll(async () => {
    await notifications?.close();
    await testDb?.drop();
  });

  it('listens again after its connection is killed, and calls onResync', async () => {
    notifications = await createNotifications({ database, replicaId: 'replica-a', log: silentLog });
    const box = inbox(notifications);
    let resyncs = 0;
    box.notifications.onResync(() => resyncs++);
    const listeners = () =>
      sql<{ pid: number }>`select pid from pg_stat_activity
        where application_name = ${LISTEN_APPLICATION_NAME} and datname = current_database()`.execute(database.db);
    const [before] = (await listeners()).rows;
    expect(before).toBeDefined();
    await sql`select pg_terminate_backend(${before!.pid})`.execute(database.db);
    await waitFor('a resync', () => resyncs > 0);
    const after = (await listeners()).rows;
    expect(after.map((r) => r.pid)).not.toContain(before!.pid);
    expect(after).toHaveLength(1);
    await box.notifications.notify(change('replica-b', 'after-reconnect'));
    await box.settle();
    expect(box.received).toEqual([change('replica-b', 'after-reconnect')]);
    expect(resyncs).toBe(1);
  });

  it('keeps trying while the database is unreachable and resyncs once it is back', async () => {
    const url = new URL(testDb.config.kind === 'postgres' ? testDb.config.url : '');
    const proxy = await startTcpProxy({ host: url.hostname, port: Number(url.port) });
    url.port = String(proxy.port);
    // The listening connection logs as the database's.
    const { log, lines } = capturingLog();
    const throughProxy = await openDatabase({ kind: 'postgres', url: url.toString() }, { log, poolSize: 1 });
    const cut = await createNotifications({ database: throughProxy, replicaId: 'replica-c', log: silentLog });
    try {
      const box = inbox(cut);
      let resyncs = 0;
      cut.onResync(() => resyncs++);
      proxy.cut();
      await waitFor('two failed reconnects', () => lines.filter((l) => l.msg === 'listening connection failed').length >= 2);
      expect(resyncs).toBe(0);
      proxy.restore();
      await waitFor('a resync', () => resyncs > 0);
      // Sent directly, not through the proxy: the listener is the one that was cut off.
      await cut.notify(change('replica-b', 'back'), database.db);
      await box.settle(notifications);
      expect(box.received).toEqual([change('replica-b', 'back')]);
      expect(lines.filter((l) => l.msg === 'listening connection lost: reconnecting')).toHaveLength(1);
    } finally {
      await cut.close();
      await throughProxy.close();
      await proxy.close();
    }
  });
});
