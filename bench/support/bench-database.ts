import pg from 'pg';

/** Creates the database `name` (default `bench`) on a throwaway cluster and returns its URL. */
export async function createBenchDatabase(adminUrl: string, name = 'bench'): Promise<string> {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`create database ${pg.escapeIdentifier(name)}`);
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}
