import type { Session } from './database.ts';

/**
 * The tables that are TimescaleDB hypertables, as `schema.table`; empty where the
 * extension is not created in this database (plain PostgreSQL, PGlite, or TimescaleDB
 * installed but never turned on). Code that treats hypertables differently (retention,
 * compression) asks here rather than assuming from the engine.
 */
export async function hypertableNames(session: Session): Promise<ReadonlySet<string>> {
  const [extension] = await session.query<{ present: boolean }>(
    `select exists (select 1 from pg_extension where extname = 'timescaledb') as present`,
  );
  if (!extension?.present) return new Set();
  const rows = await session.query<{ name: string }>(
    `select hypertable_schema || '.' || hypertable_name as name from timescaledb_information.hypertables`,
  );
  return new Set(rows.map((row) => row.name));
}
