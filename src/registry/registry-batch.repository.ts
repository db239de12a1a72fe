/**
 * The SQL of a batch upsert of devices: each statement takes the whole batch as one JSON
 * parameter (`jsonb_to_recordset`), so a batch of thousands of devices costs a handful of
 * round trips, never one per device.
 */
import { sql, type Kysely } from 'kysely';
import type { JsonObject } from './registered-device.ts';
import type { DeviceRow, RegistryTables } from './registry.table.ts';

type Db = Kysely<RegistryTables>;

/**
 * Key of the transaction-level advisory lock batch upserts take, so two batches naming
 * the same (site, name) run one after the other and the second matches what the first
 * created instead of creating it again. Any fixed number no other lock uses.
 */
const BATCH_LOCK_KEY = 7_203_318_404;

/** Waits for and takes the batch upsert lock until `trx`'s transaction ends. */
export async function lockBatchUpserts(trx: Db): Promise<void> {
  await sql`select pg_advisory_xact_lock(${BATCH_LOCK_KEY}::int8)`.execute(trx);
}

/** A device name at a site: how a batch names the registered device it means. */
export interface SiteName {
  readonly site: string;
  readonly name: string;
}

/**
 * Every registered device, active or not, whose (site, name) is one of `keys`; with
 * `lock`, their rows are locked until the transaction ends, so they stay as read until
 * the batch is written.
 */
export async function findDevicesByName(db: Db, keys: readonly SiteName[], lock: boolean): Promise<DeviceRow[]> {
  const { rows } = await sql<DeviceRow>`
    select r.* from flux.mg_device_registry r
    where (r.site, r.name) in (select k.site, k.name from jsonb_to_recordset(${JSON.stringify(keys)}::jsonb) as k(site text, name text))
    ${lock ? sql`for update of r` : sql``}`.execute(db);
  return rows;
}

/** A device to insert, its metadata as stored (typed specs included). */
export interface NewDevice extends SiteName {
  readonly type: string;
  readonly metadata: JsonObject;
}

/** Inserts `devices`, active, in one statement; returns the stored rows in no particular order. */
export async function insertDevices(db: Db, devices: readonly NewDevice[]): Promise<DeviceRow[]> {
  if (devices.length === 0) return [];
  const { rows } = await sql<DeviceRow>`
    insert into flux.mg_device_registry (name, type, site, metadata, active)
    select x.name, x.type, x.site, x.metadata, true
    from jsonb_to_recordset(${JSON.stringify(devices)}::jsonb) as x(name text, type text, site text, metadata jsonb)
    returning *`.execute(db);
  return rows;
}

/** New metadata for a registered device. */
export interface DeviceChange {
  readonly id: string;
  readonly metadata: JsonObject;
}

/**
 * Replaces the metadata of the devices `changes` name and makes them active, in one
 * statement; returns the stored rows in no particular order. Names, sites and types stay.
 */
export async function updateDevices(db: Db, changes: readonly DeviceChange[]): Promise<DeviceRow[]> {
  if (changes.length === 0) return [];
  const { rows } = await sql<DeviceRow>`
    update flux.mg_device_registry r set metadata = x.metadata, active = true
    from jsonb_to_recordset(${JSON.stringify(changes)}::jsonb) as x(id uuid, metadata jsonb)
    where r.id = x.id
    returning r.*`.execute(db);
  return rows;
}
