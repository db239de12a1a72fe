import { lookup as dnsLookup } from 'node:dns/promises';
import { readFileSync } from 'node:fs';
import { BlockList, isIP } from 'node:net';
import path from 'node:path';
import type { Interceptor, Transport } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { bearer } from '../auth/bearer.ts';
import { readEnv, toConfig, type Env } from '../config.ts';

/** The flags every client command (devices, tokens) takes to reach and authenticate to a server. */
export const CLIENT_FLAGS = {
  server: { type: 'string' },
  token: { type: 'string' },
  'data-dir': { type: 'string' },
} as const;

export const CLIENT_FLAGS_HELP = `  --server URL      control plane URL (default http://127.0.0.1:50051, or POWERPLANE_LISTEN)
  --token TOKEN     bearer token (default POWERPLANE_TOKEN, else, for a server on this
                    machine, the admin token its first start wrote to <data dir>/admin.token)
  --data-dir DIR    where to look for admin.token (default POWERPLANE_DATA_DIR or ./.powerplane)`;

/**
 * A gRPC transport to the server of `values.server` that sends the caller's bearer token:
 * `--token`, else `POWERPLANE_TOKEN`, else the admin token file in the data directory (so
 * commands on the server's own machine work without setup) but only to a server whose
 * address is a loopback address (see {@link isLoopbackUrl}), else none.
 */
export function clientTransport(values: { server?: string; token?: string; 'data-dir'?: string }, env: Env = readEnv()): Transport {
  const baseUrl = clientBaseUrl(values, env);
  const token = values.token ?? env.token;
  const tokenFile = path.resolve(values['data-dir'] ?? env.dataDir ?? './.powerplane', 'admin.token');
  return createGrpcTransport({
    baseUrl,
    // An empty --token or POWERPLANE_TOKEN means no credential at all, not the file.
    interceptors: token === undefined ? [localAdminToken(baseUrl, () => readTokenFile(tokenFile))] : token ? [bearer(token)] : [],
  });
}

/** The URL of the server a client command talks to: `--server`, else `http://` and `POWERPLANE_LISTEN`. */
export function clientBaseUrl(values: { server?: string }, env: Env = readEnv()): string {
  if (values.server !== undefined) return values.server;
  const config = toConfig(env);
  return `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${config.port}`;
}

/**
 * A client interceptor sending the token `read` returns as the bearer credential, but only
 * when `baseUrl` is on this machine ({@link isLoopbackUrl}, decided once, on the first
 * call): the local admin token file never goes to another host. Without a token, or for
 * another host, calls go without a credential.
 */
export function localAdminToken(baseUrl: string, read: () => string | undefined, lookup: LookupAll = lookupAll): Interceptor {
  let token: Promise<string | undefined> | undefined;
  return (next) => async (req) => {
    token ??= isLoopbackUrl(baseUrl, lookup).then((local) => (local ? read() : undefined));
    const value = await token;
    if (value) req.header.set('authorization', `Bearer ${value}`);
    return next(req);
  };
}

/** Resolves a host name to every address it has (as `dns.lookup` with `all`). */
export type LookupAll = (hostname: string) => Promise<ReadonlyArray<{ address: string }>>;

const lookupAll: LookupAll = (hostname) => dnsLookup(hostname, { all: true });

/** 127.0.0.0/8 and ::1; `BlockList` also matches their IPv4-mapped IPv6 forms (::ffff:127.x.y.z). */
const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/** Whether `address` (an IP literal) is a loopback address; false for anything else. */
export function isLoopbackAddress(address: string): boolean {
  const family = isIP(address);
  return family === 4 ? LOOPBACK.check(address, 'ipv4') : family === 6 ? LOOPBACK.check(address, 'ipv6') : false;
}

/**
 * Whether the server of `url` is this machine, judged on the address the connection will
 * use: the host as Node's URL parser (WHATWG) leaves it, which already turns IPv4 forms
 * such as `127.1`, `0x7f.1` or `2130706433` into `127.0.0.1` (and the connection goes
 * there). An IP literal counts when it is in 127.0.0.0/8, `::1` or `::ffff:127.0.0.0/104`;
 * the name `localhost` when every address it resolves to does (so a hosts file that maps
 * it elsewhere is not trusted). Any other name is not local, whatever it looks like
 * (`127.attacker.example`) or resolves to now: a resolution can change between this check
 * and the connection. An unparsable URL is not local.
 */
export async function isLoopbackUrl(url: string, lookup: LookupAll = lookupAll): Promise<boolean> {
  let host: string;
  try {
    host = new URL(url).hostname;
  } catch {
    return false;
  }
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  if (isIP(host)) return isLoopbackAddress(host);
  if (host !== 'localhost') return false;
  try {
    const addresses = await lookup(host);
    return addresses.length > 0 && addresses.every((a) => isLoopbackAddress(a.address));
  } catch {
    return false;
  }
}

function readTokenFile(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}
