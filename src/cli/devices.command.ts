import { create, toJsonString, type JsonObject } from '@bufbuild/protobuf';
import { createClient } from '@connectrpc/connect';
import { DeviceRegistryService, DeviceSchema, DeviceType, RegisterProfile, type Device } from '../../gen/powerplane/v1/devices_pb.ts';
import { CLIENT_FLAGS, CLIENT_FLAGS_HELP, clientTransport } from './client-transport.ts';
import { parseFlags } from './config-flags.ts';
import { CSV_COLUMNS } from './device-csv.ts';
import { readRegisterMapFile } from './device-file.ts';
import { devicesExportCommand } from './devices-export.ts';
import { devicesImportCommand } from './devices-import.ts';
import { UsageError } from './usage.ts';

export const DEVICES_HELP = `Usage: powerplane devices <list|add|import|export> [flags]

Talks to a running control plane (--server, default http://<POWERPLANE_LISTEN>).

  powerplane devices list [--site S] [--type bess|meter] [--all] [--json]
  powerplane devices add --type bess|meter --name N --site S --host H [--port 502] [--unit-id 1]
      [--profile sunspec|tesla-powerpack | --register-map FILE] [--polling-ms 1000] [--relay]
      bess only: --charge-kw KW --discharge-kw KW --capacity-kwh KWH [--min-soe 0] [--max-soe 100]
                 [--blocks 1] [--ramp-kw-per-s 0] [--reversion-timeout-s 30]
      [--metadata JSON] [--request-id ID]
      --relay: the control plane cannot reach this battery; setpoints go through the site's agent
      --register-map FILE: a custom register map (profile custom; --profile may be omitted or
        custom): FILE holds the JSON object the API takes as modbus.registerMap, e.g.
        {"name": "acme-bc500", "points": [{"name": "soePercent", "address": 100,
         "type": "uint16", "scale": 0.1, "unit": "%"}, ...], "control": {...}}
        (rules: the register_map comment of proto/powerplane/v1/devices.proto); the server
        checks it and refuses a bad one naming the field
  powerplane devices import --file FILE [--format csv|jsonl] [--dry-run] [--verbose]
      [--register-map [bess=|meter=]FILE ...]
      registers the file's devices in one atomic request per 10,000 (BatchUpsertDevices):
      matched by site and name, new ones created, changed ones updated, the rest left
      alone; prints how many of each. --dry-run checks and reports, writing nothing.
      A bad row stops the import, nothing written, naming its line and column.
      CSV: a header row, then one device per row; columns, any order, empty = the API's
        default: ${CSV_COLUMNS.join(',')}
        type bess|meter; profile sunspec (default), tesla-powerpack or custom; relay
        true|false; optional columns register_map (a custom map: a JSON file, relative to
        the CSV's folder, or the JSON object itself), polling_interval_ms, metadata (JSON)
      JSON lines (--format jsonl, or a .jsonl file): one device per line in the API's JSON,
        as devices list --json prints it
      --register-map FILE: the map of custom devices that give none (bess=FILE or
        meter=FILE for one type)
      --verbose: also one line per device created or updated
  powerplane devices export [--site S] [--type bess|meter] [--all] [--format csv|jsonl]
      prints the devices as a file devices import reads back (--all: deactivated ones
      too, which an import reactivates)

Flags:
${CLIENT_FLAGS_HELP}
  --json          print devices as Connect JSON, one per line
  -h, --help      show this help`;

const FLAGS = {
  ...CLIENT_FLAGS,
  json: { type: 'boolean' },
  all: { type: 'boolean' },
  site: { type: 'string' },
  type: { type: 'string' },
  name: { type: 'string' },
  host: { type: 'string' },
  port: { type: 'string' },
  'unit-id': { type: 'string' },
  profile: { type: 'string' },
  'polling-ms': { type: 'string' },
  'charge-kw': { type: 'string' },
  'discharge-kw': { type: 'string' },
  'capacity-kwh': { type: 'string' },
  'min-soe': { type: 'string' },
  'max-soe': { type: 'string' },
  blocks: { type: 'string' },
  'ramp-kw-per-s': { type: 'string' },
  'reversion-timeout-s': { type: 'string' },
  metadata: { type: 'string' },
  'request-id': { type: 'string' },
  relay: { type: 'boolean' },
  'register-map': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** `powerplane devices list|add`: the registry from the command line, over gRPC. */
export async function devicesCommand(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(DEVICES_HELP);
    return 0;
  }
  if (argv[0] === 'import') return devicesImportCommand(argv.slice(1));
  if (argv[0] === 'export') return devicesExportCommand(argv.slice(1));
  const { values, positionals } = parseFlags(argv, FLAGS);
  const action = positionals[0];
  if (values.help || !action) {
    console.log(DEVICES_HELP);
    return values.help ? 0 : 2;
  }
  const client = createClient(DeviceRegistryService, clientTransport(values));
  const print = (device: Device) =>
    console.log(
      values.json
        ? toJsonString(DeviceSchema, device)
        : [device.id, device.site, DeviceType[device.type].toLowerCase(), device.active ? 'active' : 'inactive', device.name].join('\t'),
    );

  if (action === 'list') {
    let pageToken = '';
    do {
      const page = await client.listDevices({
        site: values.site ?? '',
        type: parseType(values.type, true),
        ...(values.all ? {} : { active: true }),
        pageToken,
      });
      page.devices.forEach(print);
      pageToken = page.nextPageToken;
    } while (pageToken !== '');
    return 0;
  }
  if (action === 'add') {
    const type = parseType(values.type, false);
    const registerProfile = parseProfile(values.profile, values['register-map'] !== undefined);
    const file = values['register-map'];
    const registerMap = file === undefined ? undefined : readRegisterMapFile(file, `--register-map ${file}`, UsageError);
    const modbus = {
      endpoint: { host: values.host ?? '', port: num(values.port, 'port'), unitId: num(values['unit-id'], 'unit-id') },
      registerProfile,
      ...(registerMap ? { registerMap } : {}),
      pollingIntervalMs: num(values['polling-ms'], 'polling-ms'),
      relay: values.relay ?? false,
    };
    const spec =
      type === DeviceType.BESS
        ? {
            case: 'bess' as const,
            value: {
              ratedChargePowerKw: num(values['charge-kw'], 'charge-kw'),
              ratedDischargePowerKw: num(values['discharge-kw'], 'discharge-kw'),
              capacityKwh: num(values['capacity-kwh'], 'capacity-kwh'),
              minSoePercent: num(values['min-soe'], 'min-soe'),
              maxSoePercent: num(values['max-soe'], 'max-soe'),
              inverterBlockCount: num(values.blocks, 'blocks'),
              rampRateKwPerS: num(values['ramp-kw-per-s'], 'ramp-kw-per-s'),
              reversionTimeoutS: num(values['reversion-timeout-s'], 'reversion-timeout-s'),
              modbus,
            },
          }
        : { case: 'meter' as const, value: { modbus } };
    const { device } = await client.createDevice({
      device: create(DeviceSchema, {
        name: values.name ?? '',
        site: values.site ?? '',
        type,
        spec,
        ...(values.metadata ? { metadata: parseMetadata(values.metadata) } : {}),
      }),
      requestId: values['request-id'] ?? '',
    });
    if (device) print(device);
    return 0;
  }
  console.error(`unknown devices action ${JSON.stringify(action)}\n\n${DEVICES_HELP}`);
  return 2;
}

function parseType(value: string | undefined, optional: boolean): DeviceType {
  if (value === undefined && optional) return DeviceType.UNSPECIFIED;
  if (value === 'bess') return DeviceType.BESS;
  if (value === 'meter') return DeviceType.METER;
  throw new UsageError(`--type must be bess or meter (got ${JSON.stringify(value ?? '')})`);
}

/** The register profile of `--profile`; a `--register-map` makes it custom (the only profile that takes a map). */
function parseProfile(value: string | undefined, hasMap: boolean): RegisterProfile {
  if (hasMap) {
    if (value === undefined || value === 'custom') return RegisterProfile.CUSTOM;
    throw new UsageError(`--register-map is for the custom profile, not --profile ${value}; leave --profile out or set it to custom`);
  }
  if (value === undefined || value === 'sunspec') return RegisterProfile.SUNSPEC;
  if (value === 'tesla-powerpack') return RegisterProfile.TESLA_POWERPACK;
  if (value === 'custom') throw new UsageError('--profile custom needs --register-map FILE');
  throw new UsageError(`--profile must be sunspec, tesla-powerpack or custom (got ${JSON.stringify(value)})`);
}

function parseMetadata(value: string): JsonObject {
  let json: unknown;
  try {
    json = JSON.parse(value);
  } catch (err) {
    throw new UsageError(`--metadata is not JSON (${(err as Error).message})`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new UsageError('--metadata must be a JSON object');
  return json as JsonObject;
}

function num(value: string | undefined, flag: string): number {
  if (value === undefined) return 0;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new UsageError(`--${flag} must be a number (got ${JSON.stringify(value)})`);
  return n;
}
