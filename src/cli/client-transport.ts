import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Transport } from '@connectrpc/connect';
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
 * commands on the server's own machine work without setup), else none.
 */
export function clientTransport(values: { server?: string; token?: string; 'data-dir'?: string }, env: Env = readEnv()): Transport {
  const config = toConfig(env);
  const baseUrl = values.server ?? `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${config.port}`;
  // The local admin token file only ever goes to a server on this machine, never elsewhere.
  const local = isLoopback(baseUrl);
  const token = values.token ?? env.token ?? (local ? readTokenFile(path.resolve(values['data-dir'] ?? env.dataDir ?? './.powerplane', 'admin.token')) : undefined);
  return createGrpcTransport({
    baseUrl,
    interceptors: token ? [bearer(token)] : [],
  });
}

function isLoopback(url: string): boolean {
  try {
    const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
    return host === 'localhost' || host === '::1' || /^127\./.test(host);
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
