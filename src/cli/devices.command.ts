import { create, toJsonString } from '@bufbuild/protobuf';
import { UsageError } from './usage.ts';
import { createClient } from '@connectrpc/connect';
import {
  DeviceRegistryService,
  DeviceSchema,
  DeviceType,
  RegisterProfile,
  type Device,
} from '../../gen/powerplane/v1/devices_pb.ts';
import { CLIENT_FLAGS, CLIENT_FLAGS_HELP, clientTransport } from './client-transport.ts';
import { parseFlags } from './config-flags.ts';

export const DEVICES_HELP = `Usage: powerplane devices <list|add> [flags]

Talks to a running control plane (--server, default http://<POWERPLANE_LISTEN>).

  powerplane devices list [--site S] [--type bess|meter] [--all] [--json]
  powerplane devices add --type bess|meter --name N --site S --host H [--port 502] [--unit-id 1]
      [--profile sunspec|tesla-powerpack] [--polling-ms 1000] [--relay]
      bess only: --charge-kw KW --discharge-kw KW --capacity-kwh KWH [--min-soe 0] [--max-soe 100]
                 [--blocks 1] [--ramp-kw-per-s 0] [--reversion-timeout-s 30]
      [--metadata JSON] [--request-id ID]
      --relay: the control plane cannot reach this battery; setpoints go through the site's agent

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
  help: { type: 'boolean', short: 'h' },
} as const;

/** `powerplane devices list|add`: the registry from the command line, over gRPC. */
export async function devicesCommand(argv: string[]): Promise<number> {
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
    const modbus = {
      endpoint: { host: values.host ?? '', port: num(values.port, 'port'), unitId: num(values['unit-id'], 'unit-id') },
      registerProfile: parseProfile(values.profile),
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
        ...(values.metadata ? { metadata: JSON.parse(values.metadata) } : {}),
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

function parseProfile(value: string | undefined): RegisterProfile {
  if (value === undefined || value === 'sunspec') return RegisterProfile.SUNSPEC;
  if (value === 'tesla-powerpack') return RegisterProfile.TESLA_POWERPACK;
  throw new UsageError(`--profile must be sunspec or tesla-powerpack (got ${JSON.stringify(value)}); custom register maps need the API`);
}

function num(value: string | undefined, flag: string): number {
  if (value === undefined) return 0;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new UsageError(`--${flag} must be a number (got ${JSON.stringify(value)})`);
  return n;
}

/** A mistake in the command line; printed without a stack, exit code 2. */
