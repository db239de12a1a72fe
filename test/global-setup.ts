import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import type { TestProject } from 'vitest/node';
import { startPostgresCluster } from './support/postgres-cluster.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Superuser URL of the PostgreSQL server the tests use. */
    postgresAdminUrl: string;
    /** A dump of a fresh, unmigrated PGlite data directory every in-memory PGlite starts from. */
    pgliteImageFile: string;
  }
}

/**
 * Gives every test file a real PostgreSQL: `TEST_DATABASE_URL` when set (a superuser URL;
 * each file creates its own database there), otherwise a throwaway cluster started here
 * and stopped after the run. Meanwhile it makes, once, the PGlite data directory every
 * in-memory PGlite of the run starts from, so no test file waits for PGlite to create one.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'powerplane-pglite-image-'));
  const imageFile = path.join(dir, 'datadir.tar');
  const given = process.env.TEST_DATABASE_URL;
  const [cluster] = await Promise.all([given ? undefined : startPostgresCluster(), writePGliteImage(imageFile)]);
  project.provide('pgliteImageFile', imageFile);
  const removeImage = () => fs.rm(dir, { recursive: true, force: true });
  if (given) {
    project.provide('postgresAdminUrl', given);
    return removeImage;
  }
  console.log(`[test setup] throwaway PostgreSQL cluster at ${cluster!.adminUrl}`);
  project.provide('postgresAdminUrl', cluster!.adminUrl);
  return async () => {
    await Promise.all([cluster!.stop(), removeImage()]);
  };
}

async function writePGliteImage(file: string): Promise<void> {
  const pglite = await PGlite.create({ dataDir: 'memory://' });
  try {
    await fs.writeFile(file, Buffer.from(await (await pglite.dumpDataDir('none')).arrayBuffer()));
  } finally {
    await pglite.close();
  }
}
