import { sql, type Kysely } from 'kysely';
import pg from 'pg';
import { CLUSTER_CHANNEL, type ClusterMessage, type Notifications } from '../../src/cluster/cluster.types.ts';

/**
 * Real `LISTEN/NOTIFY` between the "replicas" of one test process: a dedicated `pg.Client`
 * listening on the fleet's channel for one replica id, and `pg_notify` on the given
 * executor. Only what the relay tests need (no reconnection): without a URL (PGlite) it
 * sends but hears nothing.
 */
export async function listenForTests(db: Kysely<object>, replicaId: string, url?: string): Promise<Notifications> {
  const handlers = new Set<(m: ClusterMessage) => void>();
  let client: pg.Client | undefined;
  if (url) {
    client = new pg.Client({ connectionString: url });
    await client.connect();
    client.on('notification', (n) => {
      if (n.channel !== CLUSTER_CHANNEL || !n.payload) return;
      const message = JSON.parse(n.payload) as ClusterMessage;
      if ('to' in message && message.to !== replicaId) return;
      for (const handler of [...handlers]) handler(message);
    });
    await client.query(`listen ${CLUSTER_CHANNEL}`);
  }
  let closed = false;
  return {
    subscribe(handler) {
      handlers.add(handler);
      return () => void handlers.delete(handler);
    },
    onResync: () => () => undefined,
    async notify(message, executor = db) {
      await sql`select pg_notify(${CLUSTER_CHANNEL}, ${JSON.stringify(message)})`.execute(executor);
    },
    async close() {
      if (closed) return;
      closed = true;
      handlers.clear();
      await client?.end();
    },
  };
}
