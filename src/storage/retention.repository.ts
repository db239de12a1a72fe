import type { Session } from './database.ts';
import type { RetentionDays } from './retention.types.ts';

/**
 * The SQL of readings retention: the bounded delete of migration 0019
 * (`powerplane.delete_expired_readings`) and the oldest reading still kept.
 */

/** A kind of reading that has a retention. */
export type ReadingKind = keyof RetentionDays;

/** Every kind, in the order a retention run works through them. */
export const READING_KINDS: readonly ReadingKind[] = ['meter', 'bess', 'datum', 'market'];

/** The table of each kind, as `schema.table` (as `hypertableNames` names them), and its time column. */
export const READING_TABLES: Readonly<Record<ReadingKind, { readonly table: string; readonly time: string }>> = {
  meter: { table: 'flux.mg_meter_readings', time: '"time"' },
  bess: { table: 'flux.mg_bess_readings', time: '"time"' },
  datum: { table: 'powerplane.datum_readings', time: 'ts' },
  market: { table: 'flux.market_data', time: '"time"' },
};

/** The most rows one delete statement may remove; the database function refuses more. */
export const MAX_DELETE_ROWS = 10_000;

/**
 * Deletes at most `maxRows` readings of `kind` older than `olderThan`, the oldest first, and
 * says how many went. The table must not be a hypertable: the function refuses one.
 */
export async function deleteExpiredReadings(session: Session, kind: ReadingKind, olderThan: Date, maxRows: number): Promise<number> {
  const [row] = await session.query<{ deleted: number }>('select powerplane.delete_expired_readings($1, $2::timestamptz, $3) as deleted', [
    kind,
    olderThan.toISOString(),
    maxRows,
  ]);
  return row?.deleted ?? 0;
}

/** The time of the oldest reading of `kind`; undefined when there is none. */
export async function oldestReading(session: Session, kind: ReadingKind): Promise<Date | undefined> {
  const { table, time } = READING_TABLES[kind];
  const [row] = await session.query<{ oldest: Date | string | null }>(`select min(${time}) as oldest from ${table}`);
  return row?.oldest == null ? undefined : new Date(row.oldest);
}
