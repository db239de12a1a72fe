import { sql, type Kysely, type RawBuilder } from 'kysely';
import { anyUuid } from '../storage/any-uuid.ts';
import { writeWithNotice } from '../storage/write-with-notice.ts';
import {
  DEVICE_DEFAULTS,
  DEVICE_TYPES,
  type BessSpec,
  type Device,
  type DeviceInput,
  type DeviceType,
  type JsonObject,
  type JsonValue,
  type ModbusAccess,
} from './registered-device.ts';
import type { DeviceRow, RegistryTables } from './registry.table.ts';

type Db = Kysely<RegistryTables>;
const TABLE = 'flux.mg_device_registry' as const;

/** Filters of {@link listDevices}. */
export interface DeviceFilter {
  readonly site?: string;
  readonly type?: DeviceType;
  readonly active?: boolean;
}

/** A keyset position in the (site, name, id) order. */
export type DeviceCursor = readonly [site: string, name: string, id: string];

/** Inserts a device and returns it as stored, with `notice` sent in the same statement. */
export async function insertDevice(db: Db, input: DeviceInput, notice?: RawBuilder<unknown>): Promise<Device> {
  const insert = db
    .insertInto(TABLE)
    .values({ name: input.name, type: input.type, site: input.site, metadata: JSON.stringify(toMetadata(input)), active: true })
    .returningAll();
  const [row] = await writeWithNotice(db, insert, notice);
  return toDevice(row!);
}

/** Finds a device by id, active or not; with `lock`, locks its row until the transaction ends. */
export async function findDeviceById(db: Db, id: string, lock = false): Promise<Device | undefined> {
  const query = db.selectFrom(TABLE).selectAll().where('id', '=', id);
  const row = await (lock ? query.forUpdate() : query).executeTakeFirst();
  return row ? toDevice(row) : undefined;
}

/** The devices of `ids` that exist, active or not, in one query; order unspecified. */
export async function findDevicesByIds(db: Db, ids: readonly string[]): Promise<Device[]> {
  if (ids.length === 0) return [];
  const rows = await db
    .selectFrom(TABLE)
    .selectAll()
    .where('id', '=', anyUuid([...new Set(ids)]))
    .execute();
  return rows.map(toDevice);
}

/** Lists devices in (site, name, id) order after `after`, at most `limit`. */
export async function listDevices(db: Db, filter: DeviceFilter, limit: number, after?: DeviceCursor): Promise<Device[]> {
  let query = db
    .selectFrom(TABLE)
    .selectAll()
    .where('type', 'in', [...DEVICE_TYPES]);
  if (filter.site !== undefined) query = query.where('site', '=', filter.site);
  if (filter.type !== undefined) query = query.where('type', '=', filter.type);
  if (filter.active === true) query = query.where((eb) => eb.or([eb('active', '=', true), eb('active', 'is', null)]));
  if (filter.active === false) query = query.where('active', '=', false);
  if (after) query = query.where((eb) => eb(eb.refTuple('site', 'name', 'id'), '>', eb.tuple(after[0], after[1], after[2])));
  const rows = await query.orderBy('site').orderBy('name').orderBy('id').limit(limit).execute();
  return rows.map(toDevice);
}

/** How many active batteries a site has and their summed ratings, kW. */
export interface SiteRating {
  readonly batteries: number;
  readonly ratedChargePowerKw: number;
  readonly ratedDischargePowerKw: number;
}

/**
 * The active batteries of `site`, counted, and their charge and discharge ratings summed in
 * the database (a rating that is not a number counts 0, as {@link toDevice} reads it): one
 * row, whatever the site's size, where listing the batteries moves every row.
 */
export async function findSiteRating(db: Db, site: string): Promise<SiteRating> {
  const rating = (key: string) =>
    sql<number>`coalesce(sum(case when jsonb_typeof(metadata->'bess'->${key}) = 'number'
      then (metadata->'bess'->>${key})::float8 else 0 end), 0)`;
  const { rows } = await sql<{ batteries: number; charge: number; discharge: number }>`
    select count(*)::int as batteries, ${rating('rated_charge_power_kw')} as charge, ${rating('rated_discharge_power_kw')} as discharge
    from flux.mg_device_registry where site = ${site} and type = 'bess' and coalesce(active, true)`.execute(db);
  const row = rows[0]!;
  return { batteries: row.batteries, ratedChargePowerKw: Number(row.charge), ratedDischargePowerKw: Number(row.discharge) };
}

/** Replaces a device's mutable fields; returns the stored device or undefined if absent. */
export async function updateDevice(db: Db, id: string, input: DeviceInput & { active: boolean }): Promise<Device | undefined> {
  const row = await db
    .updateTable(TABLE)
    .set({ name: input.name, site: input.site, metadata: JSON.stringify(toMetadata(input)), active: input.active })
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirst();
  return row ? toDevice(row) : undefined;
}

/** Marks a device inactive; returns it, or undefined if absent. */
export async function deactivateDevice(db: Db, id: string): Promise<Device | undefined> {
  const row = await db.updateTable(TABLE).set({ active: false }).where('id', '=', id).returningAll().executeTakeFirst();
  return row ? toDevice(row) : undefined;
}

/** A device's `metadata` column as stored: the free-form keys with the typed specification under `bess` or `meter`. */
export function toMetadata(input: DeviceInput): JsonObject {
  const metadata: JsonObject = { ...input.metadata };
  if (input.bess) metadata.bess = bessToJson(input.bess);
  if (input.meter) metadata.meter = { modbus: modbusToJson(input.meter.modbus) };
  return metadata;
}

function bessToJson(bess: BessSpec): JsonObject {
  return {
    rated_charge_power_kw: bess.ratedChargePowerKw,
    rated_discharge_power_kw: bess.ratedDischargePowerKw,
    capacity_kwh: bess.capacityKwh,
    min_soe_percent: bess.minSoePercent,
    max_soe_percent: bess.maxSoePercent,
    inverter_block_count: bess.inverterBlockCount,
    ramp_rate_kw_per_s: bess.rampRateKwPerS,
    reversion_timeout_s: bess.reversionTimeoutS,
    modbus: modbusToJson(bess.modbus),
  };
}

function modbusToJson(modbus: ModbusAccess): JsonObject {
  return {
    host: modbus.host,
    port: modbus.port,
    unit_id: modbus.unitId,
    register_profile: modbus.registerProfile,
    polling_interval_ms: modbus.pollingIntervalMs,
    ...(modbus.registerMap ? { register_map: modbus.registerMap } : {}),
    ...(modbus.relay ? { relay: true } : {}),
  };
}

/**
 * Maps a registry row to the domain type (also for queries of other domains that join the
 * registry). Rows written by other Flux tools may lack a typed spec.
 */
export function toDevice(row: DeviceRow): Device {
  const { bess, meter, ...metadata } = row.metadata ?? {};
  const bessSpec = isObject(bess) ? bessFromJson(bess) : undefined;
  const meterModbus = isObject(meter) && isObject(meter.modbus) ? modbusFromJson(meter.modbus) : undefined;
  return {
    id: row.id,
    name: row.name,
    type: row.type as DeviceType,
    site: row.site,
    active: row.active !== false,
    createdAt: row.created_at,
    ...(bessSpec ? { bess: bessSpec } : {}),
    ...(meterModbus ? { meter: { modbus: meterModbus } } : {}),
    metadata,
  };
}

function bessFromJson(json: JsonObject): BessSpec {
  return {
    ratedChargePowerKw: num(json.rated_charge_power_kw, 0),
    ratedDischargePowerKw: num(json.rated_discharge_power_kw, 0),
    capacityKwh: num(json.capacity_kwh, 0),
    minSoePercent: num(json.min_soe_percent, 0),
    maxSoePercent: num(json.max_soe_percent, DEVICE_DEFAULTS.maxSoePercent),
    inverterBlockCount: num(json.inverter_block_count, DEVICE_DEFAULTS.inverterBlockCount),
    rampRateKwPerS: num(json.ramp_rate_kw_per_s, 0),
    reversionTimeoutS: num(json.reversion_timeout_s, DEVICE_DEFAULTS.reversionTimeoutS),
    modbus: modbusFromJson(isObject(json.modbus) ? json.modbus : {}),
  };
}

function modbusFromJson(json: JsonObject): ModbusAccess {
  return {
    host: typeof json.host === 'string' ? json.host : '',
    port: num(json.port, DEVICE_DEFAULTS.modbusPort),
    unitId: num(json.unit_id, DEVICE_DEFAULTS.unitId),
    registerProfile: (typeof json.register_profile === 'string' ? json.register_profile : 'sunspec') as ModbusAccess['registerProfile'],
    pollingIntervalMs: num(json.polling_interval_ms, DEVICE_DEFAULTS.pollingIntervalMs),
    ...(isObject(json.register_map) ? { registerMap: json.register_map } : {}),
    ...(json.relay === true ? { relay: true } : {}),
  };
}

function num(value: JsonValue | undefined, fallback: number): number {
  return typeof value === 'number' ? value : fallback;
}

function isObject(value: JsonValue | undefined): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
