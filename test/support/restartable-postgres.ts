import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { startPostgresCluster } from './postgres-cluster.ts';

const run = promisify(execFile);

/** A throwaway PostgreSQL cluster of one test's own, which the test may stop and start again. */
export interface RestartablePostgres {
  /** URL of the `postgres` database as the superuser, on 127.0.0.1; the same after a restart. */
  readonly adminUrl: string;
  /**
   * Stops the server and waits until it is down: `fast` terminates sessions and checkpoints,
   * `immediate` (the default) kills it as a crash would, leaving recovery to the next start.
   */
  stopServer(mode?: 'fast' | 'immediate'): Promise<void>;
  /** Starts the stopped server again on the same port and waits until it accepts connections. */
  startServer(): Promise<void>;
  /** Stops it for good and removes its files. */
  stop(): Promise<void>;
}

/**
 * Starts a dedicated cluster for a fault test. The suite's shared cluster must never be
 * stopped (other files use it at the same time), so a test that takes PostgreSQL away
 * starts its own. It is started by {@link startPostgresCluster}; this adds stop and start
 * with the same options, found through the server itself (data directory, socket
 * directory, port) so both files agree without sharing internals.
 */
export async function startRestartablePostgres(): Promise<RestartablePostgres> {
  const cluster = await startPostgresCluster();
  const port = new URL(cluster.adminUrl).port;
  const client = new pg.Client({ connectionString: cluster.adminUrl });
  await client.connect();
  const setting = async (name: string) => (await client.query<{ setting: string }>('select setting from pg_settings where name = $1', [name])).rows[0]!.setting;
  const dataDir = await setting('data_directory');
  const socketDir = await setting('unix_socket_directories');
  // The shared cluster trades durability for speed (synchronous_commit off). Here a commit
  // must be on disk when it returns, or a crash could take acknowledged rows with it and a
  // test of "acknowledged means stored" would test the configuration instead of the product.
  await client.query('alter database postgres set synchronous_commit = on');
  await client.end();
  const asRoot = process.getuid?.() === 0;
  const pgCtl = (args: string[]) => {
    const [file, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', 'pg_ctl', ...args]] : ['pg_ctl', args];
    return run(file, argv, { timeout: 60_000 });
  };
  const options = [
    `-c listen_addresses=127.0.0.1`,
    `-p ${port}`,
    `-k ${socketDir}`,
    `-c fsync=off`,
    `-c synchronous_commit=off`,
    `-c full_page_writes=off`,
    `-c max_connections=200`,
  ].join(' ');
  return {
    adminUrl: cluster.adminUrl,
    async stopServer(mode = 'immediate') {
      await pgCtl(['-D', dataDir, '-m', mode, '-w', '-t', '60', 'stop']);
    },
    async startServer() {
      await pgCtl(['-D', dataDir, '-o', options, '-l', path.join(path.dirname(dataDir), 'postgres.log'), '-w', '-t', '60', 'start']);
    },
    stop: () => cluster.stop(),
  };
}
