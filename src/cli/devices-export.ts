/**
 * `powerplane devices export`: the registry's devices, every page of ListDevices, as a
 * fleet file that `powerplane devices import` reads back into the same devices.
 */
import { createClient, type Client } from '@connectrpc/connect';
import { DeviceRegistryService, DeviceType, type Device } from '../../gen/powerplane/v1/devices_pb.ts';
import { CLIENT_FLAGS, clientTransport } from './client-transport.ts';
import { parseFlags } from './config-flags.ts';
import { devicesToCsv } from './device-csv.ts';
import { devicesToJsonl } from './device-jsonl.ts';
import { UsageError } from './usage.ts';

/** The formats of a fleet file. */
export const FLEET_FORMATS = ['csv', 'jsonl'] as const;
export type FleetFormat = (typeof FLEET_FORMATS)[number];

/** The format of `--format`, else of the file name (`.jsonl`, `.ndjson`), else CSV. */
export function fleetFormat(flag: string | undefined, file: string): FleetFormat {
  if (flag === undefined) return /\.(jsonl|ndjson)$/i.test(file) ? 'jsonl' : 'csv';
  if (!FLEET_FORMATS.includes(flag as FleetFormat)) throw new UsageError(`--format must be csv or jsonl (got ${JSON.stringify(flag)})`);
  return flag as FleetFormat;
}

/** Which devices to export, and how. */
export interface ExportOptions {
  /** Only this site's devices; every site the caller may see when absent. */
  readonly site?: string;
  /** Only devices of this type. */
  readonly type?: DeviceType;
  /** Deactivated devices too (importing them again reactivates them); default only active ones. */
  readonly all?: boolean;
  readonly format: FleetFormat;
}

/** Pages of ListDevices at most: 10,000 pages of up to 1000 devices. */
const MAX_PAGES = 10_000;

/** Lists the devices `options` selects, ordered by site, name and id. */
export async function listAllDevices(
  client: Client<typeof DeviceRegistryService>,
  options: Omit<ExportOptions, 'format'>,
): Promise<Device[]> {
  const devices: Device[] = [];
  let pageToken = '';
  for (let page = 0; page < MAX_PAGES; page++) {
    const res = await client.listDevices({
      site: options.site ?? '',
      type: options.type ?? DeviceType.UNSPECIFIED,
      ...(options.all ? {} : { active: true }),
      pageSize: 1000,
      pageToken,
    });
    devices.push(...res.devices);
    pageToken = res.nextPageToken;
    if (pageToken === '') break;
  }
  return devices;
}

/** The selected devices as a fleet file in `options.format`. */
export async function exportDevices(client: Client<typeof DeviceRegistryService>, options: ExportOptions): Promise<string> {
  const devices = await listAllDevices(client, options);
  return options.format === 'csv' ? devicesToCsv(devices) : devicesToJsonl(devices);
}

const FLAGS = {
  ...CLIENT_FLAGS,
  site: { type: 'string' },
  type: { type: 'string' },
  all: { type: 'boolean' },
  format: { type: 'string' },
} as const;

/** `powerplane devices export [--site S] [--type T] [--all] [--format csv|jsonl]`, to standard output. */
export async function devicesExportCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags(argv, FLAGS);
  if (positionals.length > 0) throw new UsageError(`devices export takes no arguments (got ${JSON.stringify(positionals[0])})`);
  const format = fleetFormat(values.format, '');
  const type =
    values.type === undefined ? undefined : values.type === 'bess' ? DeviceType.BESS : values.type === 'meter' ? DeviceType.METER : null;
  if (type === null) throw new UsageError(`--type must be bess or meter (got ${JSON.stringify(values.type)})`);
  const client = createClient(DeviceRegistryService, clientTransport(values));
  const text = await exportDevices(client, {
    ...(values.site !== undefined ? { site: values.site } : {}),
    ...(type !== undefined ? { type } : {}),
    all: values.all ?? false,
    format: format as FleetFormat,
  });
  process.stdout.write(text);
  return 0;
}
