import pg from 'pg';
import { startPostgresCluster, type PostgresCluster } from './postgres-cluster.ts';

/** A throwaway PostgreSQL cluster of one test's own, which the test may stop and start again. */
export type RestartablePostgres = PostgresCluster;

/**
 * Starts a dedicated cluster for a fault test. The suite's shared cluster must never be
 * stopped (other files use it at the same time), so a test that takes PostgreSQL away
 * starts its own.
 */
export async function startRestartablePostgres(): Promise<RestartablePostgres> {
  const cluster = await startPostgresCluster();
  // The shared cluster trades durability for speed (synchronous_commit off). Here a commit
  // must be on disk when it returns, or a crash could take acknowledged rows with it and a
  // test of "acknowledged means stored" would test the configuration instead of the product.
  const client = new pg.Client({ connectionString: cluster.adminUrl });
  await client.connect();
  try {
    await client.query('alter database postgres set synchronous_commit = on');
  } finally {
    await client.end();
  }
  return cluster;
}
