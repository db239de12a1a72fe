/**
 * The fleet file as CSV: one device per record under a header row, the columns of
 * {@link CSV_COLUMNS} (plus {@link EXTRA_CSV_COLUMNS}), in any order. An empty cell, or a
 * column left out, takes the API's default for the field (its zero value). What the API
 * itself checks (positive ratings, port ranges, register map rules) is left to the
 * server, whose error the importer maps back to the line and column here.
 */
import { create, type JsonObject } from '@bufbuild/protobuf';
import { DeviceSchema, DeviceType, RegisterProfile, type Device } from '../../gen/powerplane/v1/devices_pb.ts';
import { CsvSyntaxError, formatCsvRecord, parseCsv, type CsvRecord } from './csv.ts';
import {
  DeviceFileError,
  digestOf,
  parseJsonObject,
  type DeviceFile,
  type FileProblem,
  type RegisterMaps,
  type SourceDevice,
} from './device-file.ts';

/** The columns of a fleet CSV, in the order export writes them. */
export const CSV_COLUMNS = [
  'name',
  'site',
  'type',
  'host',
  'port',
  'unit_id',
  'profile',
  'rated_charge_power_kw',
  'rated_discharge_power_kw',
  'capacity_kwh',
  'min_soe_percent',
  'max_soe_percent',
  'inverter_block_count',
  'ramp_rate_kw_per_s',
  'reversion_timeout_s',
  'relay',
] as const;

/**
 * Columns a fleet CSV may add, and export adds when a device needs them: `register_map`
 * (a custom device's map, as a file path relative to the CSV's folder or as the JSON
 * object itself), `polling_interval_ms` and `metadata` (a JSON object).
 */
export const EXTRA_CSV_COLUMNS = ['register_map', 'polling_interval_ms', 'metadata'] as const;

type Column = (typeof CSV_COLUMNS)[number] | (typeof EXTRA_CSV_COLUMNS)[number];
const KNOWN: readonly Column[] = [...CSV_COLUMNS, ...EXTRA_CSV_COLUMNS];
const REQUIRED: readonly Column[] = ['name', 'site', 'type', 'host'];
/** Columns of a battery's ratings: a meter's are empty. */
const BESS_ONLY: readonly Column[] = [
  'rated_charge_power_kw',
  'rated_discharge_power_kw',
  'capacity_kwh',
  'min_soe_percent',
  'max_soe_percent',
  'inverter_block_count',
  'ramp_rate_kw_per_s',
  'reversion_timeout_s',
];

const PROFILES: Readonly<Record<string, RegisterProfile>> = {
  sunspec: RegisterProfile.SUNSPEC,
  'tesla-powerpack': RegisterProfile.TESLA_POWERPACK,
  custom: RegisterProfile.CUSTOM,
};

/** What reading a fleet CSV needs besides its text. */
export interface CsvReadOptions {
  /** The file's name, for error messages. */
  readonly file: string;
  /** The maps of `--register-map`, for custom devices whose `register_map` cell is empty. */
  readonly registerMaps: RegisterMaps;
  /** Reads the map file a `register_map` cell names; throws an Error saying why it cannot. */
  readonly readRegisterMap: (name: string) => JsonObject;
}

/** A cell that cannot be read. */
class CellError extends Error {
  constructor(
    readonly column: Column,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Reads a fleet CSV into devices. Throws {@link DeviceFileError} listing every bad
 * record by line and column (a malformed file stops at its first syntax error).
 */
export function devicesFromCsv(text: string, options: CsvReadOptions): DeviceFile {
  let records: CsvRecord[];
  try {
    records = parseCsv(text);
  } catch (err) {
    if (!(err instanceof CsvSyntaxError)) throw err;
    throw new DeviceFileError(options.file, [{ where: `line ${err.line}`, message: err.message.slice(err.message.indexOf(': ') + 2) }]);
  }
  const [header, ...rows] = records;
  if (!header)
    throw new DeviceFileError(options.file, [{ where: 'line 1', message: `the header row is missing (${CSV_COLUMNS.join(',')})` }]);
  const index = readHeader(header, options.file);
  const locate = (line: number, field: string) => {
    const column = columnOf(field);
    return column ? `line ${line}, column ${column}` : `line ${line}${field ? `, field ${field}` : ''}`;
  };
  const devices: SourceDevice[] = [];
  const problems: FileProblem[] = [];
  for (const row of rows) {
    if (row.cells.length !== header.cells.length) {
      problems.push({ where: `line ${row.line}`, message: `has ${row.cells.length} cells, the header ${header.cells.length}` });
      continue;
    }
    const cell = (column: Column) => {
      const k = index.get(column);
      if (k === undefined) return '';
      return row.quoted[k] ? row.cells[k]! : row.cells[k]!.trim();
    };
    try {
      devices.push({ line: row.line, device: deviceFromCells(cell, options) });
    } catch (err) {
      if (!(err instanceof CellError)) throw err;
      problems.push({ where: `line ${row.line}, column ${err.column}`, message: err.message });
    }
  }
  if (problems.length > 0) throw new DeviceFileError(options.file, problems);
  return { devices, digest: digestOf(text), locate };
}

function readHeader(header: CsvRecord, file: string): Map<Column, number> {
  const index = new Map<Column, number>();
  const problems: string[] = [];
  header.cells.forEach((raw, k) => {
    const name = raw.trim();
    if (!KNOWN.includes(name as Column)) problems.push(`unknown column ${JSON.stringify(name)}`);
    else if (index.has(name as Column)) problems.push(`column ${name} appears twice`);
    else index.set(name as Column, k);
  });
  const missing = REQUIRED.filter((c) => !index.has(c));
  if (missing.length > 0) problems.push(`missing column${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`);
  if (problems.length > 0)
    throw new DeviceFileError(file, [{ where: `line ${header.line}`, message: `${problems.join('; ')} (columns: ${KNOWN.join(',')})` }]);
  return index;
}

function deviceFromCells(cell: (column: Column) => string, options: CsvReadOptions): Device {
  const type = deviceType(cell('type'));
  const isBess = type === DeviceType.BESS;
  if (!isBess) {
    for (const column of BESS_ONLY)
      if (cell(column) !== '')
        throw new CellError(column, `is for batteries; leave it empty for a meter (got ${JSON.stringify(cell(column))})`);
  }
  const { registerProfile, registerMap } = layout(cell, isBess ? options.registerMaps.bess : options.registerMaps.meter, options);
  const modbus = {
    endpoint: { host: cell('host'), port: whole(cell, 'port'), unitId: whole(cell, 'unit_id') },
    registerProfile,
    ...(registerMap ? { registerMap } : {}),
    pollingIntervalMs: whole(cell, 'polling_interval_ms'),
    relay: bool(cell, 'relay'),
  };
  const metadata = cell('metadata') === '' ? undefined : jsonCell(cell, 'metadata');
  return create(DeviceSchema, {
    name: cell('name'),
    site: cell('site'),
    type,
    spec: isBess
      ? {
          case: 'bess',
          value: {
            ratedChargePowerKw: decimal(cell, 'rated_charge_power_kw'),
            ratedDischargePowerKw: decimal(cell, 'rated_discharge_power_kw'),
            capacityKwh: decimal(cell, 'capacity_kwh'),
            minSoePercent: decimal(cell, 'min_soe_percent'),
            maxSoePercent: decimal(cell, 'max_soe_percent'),
            inverterBlockCount: whole(cell, 'inverter_block_count'),
            rampRateKwPerS: decimal(cell, 'ramp_rate_kw_per_s'),
            reversionTimeoutS: whole(cell, 'reversion_timeout_s'),
            modbus,
          },
        }
      : { case: 'meter', value: { modbus } },
    ...(metadata ? { metadata } : {}),
  });
}

function deviceType(value: string): DeviceType {
  if (value === 'bess') return DeviceType.BESS;
  if (value === 'meter') return DeviceType.METER;
  throw new CellError('type', `must be bess or meter (got ${JSON.stringify(value)})`);
}

/**
 * The register profile and map of a record: the profile cell, defaulting to `custom` when
 * the record has a map and to `sunspec` otherwise; a custom device's map is its
 * `register_map` cell (a file name or the JSON object itself), else the `--register-map`
 * map of its type.
 */
function layout(
  cell: (column: Column) => string,
  typeMap: JsonObject | undefined,
  options: CsvReadOptions,
): { registerProfile: RegisterProfile; registerMap?: JsonObject } {
  const given = cell('register_map');
  const name = cell('profile') || (given ? 'custom' : 'sunspec');
  const registerProfile = PROFILES[name];
  if (registerProfile === undefined)
    throw new CellError('profile', `must be ${Object.keys(PROFILES).join(', ')} or empty for sunspec (got ${JSON.stringify(name)})`);
  if (registerProfile !== RegisterProfile.CUSTOM) {
    if (given) throw new CellError('register_map', `is for the custom profile, not ${name}; leave it empty or set profile to custom`);
    return { registerProfile };
  }
  if (given.startsWith('{')) return { registerProfile, registerMap: jsonCell(cell, 'register_map') };
  if (given) {
    try {
      return { registerProfile, registerMap: options.readRegisterMap(given) };
    } catch (err) {
      throw new CellError('register_map', (err as Error).message);
    }
  }
  if (typeMap) return { registerProfile, registerMap: typeMap };
  throw new CellError('profile', 'custom needs a register map: a register_map column, or --register-map FILE for its type');
}

/** A cell holding a JSON object. */
function jsonCell(cell: (column: Column) => string, column: Column): JsonObject {
  try {
    return parseJsonObject(cell(column), column);
  } catch (err) {
    throw new CellError(column, (err as Error).message.slice(column.length + 2));
  }
}

/** A decimal number as people write one (no hex, no `Infinity`). */
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

function decimal(cell: (column: Column) => string, column: Column): number {
  const value = cell(column);
  if (value === '') return 0;
  const n = Number(value);
  if (!DECIMAL.test(value) || !Number.isFinite(n)) throw new CellError(column, `must be a number (got ${JSON.stringify(value)})`);
  return n;
}

function whole(cell: (column: Column) => string, column: Column): number {
  const value = cell(column);
  const n = decimal(cell, column);
  if (!Number.isInteger(n) || n < 0 || n > 0xffff_ffff)
    throw new CellError(column, `must be a whole number not below 0 (got ${JSON.stringify(value)})`);
  return n;
}

function bool(cell: (column: Column) => string, column: Column): boolean {
  const value = cell(column).toLowerCase();
  if (value === '' || value === 'false') return false;
  if (value === 'true') return true;
  throw new CellError(column, `must be true, false or empty for false (got ${JSON.stringify(cell(column))})`);
}

/** The column of each field below a device's `modbus`. */
const MODBUS_COLUMNS: Readonly<Record<string, Column>> = {
  endpoint: 'host',
  'endpoint.host': 'host',
  'endpoint.port': 'port',
  'endpoint.unit_id': 'unit_id',
  register_profile: 'profile',
  polling_interval_ms: 'polling_interval_ms',
  relay: 'relay',
};

/**
 * The CSV column that holds an API field path below a device (`bess.min_soe_percent` →
 * `min_soe_percent`, `meter.modbus.endpoint.port` → `port`); undefined when none does.
 */
export function columnOf(field: string): Column | undefined {
  const head = field.split(/[.[]/)[0];
  if (head === 'name' || head === 'site' || head === 'type' || head === 'metadata') return head;
  if (field === 'bess' || field === 'meter') return 'type';
  const modbus = /^(?:bess|meter)\.modbus\.(.+)$/.exec(field)?.[1];
  if (modbus !== undefined) return /^register_map(\.|\[|$)/.test(modbus) ? 'register_map' : MODBUS_COLUMNS[modbus];
  const rating = /^bess\.([a-z_]+)$/.exec(field)?.[1];
  return BESS_ONLY.find((c) => c === rating);
}

/**
 * Writes devices as a fleet CSV that {@link devicesFromCsv} reads back into the same
 * devices: the columns of {@link CSV_COLUMNS}, then each extra column that some device
 * needs (a custom map, a polling interval other than the default, metadata). A custom
 * device's map is written into its cell as JSON.
 */
export function devicesToCsv(devices: readonly Device[]): string {
  const modbusOf = (d: Device) => (d.spec.case === 'bess' || d.spec.case === 'meter' ? d.spec.value.modbus : undefined);
  const extras = EXTRA_CSV_COLUMNS.filter((column) =>
    devices.some((d) => {
      if (column === 'register_map') return modbusOf(d)?.registerMap !== undefined;
      if (column === 'polling_interval_ms') return (modbusOf(d)?.pollingIntervalMs ?? 0) !== DEFAULT_POLLING_MS;
      return Object.keys(d.metadata ?? {}).length > 0;
    }),
  );
  const columns: readonly Column[] = [...CSV_COLUMNS, ...extras];
  let out = formatCsvRecord(columns);
  for (const device of devices) {
    const cells = deviceCells(device);
    out += formatCsvRecord(columns.map((c) => cells[c] ?? ''));
  }
  return out;
}

/** The polling interval the API gives a device whose request leaves it 0. */
const DEFAULT_POLLING_MS = 1000;

function deviceCells(d: Device): Partial<Record<Column, string>> {
  const modbus = d.spec.case === 'bess' || d.spec.case === 'meter' ? d.spec.value.modbus : undefined;
  const profile = Object.entries(PROFILES).find(([, p]) => p === modbus?.registerProfile)?.[0] ?? '';
  const cells: Partial<Record<Column, string>> = {
    name: d.name,
    site: d.site,
    type: d.type === DeviceType.BESS ? 'bess' : d.type === DeviceType.METER ? 'meter' : '',
    host: modbus?.endpoint?.host ?? '',
    port: String(modbus?.endpoint?.port ?? ''),
    unit_id: String(modbus?.endpoint?.unitId ?? ''),
    profile,
    register_map: modbus?.registerMap ? JSON.stringify(modbus.registerMap) : '',
    polling_interval_ms: modbus ? String(modbus.pollingIntervalMs) : '',
    metadata: d.metadata && Object.keys(d.metadata).length > 0 ? JSON.stringify(d.metadata) : '',
  };
  if (d.spec.case === 'bess') {
    const b = d.spec.value;
    Object.assign(cells, {
      rated_charge_power_kw: String(b.ratedChargePowerKw),
      rated_discharge_power_kw: String(b.ratedDischargePowerKw),
      capacity_kwh: String(b.capacityKwh),
      min_soe_percent: String(b.minSoePercent),
      max_soe_percent: String(b.maxSoePercent),
      inverter_block_count: String(b.inverterBlockCount),
      ramp_rate_kw_per_s: String(b.rampRateKwPerS),
      reversion_timeout_s: String(b.reversionTimeoutS),
      relay: String(b.modbus?.relay ?? false),
    });
  }
  return cells;
}
