/**
 * The edge agent's site configuration: which control plane to stream to, which Modbus
 * devices to poll, where to spool, how to batch. Read from a JSON file by
 * `powerplane agent --config site.json`, or built directly by tests and the demo.
 * {@link parseSiteConfig} checks every field and names the offending one in its error.
 */
import { RegisterMapError } from '../modbus/errors.ts';
import { REGISTER_PROFILE_NAMES, registerProfileFor, type RegisterProfileName } from '../modbus/register-profile.ts';
import type { ModbusEndpoint, RegisterProfile } from '../modbus/types.ts';
import { isUuid } from '../uuid.ts';

/** One device the agent polls (and, for batteries in relay mode, writes). */
export interface AgentDeviceConfig {
  /** The device's UUID in the control plane's registry. */
  readonly deviceId: string;
  readonly kind: 'bess' | 'meter';
  readonly endpoint: ModbusEndpoint;
  /** Register layout: `sunspec` (discovered), the built-in `tesla-powerpack` map, or `custom` (the device's {@link registerMap}). */
  readonly profile: RegisterProfileName;
  /**
   * The flat register map of a `custom` device, in the JSON shape the registry accepts for
   * the same device (points, word order, control section); absent for the other profiles.
   */
  readonly registerMap?: Readonly<Record<string, unknown>>;
  /** Time between polls, ms; default 1000. */
  readonly pollingIntervalMs: number;
  /** Relay mode: seconds of silence after which the battery reverts on its own; default 30. */
  readonly reversionTimeoutS: number;
  /** Relay mode: heartbeat period while a relayed setpoint is held, ms; default 5000. */
  readonly heartbeatIntervalMs: number;
}

/** A validated, frozen site configuration. */
export interface SiteConfig {
  /** The site's name, as in the registry. */
  readonly site: string;
  readonly server: {
    /** `http://host:port` (cleartext HTTP/2), `https://host:port` (TLS), or `host:port`. */
    readonly url: string;
    /** The site's bearer token, sent as `authorization: Bearer …`; optional. */
    readonly token?: string;
    /**
     * For an `https://` URL: PEM files of the CAs to trust (default the system's) and of a
     * client certificate and its key (mutual TLS: the certificate then names the site).
     */
    readonly tls?: { readonly caFile?: string; readonly certFile?: string; readonly keyFile?: string };
  };
  readonly devices: readonly AgentDeviceConfig[];
  readonly spool: {
    /** Directory of the spool's segment files; created if missing. */
    readonly dir: string;
    /** Bound on the spool's total size, bytes; default 256 MiB, at least 1 MiB (a batch must fit in half of it). */
    readonly maxBytes: number;
  };
  readonly batch: {
    /** A batch is closed when it holds this many readings (meter, battery and datum readings together); default 500, 1–10 000. */
    readonly maxReadings: number;
    /** …or when its oldest reading is this old, ms; default 1000. */
    readonly maxDelayMs: number;
  };
}

/** A configuration error naming the field, e.g. `devices[1].endpoint.port must be …`. */
export class SiteConfigError extends Error {
  override readonly name = 'SiteConfigError';
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`site config: ${field} ${message}`);
  }
}

type Obj = Record<string, unknown>;

function object(v: unknown, field: string): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new SiteConfigError(field, `must be an object (got ${describe(v)})`);
  return v as Obj;
}

function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (Array.isArray(v)) return 'an array';
  if (v === null) return 'null';
  return typeof v === 'object' ? 'an object' : JSON.stringify(v);
}

function string(v: unknown, field: string): string {
  if (typeof v !== 'string' || v.trim() === '') throw new SiteConfigError(field, `must be a non-empty string (got ${describe(v)})`);
  return v;
}

function integer(v: unknown, field: string, min: number, max: number, fallback?: number): number {
  if (v === undefined && fallback !== undefined) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
    throw new SiteConfigError(field, `must be an integer from ${min} to ${max} (got ${describe(v)})`);
  return v;
}

function oneOf<T extends string>(v: unknown, field: string, values: readonly T[]): T {
  if (typeof v !== 'string' || !values.includes(v as T))
    throw new SiteConfigError(field, `must be one of ${values.map((x) => `'${x}'`).join(', ')} (got ${describe(v)})`);
  return v as T;
}

function noUnknownKeys(o: Obj, field: string, known: readonly string[]): void {
  for (const key of Object.keys(o))
    if (!known.includes(key)) throw new SiteConfigError(field ? `${field}.${key}` : key, 'is not a known setting');
}

function serverUrl(v: unknown): string {
  const url = string(v, 'server.url');
  if (!/^(https?:\/\/)?[^/\s:]+:\d{1,5}\/?$/.test(url))
    throw new SiteConfigError('server.url', `must be http://host:port, https://host:port or host:port (got ${JSON.stringify(url)})`);
  return url;
}

function device(v: unknown, i: number): AgentDeviceConfig {
  const f = `devices[${i}]`;
  const d = object(v, f);
  noUnknownKeys(d, f, [
    'deviceId',
    'kind',
    'endpoint',
    'profile',
    'registerMap',
    'pollingIntervalMs',
    'reversionTimeoutS',
    'heartbeatIntervalMs',
  ]);
  const deviceId = string(d.deviceId, `${f}.deviceId`);
  if (!isUuid(deviceId))
    throw new SiteConfigError(`${f}.deviceId`, `must be the device's UUID from the registry (got ${JSON.stringify(deviceId)})`);
  const e = object(d.endpoint, `${f}.endpoint`);
  noUnknownKeys(e, `${f}.endpoint`, ['host', 'port', 'unitId']);
  const { profile, registerMap } = layout(d, f);
  return Object.freeze({
    deviceId: deviceId.toLowerCase(),
    kind: oneOf(d.kind, `${f}.kind`, ['bess', 'meter'] as const),
    endpoint: Object.freeze({
      host: string(e.host, `${f}.endpoint.host`),
      port: integer(e.port, `${f}.endpoint.port`, 1, 65_535),
      unitId: integer(e.unitId, `${f}.endpoint.unitId`, 1, 247, 1),
    }),
    profile,
    ...(registerMap ? { registerMap } : {}),
    pollingIntervalMs: integer(d.pollingIntervalMs, `${f}.pollingIntervalMs`, 50, 3_600_000, 1000),
    reversionTimeoutS: integer(d.reversionTimeoutS, `${f}.reversionTimeoutS`, 1, 3600, 30),
    heartbeatIntervalMs: integer(d.heartbeatIntervalMs, `${f}.heartbeatIntervalMs`, 100, 600_000, 5000),
  });
}

/**
 * A device's register layout: `profile` defaults to `custom` when a `registerMap` is given
 * and to `sunspec` otherwise; a custom map is checked as the registry checks it, and an
 * error names the field inside it (`devices[0].registerMap.points[2].type`).
 */
function layout(d: Obj, f: string): { profile: RegisterProfileName; registerMap?: Readonly<Record<string, unknown>> } {
  const registerMap = d.registerMap === undefined ? undefined : object(d.registerMap, `${f}.registerMap`);
  const profile = oneOf(d.profile ?? (registerMap ? 'custom' : 'sunspec'), `${f}.profile`, REGISTER_PROFILE_NAMES);
  if (profile !== 'custom') {
    if (registerMap) throw new SiteConfigError(`${f}.registerMap`, `must be absent for the ${profile} profile (got an object)`);
    return { profile };
  }
  if (!registerMap) throw new SiteConfigError(`${f}.registerMap`, 'is required for the custom profile (got nothing)');
  try {
    registerProfileFor({ registerProfile: profile, registerMap });
  } catch (err) {
    if (!(err instanceof RegisterMapError)) throw err;
    throw new SiteConfigError(`${f}.registerMap.${err.path}`, err.message.slice(err.path.length + 1));
  }
  return { profile, registerMap: Object.freeze({ ...registerMap }) };
}

/**
 * Validates a parsed site config JSON into a frozen {@link SiteConfig}, applying defaults
 * (unit id 1, profile `sunspec` or `custom` when a `registerMap` is given, polling every
 * 1000 ms, spool 256 MiB, batches of 500 readings or 1000 ms). Throws
 * {@link SiteConfigError} naming the first bad field.
 */
export function parseSiteConfig(input: unknown): SiteConfig {
  const root = object(input, 'config');
  noUnknownKeys(root, '', ['site', 'server', 'devices', 'spool', 'batch']);
  const server = object(root.server, 'server');
  noUnknownKeys(server, 'server', ['url', 'token', 'tls']);
  const token = server.token === undefined ? undefined : string(server.token, 'server.token');
  const tls = server.tls === undefined ? undefined : tlsFiles(server.tls, String(server.url ?? ''));
  if (!Array.isArray(root.devices) || root.devices.length === 0)
    throw new SiteConfigError('devices', `must be a non-empty array (got ${describe(root.devices)})`);
  const devices = root.devices.map(device);
  const seen = new Set<string>();
  devices.forEach((d, i) => {
    if (seen.has(d.deviceId)) throw new SiteConfigError(`devices[${i}].deviceId`, `repeats ${d.deviceId}`);
    seen.add(d.deviceId);
  });
  const spool = object(root.spool, 'spool');
  noUnknownKeys(spool, 'spool', ['dir', 'maxBytes']);
  const batch = object(root.batch ?? {}, 'batch');
  noUnknownKeys(batch, 'batch', ['maxReadings', 'maxDelayMs']);
  return Object.freeze({
    site: string(root.site, 'site'),
    server: Object.freeze({ url: serverUrl(server.url), ...(token === undefined ? {} : { token }), ...(tls === undefined ? {} : { tls }) }),
    devices: Object.freeze(devices),
    spool: Object.freeze({
      dir: string(spool.dir, 'spool.dir'),
      maxBytes: integer(spool.maxBytes, 'spool.maxBytes', 1_048_576, Number.MAX_SAFE_INTEGER, 256 * 1024 * 1024),
    }),
    batch: Object.freeze({
      maxReadings: integer(batch.maxReadings, 'batch.maxReadings', 1, 10_000, 500),
      maxDelayMs: integer(batch.maxDelayMs, 'batch.maxDelayMs', 1, 600_000, 1000),
    }),
  });
}

function tlsFiles(value: unknown, url: string): NonNullable<SiteConfig['server']['tls']> {
  const tls = object(value, 'server.tls');
  noUnknownKeys(tls, 'server.tls', ['caFile', 'certFile', 'keyFile']);
  if (!url.startsWith('https://')) throw new SiteConfigError('server.tls', `needs an https:// server.url (got ${JSON.stringify(url)})`);
  const file = (key: 'caFile' | 'certFile' | 'keyFile') => (tls[key] === undefined ? {} : { [key]: string(tls[key], `server.tls.${key}`) });
  if ((tls.certFile === undefined) !== (tls.keyFile === undefined))
    throw new SiteConfigError('server.tls', 'needs certFile and keyFile together');
  return Object.freeze({ ...file('caFile'), ...file('certFile'), ...file('keyFile') });
}

/** The poller/writer profile of a device config (its custom map parsed as {@link parseSiteConfig} checked it). */
export function registerProfileOf(d: AgentDeviceConfig): RegisterProfile {
  return registerProfileFor({ registerProfile: d.profile, ...(d.registerMap ? { registerMap: d.registerMap } : {}) });
}
