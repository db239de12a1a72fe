/**
 * `powerplane devices import`: a fleet file's devices sent to BatchUpsertDevices, in
 * requests of at most 10,000 devices (and of a bounded size), with the server's verdict
 * per device added up. Each request is atomic on the server; when the file needs several,
 * every request is first sent with `validate_only`, so a bad device anywhere in the file
 * stops the import before anything is written.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { toBinary } from '@bufbuild/protobuf';
import { Code, ConnectError, createClient, type Client } from '@connectrpc/connect';
import {
  DeviceRegistryService,
  DeviceSchema,
  UpsertOutcome,
  type BatchUpsertDevicesResponse,
  type Device,
} from '../../gen/powerplane/v1/devices_pb.ts';
import { CLIENT_FLAGS, clientTransport } from './client-transport.ts';
import { parseFlags } from './config-flags.ts';
import { devicesFromCsv } from './device-csv.ts';
import {
  DeviceFileError,
  readRegisterMapFlags,
  registerMapFileReader,
  repeatedNames,
  type DeviceFile,
  type SourceDevice,
} from './device-file.ts';
import { devicesFromJsonl } from './device-jsonl.ts';
import { fleetFormat } from './devices-export.ts';

export { fleetFormat };
import { CommandError, UsageError } from './usage.ts';

/** Most devices BatchUpsertDevices takes in one request. */
export const MAX_BATCH_DEVICES = 10_000;
/**
 * Most bytes of encoded devices in one request: the server refuses messages over its
 * limit (POWERPLANE_MAX_MESSAGE_BYTES, default 4 MiB) and its answer carries every device
 * again, so a request keeps well under it. 10,000 devices without custom maps take about
 * 1.5 MB; custom maps make devices larger and requests smaller.
 */
export const MAX_BATCH_BYTES = 2 * 1024 * 1024;
/** Deadline of one request: a 10,000-device batch on a slow embedded database takes seconds, not minutes. */
const CALL_TIMEOUT_MS = 120_000;
/** Attempts of a request that fails with UNAVAILABLE or DEADLINE_EXCEEDED, or is over the rate limit. */
const ATTEMPTS = 3;

/** How to import. */
export interface ImportOptions {
  /** Check and report only (`validate_only`): nothing is written. */
  readonly dryRun: boolean;
  /** Most devices per request, 1–10,000; default {@link MAX_BATCH_DEVICES}. */
  readonly batchDevices?: number;
  /** Most bytes of devices per request; default {@link MAX_BATCH_BYTES}. */
  readonly batchBytes?: number;
  /** Wait before retrying a failed request, ms, doubled each time; default 1000 (or the server's `retry-after`). */
  readonly retryDelayMs?: number;
}

/** What became of one device of the file. */
export interface ImportedDevice {
  readonly line: number;
  readonly outcome: UpsertOutcome;
  /** The device as stored (or, in a dry run, as it would be: a new one has no id yet). */
  readonly device: Device;
}

/** What an import did (or, in a dry run, would do). */
export interface ImportResult {
  readonly dryRun: boolean;
  readonly requests: number;
  readonly created: number;
  readonly updated: number;
  readonly unchanged: number;
  /** Every device of the file, in file order. */
  readonly devices: readonly ImportedDevice[];
}

/**
 * Imports the devices of `file` (named `fileName` in errors) through `client`. A
 * device's repeated (site, name) in the file and the server's INVALID_ARGUMENT for
 * `devices[i]…` are thrown as {@link DeviceFileError} naming the line and column. Each
 * request carries a `request_id` made of the file's digest, this run's random id and the
 * request's number, so its retries are answered once, while a later run of the same file
 * (whose devices may have been changed meanwhile) is judged afresh rather than answered
 * with the first run's response.
 */
export async function importDevices(
  client: Client<typeof DeviceRegistryService>,
  file: DeviceFile,
  fileName: string,
  options: ImportOptions,
): Promise<ImportResult> {
  if (file.devices.length === 0) throw new CommandError(`${fileName}: holds no devices`);
  const repeated = repeatedNames(file);
  if (repeated.length > 0) throw new DeviceFileError(fileName, repeated);
  const batches = splitBatches(file.devices, options.batchDevices ?? MAX_BATCH_DEVICES, options.batchBytes ?? MAX_BATCH_BYTES);
  const run = randomBytes(6).toString('hex');
  const send = async (batch: readonly SourceDevice[], n: number, validateOnly: boolean) => {
    const devices = batch.map((s) => s.device);
    const requestId = validateOnly ? '' : `import-${file.digest.slice(0, 32)}-${run}-${n + 1}`;
    try {
      return await withRetries(
        () => client.batchUpsertDevices({ devices, requestId, validateOnly }, { timeoutMs: CALL_TIMEOUT_MS }),
        options.retryDelayMs ?? 1000,
      );
    } catch (err) {
      throw fileErrorOf(err, batch, file, fileName) ?? err;
    }
  };
  if (!options.dryRun && batches.length > 1) for (const [n, batch] of batches.entries()) await send(batch, n, true);
  const devices: ImportedDevice[] = [];
  let written = 0;
  for (const [n, batch] of batches.entries()) {
    let response: BatchUpsertDevicesResponse;
    try {
      response = await send(batch, n, options.dryRun);
    } catch (err) {
      if (written === 0 || err instanceof DeviceFileError) throw err;
      throw new CommandError(
        `${fileName}: request ${n + 1} of ${batches.length} failed (${(err as Error).message}); the devices up to line ` +
          `${batches[n - 1]!.at(-1)!.line} (${written} devices) were written, the rest not. Importing the file again finishes ` +
          'the import: what was written then counts as unchanged',
      );
    }
    response.results.forEach((r, k) => devices.push({ line: batch[k]!.line, outcome: r.outcome, device: r.device ?? batch[k]!.device }));
    written += batch.length;
  }
  const count = (outcome: UpsertOutcome) => devices.filter((d) => d.outcome === outcome).length;
  return {
    dryRun: options.dryRun,
    requests: batches.length,
    created: count(UpsertOutcome.CREATED),
    updated: count(UpsertOutcome.UPDATED),
    unchanged: count(UpsertOutcome.UNCHANGED),
    devices,
  };
}

/** Splits devices, in order, into requests of at most `maxDevices` and (unless one device alone is larger) `maxBytes`. */
export function splitBatches(devices: readonly SourceDevice[], maxDevices: number, maxBytes: number): SourceDevice[][] {
  if (!Number.isInteger(maxDevices) || maxDevices < 1 || maxDevices > MAX_BATCH_DEVICES)
    throw new RangeError(`a request holds 1 to ${MAX_BATCH_DEVICES} devices (got ${maxDevices})`);
  const batches: SourceDevice[][] = [];
  let current: SourceDevice[] = [];
  let bytes = 0;
  for (const source of devices) {
    // Each device is a length-delimited field of the request: its bytes plus a tag and a length.
    const size = toBinary(DeviceSchema, source.device).length + 6;
    if (current.length > 0 && (current.length === maxDevices || bytes + size > maxBytes)) {
      batches.push(current);
      current = [];
      bytes = 0;
    }
    current.push(source);
    bytes += size;
  }
  if (current.length > 0) batches.push(current);
  return batches;
}

/** Calls `call`, again after a pause when it fails in a way a retry may cure, at most {@link ATTEMPTS} times. */
async function withRetries<T>(call: () => Promise<T>, delayMs: number): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (err) {
      const retryable =
        err instanceof ConnectError &&
        (err.code === Code.Unavailable ||
          err.code === Code.DeadlineExceeded ||
          (err.code === Code.ResourceExhausted && err.metadata.has('retry-after')));
      if (!retryable || attempt >= ATTEMPTS) throw err;
      const retryAfterS = Number(err.metadata.get('retry-after'));
      const wait = Number.isFinite(retryAfterS) && retryAfterS > 0 ? retryAfterS * 1000 : delayMs * 2 ** (attempt - 1);
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }
}

/**
 * The server's INVALID_ARGUMENT about `devices[i].field` as an error naming the line of
 * the device and, where the file has one, the column of the field; undefined for any
 * other error.
 */
function fileErrorOf(err: unknown, batch: readonly SourceDevice[], file: DeviceFile, fileName: string): DeviceFileError | undefined {
  if (!(err instanceof ConnectError) || err.code !== Code.InvalidArgument) return undefined;
  const match = /^devices\[(\d+)\]\.?(\S*) ([\s\S]*)$/.exec(err.rawMessage);
  const source = match ? batch[Number(match[1])] : undefined;
  if (!match || !source) return undefined;
  const field = match[2]!;
  const where = file.locate(source.line, field);
  const last = field.split('.').at(-1) ?? '';
  return new DeviceFileError(fileName, [{ where, message: field && !where.endsWith(` ${last}`) ? `${field} ${match[3]}` : match[3]! }]);
}

const FLAGS = {
  ...CLIENT_FLAGS,
  file: { type: 'string' },
  format: { type: 'string' },
  'dry-run': { type: 'boolean' },
  'register-map': { type: 'string', multiple: true },
  verbose: { type: 'boolean' },
} as const;

/** `powerplane devices import --file F [--format csv|jsonl] [--dry-run] …`; its help is part of `DEVICES_HELP`. */
export async function devicesImportCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags(argv, FLAGS);
  if (positionals.length > 0) throw new UsageError(`devices import takes no arguments (got ${JSON.stringify(positionals[0])})`);
  if (values.file === undefined)
    throw new UsageError('--file is required: a fleet CSV, or JSON lines (--format jsonl); - reads standard input');
  const format = fleetFormat(values.format, values.file);
  const name = values.file === '-' ? 'standard input' : values.file;
  const text = await readFleetFile(values.file);
  const registerMaps = readRegisterMapFlags(values['register-map'] ?? []);
  const file =
    format === 'csv'
      ? devicesFromCsv(text, { file: name, registerMaps, readRegisterMap: registerMapFileReader(values.file) })
      : devicesFromJsonl(text, { file: name, registerMaps });
  const client = createClient(DeviceRegistryService, clientTransport(values));
  const result = await importDevices(client, file, name, { dryRun: values['dry-run'] ?? false });
  if (values.verbose) {
    for (const { line, outcome, device } of result.devices) {
      if (outcome === UpsertOutcome.UNCHANGED) continue;
      console.log([`line ${line}`, UpsertOutcome[outcome].toLowerCase(), device.id || '-', device.site, device.name].join('\t'));
    }
  }
  console.log(summary(result));
  return 0;
}

/** One line saying what the import did or, in a dry run, would do. */
export function summary(r: ImportResult): string {
  const total = r.created + r.updated + r.unchanged;
  const requests = r.requests > 1 ? ` in ${r.requests} requests` : '';
  const counts = `${r.created} created, ${r.updated} updated, ${r.unchanged} unchanged${requests}`;
  if (r.dryRun) return `dry run, nothing written: ${total} devices would be ${counts}`;
  if (r.created + r.updated === 0) return `nothing changed: all ${total} devices are registered as the file says`;
  return `${total} devices: ${counts}`;
}

async function readFleetFile(file: string): Promise<string> {
  if (file === '-') {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  }
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new UsageError(`--file ${file}: cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}
