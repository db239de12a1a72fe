import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A throwaway PostgreSQL cluster for one test run. */
export interface PostgresCluster {
  /** URL of the `postgres` database as the superuser, on 127.0.0.1. */
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
 * Where `initdb` and `pg_ctl` are: on PATH, else in Debian's versioned directory
 * (`/usr/lib/postgresql/<v>/bin`, which the postgresql package does not put on PATH).
 */
export function postgresBinary(name: 'initdb' | 'pg_ctl'): string {
  const onPath = (process.env.PATH ?? '').split(path.delimiter).some((dir) => dir && existsSync(path.join(dir, name)));
  if (onPath) return name;
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => existsSync(path.join(root, v, 'bin', name))) : [];
  const newest = versions.sort((a, b) => Number.parseFloat(b) - Number.parseFloat(a))[0];
  if (!newest)
    throw new Error(
      `${name} not found on PATH or under ${root}/<version>/bin: ` +
        'install PostgreSQL (Debian: apt-get install postgresql) or set TEST_DATABASE_URL',
    );
  return path.join(root, newest, 'bin', name);
}

/**
 * Starts a fresh cluster with `initdb` and `pg_ctl` in a temporary directory, listening
 * only on 127.0.0.1 at a free port. As root, PostgreSQL refuses to run, so the binaries
 * run as the `postgres` user. Throws (failing the run) when it cannot start: a database
 * test must never skip silently.
 */
export async function startPostgresCluster(): Promise<PostgresCluster> {
  const asRoot = process.getuid?.() === 0;
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'powerplane-pg-'));
  const dataDir = path.join(dir, 'data');
  const exec = async (cmd: 'initdb' | 'pg_ctl', args: string[]) => {
    const binary = postgresBinary(cmd);
    const [file, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', binary, ...args]] : [binary, args];
    return run(file, argv, { timeout: 60_000 });
  };
  if (asRoot) await run('chown', ['-R', 'postgres', dir]);
  await exec('initdb', ['-D', dataDir, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C']);
  const port = await freePort();
  const options = [
    `-c listen_addresses=127.0.0.1`,
    `-p ${port}`,
    `-k ${dir}`,
    `-c fsync=off`,
    `-c synchronous_commit=off`,
    `-c full_page_writes=off`,
    `-c max_connections=200`,
  ].join(' ');
  const startServer = async () => {
    await exec('pg_ctl', ['-D', dataDir, '-o', options, '-l', path.join(dir, 'postgres.log'), '-w', '-t', '60', 'start']);
  };
  await startServer();
  let stopped = false;
  return {
    adminUrl: `postgres://postgres@127.0.0.1:${port}/postgres`,
    async stopServer(mode = 'immediate') {
      await exec('pg_ctl', ['-D', dataDir, '-m', mode, '-w', '-t', '60', 'stop']);
    },
    startServer,
    async stop() {
      if (stopped) return;
      stopped = true;
      await exec('pg_ctl', ['-D', dataDir, '-m', 'immediate', '-w', 'stop']).catch(() => undefined);
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}
