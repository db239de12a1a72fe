/**
 * What the fleet file readers (`device-csv.ts`, `device-jsonl.ts`) hand to the importer:
 * devices in the API's message, each with the line it came from, and a way to say where
 * an API field of a device is in the file, so an error of the server
 * (`devices[17].bess.min_soe_percent …`) reaches the operator as a line and a column.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { JsonObject } from '@bufbuild/protobuf';
import type { Device } from '../../gen/powerplane/v1/devices_pb.ts';
import { CommandError, UsageError } from './usage.ts';

/** A device read from a fleet file, and the line it starts on (1-based). */
export interface SourceDevice {
  readonly line: number;
  readonly device: Device;
}

/** The devices of a fleet file, in file order. */
export interface DeviceFile {
  readonly devices: readonly SourceDevice[];
  /** SHA-256 of the file's text, hex. */
  readonly digest: string;
  /**
   * Where `field` of the device on `line` is in the file, for an error message, e.g.
   * `line 7, column min_soe_percent`; `field` is an API path below the device
   * (`bess.min_soe_percent`), empty for the device as a whole.
   */
  locate(line: number, field: string): string;
}

/** One thing wrong in a fleet file: where it is (`line 7, column port`) and what. */
export interface FileProblem {
  readonly where: string;
  readonly message: string;
}

/** Problems printed in full; the rest are counted. */
const SHOWN = 20;

/** A fleet file that cannot be imported as it is; the message lists its problems by line. */
export class DeviceFileError extends CommandError {
  override readonly name = 'DeviceFileError';
  constructor(
    readonly file: string,
    readonly problems: readonly FileProblem[],
  ) {
    const lines = problems.slice(0, SHOWN).map((p) => `  ${p.where}: ${p.message}`);
    if (problems.length > SHOWN) lines.push(`  … and ${problems.length - SHOWN} more`);
    super(`${file}: ${problems.length === 1 ? 'a problem' : `${problems.length} problems`}, nothing imported\n${lines.join('\n')}`);
  }
}

/** Custom register maps given on the command line, per device type (`--register-map [bess=|meter=]FILE`). */
export interface RegisterMaps {
  readonly bess?: JsonObject;
  readonly meter?: JsonObject;
}

/**
 * Reads `--register-map` values: `FILE` for custom devices of either type, `bess=FILE` or
 * `meter=FILE` for one type; each type at most once.
 */
export function readRegisterMapFlags(values: readonly string[]): RegisterMaps {
  const maps: { bess?: JsonObject; meter?: JsonObject } = {};
  for (const value of values) {
    const match = /^(bess|meter)=(.+)$/.exec(value);
    const types = match ? [match[1] as 'bess' | 'meter'] : (['bess', 'meter'] as const);
    const file = match ? match[2]! : value;
    const map = readRegisterMapFile(file, `--register-map ${value}`, UsageError);
    for (const type of types) {
      if (maps[type]) throw new UsageError(`--register-map gives the ${type} map twice`);
      maps[type] = map;
    }
  }
  return maps;
}

/**
 * Reads a register map file: JSON holding an object (the map's own rules are the
 * server's, which names the field it refuses). Errors name `what` and say why, as an
 * error of class `As`.
 */
export function readRegisterMapFile(file: string, what: string, As: new (message: string) => Error = Error): JsonObject {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new As(`${what}: cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  return parseJsonObject(text, what, As);
}

/** Parses `text` as a JSON object; errors name `what`. */
export function parseJsonObject(text: string, what: string, As: new (message: string) => Error = Error): JsonObject {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new As(`${what}: is not JSON (${(err as Error).message})`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    const got = Array.isArray(json) ? 'an array' : json === null ? 'null' : `a ${typeof json}`;
    throw new As(`${what}: must hold a JSON object (got ${got})`);
  }
  return json as JsonObject;
}

/**
 * A reader of the register map files a fleet file names, relative to the fleet file's
 * folder, each file read once however many devices name it.
 */
export function registerMapFileReader(fleetFile: string): (name: string) => JsonObject {
  const base = fleetFile === '-' ? process.cwd() : path.dirname(path.resolve(fleetFile));
  const cache = new Map<string, JsonObject>();
  return (name) => {
    const file = path.resolve(base, name);
    let map = cache.get(file);
    if (!map) {
      map = readRegisterMapFile(file, file);
      cache.set(file, map);
    }
    return map;
  };
}

/** A problem for every device whose (site, name) an earlier device of the file already has. */
export function repeatedNames(file: DeviceFile): FileProblem[] {
  const seen = new Map<string, number>();
  const problems: FileProblem[] = [];
  for (const { line, device } of file.devices) {
    const key = JSON.stringify([device.site, device.name]);
    const first = seen.get(key);
    if (first === undefined) seen.set(key, line);
    else
      problems.push({
        where: file.locate(line, 'name'),
        message: `site ${JSON.stringify(device.site)}, name ${JSON.stringify(device.name)} repeats line ${first}`,
      });
  }
  return problems;
}

/** The {@link DeviceFile.digest} of a file's text. */
export function digestOf(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
