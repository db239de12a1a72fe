import pg from 'pg';

/** Creates the database `bench` on a throwaway cluster and returns its URL. */
export async function createBenchDatabase(adminUrl: string): Promise<string> {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query('create database bench');
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl);
  url.pathname = '/bench';
  return url.toString();
}
