/** A raw meter row as read: time in microseconds since the epoch, quantities by column. */
export type MeterReadingRow = {
  device_id: string;
  time_us: number;
} & Record<string, number | string | null>;

/** A raw battery row as read. */
export type BessReadingRow = {
  device_id: string;
  time_us: number;
  soe: number | null;
  target_power: number | null;
  available_inverter_blocks: number | null;
  command_source: number | null;
};

/** One 5-minute roll-up row (columns named as the Flux 5-minute view). */
export type MeterAggregateRow = {
  device_id: string;
  time_b_us: number;
  reading_count: number;
  frequency_avg: number | null;
  voltage_line_average_avg: number | null;
  current_phase_average_avg: number | null;
  power_total_active_avg: number | null;
  power_total_reactive_avg: number | null;
  power_factor_total_avg: number | null;
  energy_imported_active_min: number | null;
  energy_imported_active_max: number | null;
  energy_exported_active_min: number | null;
  energy_exported_active_max: number | null;
};

/** One row of `flux.get_meter_readings_30m_status` (the seed function's columns and `complete`). */
export type SettlementRow = {
  device_id: string;
  time_b_us: number;
  power_total_active_avg: number | null;
  energy_imported_active_delta: number | null;
  energy_exported_active_delta: number | null;
  complete: boolean;
};

/** A datum stream's metadata row. */
export type DatumStreamRow = {
  stream_id: string;
  names_i: string[];
  names_a: string[];
  names_s: string[];
};

/** A datum reading row. */
export type DatumReadingRow = {
  time_us: number;
  data_i: (number | null)[] | null;
  data_a: (number | null)[] | null;
  data_s: (string | null)[] | null;
};
