import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAgentStreams, type AgentStreams, type StreamHoldersChange } from '../../src/telemetry/agent-streams.ts';
import type { Notifications } from '../../src/cluster/cluster.types.ts';
import { createNotifications } from '../../src/cluster/notifications.ts';
import { createFakeClock } from '../../src/clock.fixtures.ts';
import type { Database } from '../../src/storage/database.ts';
import { createRelayHub, type RelayHub } from '../../src/telemetry/relay-hub.ts';
import { createTestDatabase, ENGINES, silentLog, type TestDatabase } from '../support/databases.ts';
import { waitFor } from '../support/wait.ts';

/** A replica as these tests need it: its bookkeeping, and a hub that tells it of joins and leaves. */
interface Replica {
  readonly id: string;
  readonly streams: AgentStreams;
  readonly hub: RelayHub;
  readonly notifications: Notifications;
}

async function startReplica(database: Database, id: string): Promise<Replica> {
  const notifications = await createNotifications({ database, replicaId: id, log: silentLog });
  const streams = createAgentStreams({ db: database.db, notifications, replicaId: id, log: silentLog });
  const hub = createRelayHub({ membership: streams });
  await streams.start();
  return { id, streams, hub, notifications };
}

async function stopReplica(replica: Replica | undefined): Promise<void> {
  await replica?.streams.stop();
  await replica?.notifications.close();
}

/** Marks replicas live (or, with a negative `forMs`, dead) as the lease manager's heartbeat would. */
async function heartbeat(database: Database, id: string, forMs = 3_600_000): Promise<void> {
  await sql`insert into powerplane.replicas (id, expires_at) values (${id}, now() + ${forMs} * interval '1 millisecond')
    on conflict (id) do update set expires_at = excluded.expires_at`.execute(database.db);
}

async function rowsOf(database: Database, replica: string): Promise<string[]> {
  const { rows } = await sql<{ site: string }>`select site from powerplane.agent_streams where replica = ${replica} order by site`.execute(
    database.db,
  );
  return rows.map((r) => r.site);
}

describe.each(ENGINES)('agent streams of one replica on %s', (engine) => {
  let testDb: TestDatabase;
  let database: Database;
  let replica: Replica | undefined;

  beforeAll(async () => {
    testDb = await createTestDatabase(engine);
    database = await testDb.open();
    await heartbeat(database, 'solo');
  });
  afterAll(async () => {
    await stopReplica(replica);
    await testDb?.drop();
  });

  it('removes rows an earlier run left under its id at start, and registers streams that joined before start', async () => {
    await sql`insert into powerplane.agent_streams (site, replica) values ('left-behind', 'solo')`.execute(database.db);
    const notifications = await createNotifications({ database, replicaId: 'solo', log: silentLog });
    const streams = createAgentStreams({ db: database.db, notifications, replicaId: 'solo', log: silentLog });
    const hub = createRelayHub({ membership: streams });
    hub.open().hello('early');
    await streams.start();
    await streams.flushed();
    replica = { id: 'solo', streams, hub, notifications };
    expect(await rowsOf(database, 'solo')).toEqual(['early']);
    expect(streams.holders('early').map((h) => h.replica)).toEqual(['solo']);
    expect(streams.holders('left-behind')).toEqual([]);
  });

  it('registers a site when a stream joins it, keeps it while another stream of it is here, deletes it after the last', async () => {
    const { hub, streams } = replica!;
    const changes: StreamHoldersChange[] = [];
    const off = streams.onChange((c) => changes.push(c));
    const first = hub.open();
    const second = hub.open();
    first.hello('site-1');
    await streams.flushed();
    await streams.reload();
    const openedAt = streams.holders('site-1')[0]!.openedAt;
    expect(await rowsOf(database, 'solo')).toEqual(['early', 'site-1']);
    expect(changes).toEqual([{ site: 'site-1', added: ['solo'], removed: [] }]);

    second.hello('site-1');
    await streams.flushed();
    await streams.reload();
    // A second stream moves the row's time on: the newest stream of a site is the one used.
    expect(streams.holders('site-1')[0]!.openedAt).toBeGreaterThanOrEqual(openedAt);

    first.close();
    await streams.flushed();
    await streams.reload();
    expect(await rowsOf(database, 'solo')).toEqual(['early', 'site-1']);
    second.close();
    await streams.flushed();
    await streams.reload();
    expect(await rowsOf(database, 'solo')).toEqual(['early']);
    expect(streams.holders('site-1')).toEqual([]);
    expect(changes.at(-1)).toEqual({ site: 'site-1', added: [], removed: ['solo'] });
    off();
  });

  it('ignores the rows of replicas that are not live, and lists the others newest first', async () => {
    await heartbeat(database, 'dead', -1000);
    await heartbeat(database, 'older');
    await heartbeat(database, 'newer');
    await sql`insert into powerplane.agent_streams (site, replica, opened_at) values ('shared', 'dead', now()),
      ('shared', 'older', now() - interval '2 seconds'), ('shared', 'newer', now() - interval '1 second')`.execute(database.db);
    await replica!.streams.reload();
    expect(replica!.streams.holders('shared').map((h) => h.replica)).toEqual(['newer', 'older']);
    await heartbeat(database, 'newer', -1000);
    await replica!.streams.reload();
    expect(replica!.streams.holders('shared').map((h) => h.replica)).toEqual(['older']);
  });

  it('registers its streams again at the next refresh when another replica removed them while it was taken for dead', async () => {
    const clock = createFakeClock();
    const notifications = await createNotifications({ database, replicaId: 'revived', log: silentLog });
    const streams = createAgentStreams({ db: database.db, notifications, replicaId: 'revived', log: silentLog, refreshMs: 5000, clock });
    const hub = createRelayHub({ membership: streams });
    try {
      await streams.start();
      hub.open().hello('site-r');
      await streams.flushed();
      expect(await rowsOf(database, 'revived')).toEqual(['site-r']);
      // What the lease manager's tick does to the rows of a replica whose heartbeat expired.
      await sql`delete from powerplane.agent_streams where replica = 'revived'`.execute(database.db);
      await clock.advance(4999);
      expect(await rowsOf(database, 'revived')).toEqual([]);
      await clock.advance(1);
      await waitFor('the row registered again', async () => (await rowsOf(database, 'revived')).length === 1, 10_000);
      expect(await rowsOf(database, 'revived')).toEqual(['site-r']);
    } finally {
      await streams.stop();
      await notifications.close();
    }
    expect(clock.pending()).toBe(0);
  });

  it('deletes its own rows at stop and leaves the others', async () => {
    await replica!.streams.stop();
    await replica!.streams.stop();
    expect(await rowsOf(database, 'solo')).toEqual([]);
    expect(await rowsOf(database, 'older')).toEqual(['shared']);
    // The hub may still close streams while the server stops: nothing more is written.
    replica!.hub.open().hello('late');
    await replica!.streams.flushed();
    expect(await rowsOf(database, 'solo')).toEqual([]);
  });
});

describe('agent streams across replicas on postgres', () => {
  let testDb: TestDatabase;
  let database: Database;
  let a: Replica | undefined;
  let b: Replica | undefined;

  beforeAll(async () => {
    testDb = await createTestDatabase('postgres');
    database = await testDb.open();
    await heartbeat(database, 'replica-a');
    await heartbeat(database, 'replica-b');
    a = await startReplica(database, 'replica-a');
    b = await startReplica(database, 'replica-b');
  });
  afterAll(async () => {
    await stopReplica(a);
    await stopReplica(b);
    await testDb?.drop();
  });

  it("sees another replica's streams open and close through its notifications alone", async () => {
    const changes: StreamHoldersChange[] = [];
    a!.streams.onChange((c) => changes.push(c));
    const stream = b!.hub.open();
    stream.hello('site-x');
    await waitFor('replica A to see the stream on B', () => a!.streams.holders('site-x').length === 1, 10_000);
    expect(a!.streams.holders('site-x')[0]!.replica).toBe('replica-b');
    stream.close();
    await waitFor('replica A to see it gone', () => a!.streams.holders('site-x').length === 0, 10_000);
    expect(changes).toEqual([
      { site: 'site-x', added: ['replica-b'], removed: [] },
      { site: 'site-x', added: [], removed: ['replica-b'] },
    ]);
  });

  it('forgets the streams of a replica that stopped', async () => {
    b!.hub.open().hello('site-y');
    await waitFor('replica A to see the stream on B', () => a!.streams.holders('site-y').length === 1, 10_000);
    await b!.streams.stop();
    await waitFor('replica A to see B gone', () => a!.streams.holders('site-y').length === 0, 10_000);
    expect(await rowsOf(database, 'replica-b')).toEqual([]);
  });
});
