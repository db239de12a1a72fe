/**
 * The SQL of a batch upsert of devices: each statement takes the whole batch as one JSON
 * parameter (`jsonb_to_recordset`), so a batch of thousands of devices costs a handful of
 * round trips, never one per device. Statements return only the columns the batch cannot
 * know (ids, creation times, what is registered): every device's metadata is the batch's
 * own, and reading it back would move megabytes for nothing.
 */
import { sql, type Kysely } from 'kysely';
import type { JsonObject } from './registered-device.ts';
import type { RegistryTables } from './registry.table.ts';

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

/** A device of a batch as stored: its (site, name), type and `metadata` column. */
export interface WantedDevice {
  readonly site: string;
  readonly name: string;
  readonly type: string;
  readonly metadata: JsonObject;
}

/** A registered device with the (site, name) of a device of the batch. */
export interface NameMatch {
  readonly id: string;
  readonly site: string;
  readonly name: string;
  readonly type: string;
  /** Null on rows written by other Flux tools, which counts as active. */
  readonly active: boolean | null;
  readonly created_at: Date;
  /** Its `metadata` equals the batch device's, as `jsonb` compares (key order aside). */
  readonly same: boolean;
}

/**
 * Every registered device, active or not, whose (site, name) is one of `wanted`'s, with
 * whether its metadata equals that device's; with `lock`, their rows are locked until the
 * transaction ends, so they stay as read until the batch is written.
 */
export async function findDevicesByName(db: Db, wanted: readonly WantedDevice[], lock: boolean): Promise<NameMatch[]> {
  const keys = wanted.map(({ site, name, metadata }) => ({ site, name, metadata }));
  const { rows } = await sql<NameMatch>`
    select r.id, r.site, r.name, r.type, r.active, r.created_at, r.metadata is not distinct from k.metadata as same
    from flux.mg_device_registry r
    join jsonb_to_recordset(${JSON.stringify(keys)}::jsonb) as k(site text, name text, metadata jsonb)
      on r.site = k.site and r.name = k.name
    ${lock ? sql`for update of r` : sql``}`.execute(db);
  return rows;
}

/** A device inserted by {@link insertDevices}. */
export interface InsertedDevice {
  readonly id: string;
  readonly site: string;
  readonly name: string;
  readonly created_at: Date;
}

/** Inserts `devices`, active, in one statement; returns their ids in no particular order. */
export async function insertDevices(db: Db, devices: readonly WantedDevice[]): Promise<InsertedDevice[]> {
  if (devices.length === 0) return [];
  const { rows } = await sql<InsertedDevice>`
    insert into flux.mg_device_registry (name, type, site, metadata, active)
    select x.name, x.type, x.site, x.metadata, true
    from jsonb_to_recordset(${JSON.stringify(devices)}::jsonb) as x(name text, type text, site text, metadata jsonb)
    returning id, site, name, created_at`.execute(db);
  return rows;
}

/** New metadata for a registered device. */
export interface DeviceChange {
  readonly id: string;
  readonly metadata: JsonObject;
}

/**
 * Replaces the metadata of the devices `changes` name and makes them active, in one
 * statement; returns how many it changed. Names, sites and types stay.
 */
export async function updateDevices(db: Db, changes: readonly DeviceChange[]): Promise<number> {
  if (changes.length === 0) return 0;
  const result = await sql`
    update flux.mg_device_registry r set metadata = x.metadata, active = true
    from jsonb_to_recordset(${JSON.stringify(changes)}::jsonb) as x(id uuid, metadata jsonb)
    where r.id = x.id`.execute(db);
  return Number(result.numAffectedRows ?? 0);
}
