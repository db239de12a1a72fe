/**
 * How readings are stored, as both ingest (which writes them) and queries (which read them)
 * name them: the meter quantities in column order and the text form of a stored time.
 * Times are whole microseconds since the Unix epoch, PostgreSQL's resolution.
 */

/** One quantity of `flux.mg_meter_readings`: its column and its API field name. */
export interface MeterQuantity {
  /** Column of `flux.mg_meter_readings` (`real`). */
  readonly column: string;
  /** Field of the API's MeterReading, snake_case, as named in rejections. */
  readonly field: string;
}

/** The meter quantities in column order; `MeterRow.values` follows this order. */
export const METER_QUANTITIES: readonly MeterQuantity[] = [
  { column: 'frequency', field: 'frequency_hz' },
  { column: 'voltage_line_average', field: 'voltage_line_average_v' },
  { column: 'current_phase_a', field: 'current_phase_a_a' },
  { column: 'current_phase_b', field: 'current_phase_b_a' },
  { column: 'current_phase_c', field: 'current_phase_c_a' },
  { column: 'current_phase_average', field: 'current_phase_average_a' },
  { column: 'power_phase_a_active', field: 'power_phase_a_active_kw' },
  { column: 'power_phase_b_active', field: 'power_phase_b_active_kw' },
  { column: 'power_phase_c_active', field: 'power_phase_c_active_kw' },
  { column: 'power_total_active', field: 'power_total_active_kw' },
  { column: 'power_total_reactive', field: 'power_total_reactive_kvar' },
  { column: 'power_total_apparent', field: 'power_total_apparent_kva' },
  { column: 'power_factor_total', field: 'power_factor_total' },
  { column: 'energy_imported_active', field: 'energy_imported_active_kwh' },
  { column: 'energy_exported_active', field: 'energy_exported_active_kwh' },
  { column: 'energy_imported_phase_a_active', field: 'energy_imported_phase_a_active_kwh' },
  { column: 'energy_exported_phase_a_active', field: 'energy_exported_phase_a_active_kwh' },
  { column: 'energy_imported_phase_b_active', field: 'energy_imported_phase_b_active_kwh' },
  { column: 'energy_exported_phase_b_active', field: 'energy_exported_phase_b_active_kwh' },
  { column: 'energy_imported_phase_c_active', field: 'energy_imported_phase_c_active_kwh' },
  { column: 'energy_exported_phase_c_active', field: 'energy_exported_phase_c_active_kwh' },
  { column: 'energy_imported_reactive', field: 'energy_imported_reactive_kvarh' },
  { column: 'energy_exported_reactive', field: 'energy_exported_reactive_kvarh' },
  { column: 'energy_imported_apparent', field: 'energy_imported_apparent_kvah' },
  { column: 'energy_exported_apparent', field: 'energy_exported_apparent_kvah' },
];

/** Formats microseconds since the epoch as an RFC 3339 time with microseconds. */
export function formatMicros(micros: number): string {
  const millis = Math.floor(micros / 1_000);
  const iso = new Date(millis).toISOString();
  const rest = String(micros - millis * 1_000).padStart(3, '0');
  return `${iso.slice(0, 23)}${rest}Z`;
}
