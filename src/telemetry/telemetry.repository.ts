import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { Logger } from '../logger.ts';
import type { Database } from '../storage/database.ts';
import { createPgPool, isConnectionError } from '../storage/pg-pool.ts';
import { encodeBessCopy, encodeMeterCopy } from './copy-binary.ts';
import { type BessRow, type MeterRow } from './reading-batch.ts';
import { formatMicros, METER_QUANTITIES } from '../storage/reading-columns.ts';
import type { DeviceFacts } from './validation.ts';

/** One connection lent to the writer for a transaction. */
export interface WriteSession {
  /** Runs one parameterised statement and returns its rows. */
  query<R = Record<string, unknown>>(text: string, params?: unknown[]): Promise<R[]>;
  /** Streams `data` into `COPY … FROM STDIN`; absent where the engine has no COPY client. */
  readonly copyIn?: (statement: string, data: Buffer) => Promise<void>;
  /** True once this connection's staging tables exist. */
  staged: boolean;
}

/** The connections the writer uses. */
export interface WriteSessions {
  /** Lends a connection to `fn` for its whole run. */
  run<T>(fn: (session: WriteSession) => Promise<T>): Promise<T>;
  /** Closes connections this opened (not the shared database). Idempotent. */
  close(): Promise<void>;
}

/**
 * Connections for ingest. On PostgreSQL a pool of its own (`size` connections), so COPY
 * can use the raw `pg` client and ingest never starves queries of the shared pool; on
 * PGlite the database's one connection, through its session lock.
 */
export function createWriteSessions(database: Database, url: string | undefined, size: number, log: Logger): WriteSessions {
  if (database.kind === 'pglite' || !url) {
    const session: WriteSession = { query: () => Promise.reject(new Error('no session')), staged: false };
    return {
      run: (fn) =>
        database.withSession((raw) => {
          session.query = raw.query;
          return fn(session);
        }),
      close: async () => {},
    };
  }
  // A write in flight on a connection that dies fails, and its batches are not acked.
  const pool = createPgPool(url, { max: size, applicationName: 'powerplane-ingest', log });
  const sessions = new WeakMap<pg.PoolClient, WriteSession>();
  let closed = false;
  return {
    async run(fn) {
      const client = await pool.connect();
      let session = sessions.get(client);
      if (!session) {
        session = {
          query: async (text, params) => (await client.query(text, params)).rows,
          copyIn: (statement, data) => pipeline(Readable.from([data]), client.query(copyFrom(statement))),
          staged: false,
        };
        sessions.set(client, session);
      }
      let broken = false;
      try {
        return await fn(session);
      } catch (err) {
        // A failed COPY or constraint leaves the connection usable; a dead socket does not.
        broken = isConnectionError(err);
        throw err;
      } finally {
        client.release(broken);
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      await pool.end();
    },
  };
}

const METER_COLUMNS = METER_QUANTITIES.map((q) => q.column);
const BESS_COLUMNS = ['soe', 'target_power', 'available_inverter_blocks', 'command_source'];

/** Creates this connection's temporary staging tables, emptied at every commit. */
export async function ensureStaging(session: WriteSession): Promise<void> {
  if (session.staged) return;
  const meterColumns = METER_COLUMNS.map((c) => `${c} real`).join(', ');
  await session.query(
    `create temp table if not exists pp_meter_stage (ord int4, device_id uuid, "time" timestamptz, ${meterColumns})
     on commit delete rows`,
  );
  await session.query(
    `create temp table if not exists pp_bess_stage (ord int4, device_id uuid, "time" timestamptz,
       soe real, target_power real, available_inverter_blocks smallint, command_source smallint)
     on commit delete rows`,
  );
  session.staged = true;
}

/** A staged row that was not stored: its position, whether the stored one is identical, and the stored values. */
export interface NotStored {
  readonly ord: number;
  readonly same: boolean;
  readonly existing: Record<string, unknown>;
}

/**
 * Writes meter rows (unique keys, inside the caller's transaction): stage them, insert
 * with `on conflict do nothing`, and when some were not inserted, return those with the
 * stored row they collide with. Rows inserted by this transaction are told apart by
 * `xmin`, so concurrent writers of the same key classify correctly after they commit.
 */
export async function writeMeterRows(session: WriteSession, rows: readonly MeterRow[]): Promise<NotStored[]> {
  if (rows.length === 0) return [];
  if (session.copyIn) {
    await session.copyIn(`copy pp_meter_stage from stdin (format binary)`, encodeMeterCopy(rows));
  } else {
    const params: unknown[] = [rows.map((_, i) => i), rows.map((r) => r.deviceId), rows.map((r) => formatMicros(r.timeMicros))];
    // Each row's values once (an encoded row decodes them on every read).
    const values = rows.map((r) => r.values);
    for (let q = 0; q < METER_COLUMNS.length; q++) params.push(values.map((v) => v[q]));
    const casts = ['int4', 'uuid', 'timestamptz', ...METER_COLUMNS.map(() => 'real')];
    await session.query(`insert into pp_meter_stage select * from unnest(${casts.map((c, i) => `$${i + 1}::${c}[]`).join(', ')})`, params);
  }
  return insertStaged(session, 'flux.mg_meter_readings', 'pp_meter_stage', METER_COLUMNS, rows.length);
}

/** Writes battery rows as {@link writeMeterRows} does. */
export async function writeBessRows(session: WriteSession, rows: readonly BessRow[]): Promise<NotStored[]> {
  if (rows.length === 0) return [];
  if (session.copyIn) {
    await session.copyIn(`copy pp_bess_stage from stdin (format binary)`, encodeBessCopy(rows));
  } else {
    await session.query(
      `insert into pp_bess_stage
       select * from unnest($1::int4[], $2::uuid[], $3::timestamptz[], $4::real[], $5::real[], $6::smallint[], $7::smallint[])`,
      [
        rows.map((_, i) => i),
        rows.map((r) => r.deviceId),
        rows.map((r) => formatMicros(r.timeMicros)),
        rows.map((r) => r.soe),
        rows.map((r) => r.targetPower),
        rows.map((r) => r.availableInverterBlocks),
        rows.map((r) => r.commandSource),
      ],
    );
  }
  return insertStaged(session, 'flux.mg_bess_readings', 'pp_bess_stage', BESS_COLUMNS, rows.length);
}

/**
 * The fast path of a group with no key stored yet: binary COPY straight into the readings
 * tables. A key already stored fails the COPY with unique_violation (23505) and the
 * caller redoes the group through staging; COPY never half-applies.
 */
export async function copyRowsDirect(session: WriteSession, meter: readonly MeterRow[], bess: readonly BessRow[]): Promise<void> {
  if (!session.copyIn) throw new Error('COPY is not available on this engine');
  if (meter.length > 0) {
    await session.copyIn(
      `copy flux.mg_meter_readings (device_id, "time", ${METER_COLUMNS.join(', ')}) from stdin (format binary)`,
      encodeMeterCopy(meter, false),
    );
  }
  if (bess.length > 0) {
    await session.copyIn(
      `copy flux.mg_bess_readings (device_id, "time", ${BESS_COLUMNS.join(', ')}) from stdin (format binary)`,
      encodeBessCopy(bess, false),
    );
  }
}

async function insertStaged(
  session: WriteSession,
  table: string,
  stage: string,
  columns: readonly string[],
  count: number,
): Promise<NotStored[]> {
  const list = columns.join(', ');
  const [inserted] = await session.query<{ n: number }>(
    `with ins as (insert into ${table} ("time", device_id, ${list})
       select "time", device_id, ${list} from ${stage} on conflict (device_id, "time") do nothing returning 1)
     select count(*)::int as n from ins`,
  );
  if ((inserted?.n ?? 0) === count) return [];
  const stagedValues = columns.map((c) => `s.${c}`).join(', ');
  const storedValues = columns.map((c) => `m.${c}`).join(', ');
  const rows = await session.query<Record<string, unknown> & { ord: number; same: boolean }>(
    `select s.ord, (${stagedValues}) is not distinct from (${storedValues}) as same, ${storedValues}
     from ${stage} s join ${table} m on m.device_id = s.device_id and m."time" = s."time"
     where m.xmin::text::bigint <> txid_current() % 4294967296`,
  );
  return rows.map(({ ord, same, ...existing }) => ({ ord, same, existing }));
}

/** Looks up the registry facts of `ids` (lower-case UUIDs) in one query. */
export async function findDeviceFacts(database: Database, ids: readonly string[]): Promise<Map<string, DeviceFacts>> {
  const found = new Map<string, DeviceFacts>();
  if (ids.length === 0) return found;
  const rows = await database.withSession((s) =>
    s.query<{ id: string; type: string; active: boolean | null; site: string }>(
      `select id::text as id, type, active, site from flux.mg_device_registry where id = any($1::uuid[])`,
      [ids],
    ),
  );
  for (const row of rows) found.set(row.id, { type: row.type, active: row.active !== false, site: row.site });
  return found;
}
