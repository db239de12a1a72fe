import { extendNames, namesGrew, sameMaps, toArrays, toMaps, type DatumNames } from '../storage/datum-layout.ts';
import { type DatumRow } from './reading-batch.ts';
import { formatMicros } from '../storage/reading-columns.ts';
import type { NotStored, WriteSession } from './telemetry.repository.ts';

interface StreamRow {
  stream_id: string;
  device_id: string;
  source_id: string;
  names_i: string[];
  names_a: string[];
  names_s: string[];
}

/**
 * Writes datum rows (unique (device, source, time) keys) inside the caller's transaction:
 * creates missing streams, appends new property names to their metadata row (locked, so
 * concurrent writers extend it one after the other), inserts the values with
 * `on conflict do nothing`, and returns the rows not inserted with whether the stored
 * reading is identical.
 */
export async function writeDatumRows(session: WriteSession, rows: readonly DatumRow[]): Promise<NotStored[]> {
  if (rows.length === 0) return [];
  const pairs = new Map<string, { deviceId: string; sourceId: string }>();
  for (const row of rows) pairs.set(streamKey(row.deviceId, row.sourceId), { deviceId: row.deviceId, sourceId: row.sourceId });
  const devices = [...pairs.values()].map((p) => p.deviceId);
  const sources = [...pairs.values()].map((p) => p.sourceId);
  await session.query(
    `insert into powerplane.datum_streams (device_id, source_id)
     select * from unnest($1::uuid[], $2::text[]) order by 1, 2
     on conflict (device_id, source_id) do nothing`,
    [devices, sources],
  );
  const streams = await session.query<StreamRow>(
    `select stream_id::text as stream_id, device_id::text as device_id, source_id, names_i, names_a, names_s
     from powerplane.datum_streams where (device_id, source_id) in (select * from unnest($1::uuid[], $2::text[]))
     order by stream_id for update`,
    [devices, sources],
  );
  const byKey = new Map<string, { id: string; names: DatumNames }>();
  for (const stream of streams) {
    const names: DatumNames = { i: stream.names_i, a: stream.names_a, s: stream.names_s };
    const members = rows.filter((r) => r.deviceId === stream.device_id && r.sourceId === stream.source_id);
    const next = extendNames(names, members);
    if (namesGrew(names, next)) {
      await session.query(`update powerplane.datum_streams set names_i = $2, names_a = $3, names_s = $4 where stream_id = $1`, [
        stream.stream_id,
        next.i,
        next.a,
        next.s,
      ]);
    }
    byKey.set(streamKey(stream.device_id, stream.source_id), { id: stream.stream_id, names: next });
  }
  const records = rows.map((row, ord) => {
    const stream = byKey.get(streamKey(row.deviceId, row.sourceId))!;
    const arrays = toArrays(stream.names, row);
    return { ord, stream_id: stream.id, ts: formatMicros(row.timeMicros), data_i: arrays.i, data_a: arrays.a, data_s: arrays.s };
  });
  const inserted = await session.query<{ ord: number }>(
    `with input as (select * from jsonb_to_recordset($1::jsonb)
       as x(ord int4, stream_id uuid, ts timestamptz, data_i float8[], data_a float8[], data_s text[])),
     ins as (insert into powerplane.datum_readings (stream_id, ts, data_i, data_a, data_s)
       select stream_id, ts, data_i, data_a, data_s from input order by stream_id, ts
       on conflict (stream_id, ts) do nothing returning stream_id, ts)
     select input.ord from input join ins using (stream_id, ts)`,
    [JSON.stringify(records)],
  );
  if (inserted.length === rows.length) return [];
  const done = new Set(inserted.map((r) => r.ord));
  const missing = records.filter((r) => !done.has(r.ord));
  const existing = await session.query<{ ord: number; data_i: number[] | null; data_a: number[] | null; data_s: string[] | null }>(
    `select x.ord, d.data_i, d.data_a, d.data_s
     from jsonb_to_recordset($1::jsonb) as x(ord int4, stream_id uuid, ts timestamptz)
     join powerplane.datum_readings d on d.stream_id = x.stream_id and d.ts = x.ts`,
    [JSON.stringify(missing.map(({ ord, stream_id, ts }) => ({ ord, stream_id, ts })))],
  );
  return existing.map((stored) => {
    const row = rows[stored.ord]!;
    const names = byKey.get(streamKey(row.deviceId, row.sourceId))!.names;
    const maps = toMaps(names, { i: stored.data_i, a: stored.data_a, s: stored.data_s });
    return { ord: stored.ord, same: sameMaps(maps, row), existing: { ...maps } };
  });
}

function streamKey(deviceId: string, sourceId: string): string {
  return `${deviceId}\u0000${sourceId}`;
}

/**
 * Renames a datum stream's source id: one metadata row changes, its readings follow.
 * Returns false when no stream has the old id, throws on a clash with an existing one.
 */
export async function renameDatumSource(session: WriteSession, deviceId: string, from: string, to: string): Promise<boolean> {
  const rows = await session.query(
    `update powerplane.datum_streams set source_id = $3 where device_id = $1 and source_id = $2 returning stream_id`,
    [deviceId, from, to],
  );
  return rows.length === 1;
}
