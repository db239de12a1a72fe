import type { ColumnType, Generated, Selectable } from 'kysely';
import type { JsonObject } from '../registry/registered-device.ts';

/** `flux.market_data`, as the Flux schema defines it. */
export interface MarketDataTable {
  id: Generated<string>;
  time: Date;
  type: number;
  value: number;
  metadata: ColumnType<JsonObject | null, string | null, never>;
  created_at: ColumnType<Date, unknown, never>;
}

/** `flux.market_data_types`. */
export interface MarketDataTypesTable {
  id: number;
  name: string;
  description: string | null;
  unit: string | null;
}

/** The tables the market-data domain reads and writes. */
export type MarketTables = {
  'flux.market_data': MarketDataTable;
  'flux.market_data_types': MarketDataTypesTable;
};

/** `powerplane.dispatch_instructions`: one row per submitted interval. */
export interface DispatchInstructionsTable {
  id: Generated<string>;
  request_id: string;
  site: string | null;
  device_id: string | null;
  start_time: Date;
  end_time: Date;
  power_kw: number | null;
  action: string | null;
  priority: number;
  principal: string;
  created_at: Generated<Date>;
  cancelled_at: Date | null;
  cancel_reason: string | null;
  /** Who cancelled it; null when not cancelled (or cancelled before migration 0013). */
  cancelled_by: ColumnType<string | null, string | null | undefined, string | null>;
}
export type DispatchInstructionRow = Selectable<DispatchInstructionsTable>;

/**
 * `powerplane.control_overrides`: the operator's manual setpoint per battery. A released
 * override stays, marked, until the next one replaces it (the history names who released it).
 */
export interface ControlOverridesTable {
  device_id: string;
  power_kw: number;
  expire_time: Date;
  reason: string;
  principal: string;
  created_at: Generated<Date>;
  released_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
  released_by: ColumnType<string | null, string | null | undefined, string | null>;
}
export type ControlOverrideRow = Selectable<ControlOverridesTable>;

/** `powerplane.command_source_state`: who each battery is meant to be under now. */
export interface CommandSourceStateTable {
  device_id: string;
  source: number;
  reason: string;
  instruction_id: string | null;
  principal: string | null;
  changed_at: Generated<Date>;
  /** What drives the battery, as a comparable key (see `control/intended-source.ts`); null before migration 0013. */
  cause: ColumnType<string | null, string | null | undefined, string | null>;
  /** The replica that stored the row and its shard's epoch then; null for a write made without a lease. */
  replica: ColumnType<string | null, string | null | undefined, string | null>;
  epoch: ColumnType<string | null, number | null | undefined, number | null>;
}
export type CommandSourceStateRow = Selectable<CommandSourceStateTable>;

/** `powerplane.command_source_history`: every change of intended source, append-only. */
export interface CommandSourceHistoryTable {
  id: Generated<string>;
  device_id: string;
  source: number;
  previous_source: number | null;
  reason: string;
  instruction_id: string | null;
  principal: string | null;
  changed_at: Generated<Date>;
  /** The replica that made the change and its shard's epoch then; null for a change made without a lease. */
  replica: ColumnType<string | null, string | null | undefined, string | null>;
  epoch: ColumnType<string | null, number | null | undefined, number | null>;
}

/** `powerplane.setpoint_events`: every step of every setpoint, append-only. */
export interface SetpointEventsTable {
  id: Generated<string>;
  setpoint_id: string;
  device_id: string;
  site: string;
  phase: string;
  target_power_kw: number;
  command_source: number;
  instruction_id: string | null;
  principal: string | null;
  reason: string | null;
  elapsed_ms: number;
  at: Date;
  /** The replica that recorded the event and its shard's epoch then; null for an event recorded without them. */
  replica: ColumnType<string | null, string | null | undefined, string | null>;
  epoch: ColumnType<string | null, number | null | undefined, number | null>;
}

/** `powerplane.site_config`: each site's control settings, whole. */
export interface SiteConfigTable {
  site: string;
  config: ColumnType<JsonObject, string, string>;
  principal: string;
  updated_at: Generated<Date>;
}

/** The tables the dispatch domain reads and writes. */
export type DispatchTables = MarketTables & {
  'powerplane.site_config': SiteConfigTable;
  'powerplane.dispatch_instructions': DispatchInstructionsTable;
  'powerplane.control_overrides': ControlOverridesTable;
  'powerplane.command_source_state': CommandSourceStateTable;
  'powerplane.command_source_history': CommandSourceHistoryTable;
  'powerplane.setpoint_events': SetpointEventsTable;
};
