import type { ColumnType, Generated, Insertable, Selectable } from 'kysely';
import type { JsonObject } from './registered-device.ts';

/** `flux.mg_device_registry`, exactly as the Flux schema defines it. */
export interface DeviceRegistryTable {
  id: Generated<string>;
  created_at: Generated<Date>;
  name: string;
  type: string;
  site: string;
  /** Typed specs under `bess` / `meter` (snake_case keys), free-form keys beside them. */
  metadata: ColumnType<JsonObject | null, string | null, string | null>;
  active: ColumnType<boolean | null, boolean | undefined, boolean>;
}

export type DeviceRow = Selectable<DeviceRegistryTable>;
export type NewDeviceRow = Insertable<DeviceRegistryTable>;

/** The tables the registry domain reads and writes. */
export type RegistryTables = {
  'flux.mg_device_registry': DeviceRegistryTable;
};
