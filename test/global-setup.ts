import type { TestProject } from 'vitest/node';
import { startPostgresCluster } from './support/postgres-cluster.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Superuser URL of the PostgreSQL server the tests use. */
    postgresAdminUrl: string;
  }
}

/**
 * Gives every test file a real PostgreSQL: `TEST_DATABASE_URL` when set (a superuser URL;
 * each file creates its own database there), otherwise a throwaway cluster started here
 * and stopped after the run.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const given = process.env.TEST_DATABASE_URL;
  if (given) {
    project.provide('postgresAdminUrl', given);
    return async () => {};
  }
  const cluster = await startPostgresCluster();
  console.log(`[test setup] throwaway PostgreSQL cluster at ${cluster.adminUrl}`);
  project.provide('postgresAdminUrl', cluster.adminUrl);
  return () => cluster.stop();
}
