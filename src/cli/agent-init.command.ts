/**
 * `powerplane agent init --site S`: writes a site's agent config from the registry, so
 * bringing up a site is `agent init`, then `agent --config site.json`.
 */
import { randomBytes } from 'node:crypto';
import { open, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { createClient } from '@connectrpc/connect';
import { TokenService } from '../../gen/powerplane/v1/auth_pb.ts';
import { DeviceRegistryService, RegisterProfile, type Device } from '../../gen/powerplane/v1/devices_pb.ts';
import { parseSiteConfig, SiteConfigError } from '../agent/agent-config.ts';
import { DEFAULT_TOKEN_LIFETIME_DAYS, MAX_TOKEN_LIFETIME_DAYS } from '../auth/tokens.ts';
import { CLIENT_FLAGS, CLIENT_FLAGS_HELP, clientBaseUrl, clientTransport } from './client-transport.ts';
import { parseFlags } from './config-flags.ts';
import { listAllDevices } from './devices-export.ts';
import { CommandError, UsageError } from './usage.ts';

/** The help text of `powerplane agent init`. */
export const AGENT_INIT_HELP = `Usage: powerplane agent init --site S [flags]

Writes the agent config of site S from a running control plane's registry: every active
device of the site with its Modbus endpoint, register profile (and custom map), polling
interval and reversion timeout, and a new token bound to the site with the scope
telemetry:write only (or the --agent-token given). Then start the agent with
'powerplane agent --config site.json'. The file holds the token: it is written readable
by its owner only, and an existing file is kept unless --force.

Flags:
  --site S               the site, as in the registry; required
  --out FILE             where to write the config (default site.json; - for standard output)
  --force                replace an existing --out file
  --agent-server URL     the control plane URL the agent streams to, host:port or
                         http(s)://host:port (default the --server URL)
  --agent-token TOKEN    the token the agent sends, instead of creating one
  --expires-days D       lifetime of the created token in days (default ${DEFAULT_TOKEN_LIFETIME_DAYS}, at most ${MAX_TOKEN_LIFETIME_DAYS})
  --spool-dir DIR        the agent's spool directory (default spool, relative to the
                         directory the agent runs in)
${CLIENT_FLAGS_HELP}
  -h, --help        show this help`;

const FLAGS = {
  ...CLIENT_FLAGS,
  site: { type: 'string' },
  out: { type: 'string' },
  force: { type: 'boolean' },
  'agent-server': { type: 'string' },
  'agent-token': { type: 'string' },
  'expires-days': { type: 'string' },
  'spool-dir': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** Runs `powerplane agent init`; returns the exit code. A mistake in the command line is a {@link UsageError} with this command's help. */
export async function agentInitCommand(argv: string[]): Promise<number> {
  try {
    return await init(argv);
  } catch (err) {
    const code = (err as { code?: unknown } | null)?.code;
    if (err instanceof UsageError || (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS')))
      throw new UsageError((err as Error).message, AGENT_INIT_HELP);
    throw err;
  }
}

async function init(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags(argv, FLAGS);
  if (values.help) {
    console.log(AGENT_INIT_HELP);
    return 0;
  }
  if (positionals.length > 0) throw new UsageError(`agent init takes no arguments (got ${JSON.stringify(positionals[0])})`);
  const site = values.site;
  if (!site) throw new UsageError('--site is required');
  const days = values['expires-days'] === undefined ? undefined : Number(values['expires-days']);
  if (days !== undefined && !(days > 0 && days <= MAX_TOKEN_LIFETIME_DAYS))
    throw new UsageError(
      `--expires-days must be above 0 and at most ${MAX_TOKEN_LIFETIME_DAYS} (got ${JSON.stringify(values['expires-days'])})`,
    );
  if (values['agent-token'] !== undefined && days !== undefined)
    throw new UsageError('--expires-days is for a created token, not --agent-token');
  const out = values.out ?? 'site.json';
  if (out !== '-' && !values.force && (await exists(out))) throw new UsageError(`--out ${out} exists; --force replaces it`);
  const url = agentServerUrl(values['agent-server'] ?? clientBaseUrl(values));

  const transport = clientTransport(values);
  const devices = await listAllDevices(createClient(DeviceRegistryService, transport), { site });
  if (devices.length === 0)
    throw new CommandError(
      `site ${JSON.stringify(site)} has no active devices in the registry: register them first (powerplane devices import)`,
    );
  const config = (token: string) => ({
    site,
    server: { url, token },
    devices: devices.map(agentDevice),
    spool: { dir: values['spool-dir'] ?? 'spool' },
  });
  // Checked before a token exists, so a config the agent would refuse creates none.
  checkConfig(config('pp_unchecked'), devices);

  let token = values['agent-token'];
  let created: string | undefined;
  if (token === undefined) {
    const res = await createClient(TokenService, transport).createToken({
      name: `agent ${site}`.slice(0, 200),
      scopes: ['telemetry:write'],
      sites: [site],
      ...(days !== undefined ? { expireTime: timestampFromMs(Date.now() + days * 86_400_000) } : {}),
    });
    token = res.secret;
    created = res.token?.id;
  }
  const text = `${JSON.stringify(config(token), null, 2)}\n`;
  try {
    if (out === '-') process.stdout.write(text);
    else await writeSecretFile(out, text, values.force ?? false);
  } catch (err) {
    const revoke = created ? `; revoke the token it created: powerplane tokens revoke --id ${created}` : '';
    throw new CommandError(`cannot write ${out} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})${revoke}`);
  }
  const batteries = devices.filter((d) => d.spec.case === 'bess').length;
  console.error(
    `${out === '-' ? 'printed' : `wrote ${out}`}: site ${site}, ${devices.length} devices (${batteries} batteries, ` +
      `${devices.length - batteries} meters), streaming to ${url}` +
      (created ? `, with the new token ${created} (telemetry:write, site ${site} only)` : '') +
      (out === '-' ? '' : `. Start the agent: powerplane agent --config ${out}`),
  );
  return 0;
}

const PROFILE_NAMES: Readonly<Record<RegisterProfile, string | undefined>> = {
  [RegisterProfile.UNSPECIFIED]: undefined,
  [RegisterProfile.SUNSPEC]: 'sunspec',
  [RegisterProfile.TESLA_POWERPACK]: 'tesla-powerpack',
  [RegisterProfile.CUSTOM]: 'custom',
};

/** A registered device as an entry of the agent's `devices`. */
function agentDevice(d: Device) {
  const modbus = d.spec.case === 'bess' || d.spec.case === 'meter' ? d.spec.value.modbus : undefined;
  return {
    deviceId: d.id,
    kind: d.spec.case,
    endpoint: { host: modbus?.endpoint?.host, port: modbus?.endpoint?.port, unitId: modbus?.endpoint?.unitId },
    profile: modbus ? PROFILE_NAMES[modbus.registerProfile] : undefined,
    ...(modbus?.registerMap ? { registerMap: modbus.registerMap } : {}),
    pollingIntervalMs: modbus?.pollingIntervalMs,
    ...(d.spec.case === 'bess' ? { reversionTimeoutS: d.spec.value.reversionTimeoutS } : {}),
  };
}

/** The agent's `server.url` for `value`: the agent needs a port, so a URL without one gets its scheme's. */
function agentServerUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`);
  } catch {
    throw new UsageError(`--agent-server must be host:port or http(s)://host:port (got ${JSON.stringify(value)})`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new UsageError(`--agent-server must be an http:// or https:// URL (got ${JSON.stringify(value)})`);
  const port = url.port || (url.protocol === 'https:' ? '443' : '80');
  return `${url.protocol}//${url.hostname}:${port}`;
}

/** Checks the config as the agent will; a problem names the flag or the registered device behind it. */
function checkConfig(config: unknown, devices: readonly Device[]): void {
  try {
    parseSiteConfig(config);
  } catch (err) {
    if (!(err instanceof SiteConfigError)) throw err;
    const device = devices[Number(/^devices\[(\d+)\]/.exec(err.field)?.[1] ?? -1)];
    const source =
      err.field === 'server.url'
        ? ' (--agent-server)'
        : err.field.startsWith('spool')
          ? ' (--spool-dir)'
          : device
            ? ` (device ${JSON.stringify(device.name)}, ${device.id})`
            : '';
    throw new CommandError(`the agent would refuse this config: ${err.message}${source}`);
  }
}

async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/**
 * Writes `text` to `file`, readable by its owner only: created exclusively (an existing
 * file is an error) unless `replace`, which writes a temporary file beside it and renames
 * it over the old one.
 */
async function writeSecretFile(file: string, text: string, replace: boolean): Promise<void> {
  const target = replace ? path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(4).toString('hex')}.tmp`) : file;
  const handle = await open(target, 'wx', 0o600);
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
  if (!replace) return;
  try {
    await rename(target, file);
  } catch (err) {
    await rm(target, { force: true });
    throw err;
  }
}
