import { sql, type Compilable, type Kysely, type RawBuilder } from 'kysely';

/** A data-modifying query with a `returning` clause, as Kysely builds it. */
export interface ReturningWrite<R> extends Compilable<R> {
  execute(): Promise<R[]>;
}

/**
 * Runs `write` and returns its rows, with `notice` (an expression such as a `pg_notify`
 * call) selected once per returned row in the same statement (a data-modifying CTE), so
 * the change and the notice commit together, and a write that changed no row sends none.
 * Without `notice`, it is `write` alone.
 */
export async function writeWithNotice<DB, R>(
  db: Kysely<DB>,
  write: ReturningWrite<R>,
  notice: RawBuilder<unknown> | undefined,
): Promise<R[]> {
  if (!notice) return write.execute();
  const { rows } = await sql<
    R & { notice: unknown }
  >`with written as (${write}) select written.*, ${notice} as notice from written`.execute(db);
  return rows.map(({ notice: _, ...row }) => row as R);
}
