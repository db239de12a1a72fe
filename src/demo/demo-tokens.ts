import { readFile } from 'node:fs/promises';
import { createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { TokenService } from '../../gen/powerplane/v1/auth_pb.ts';
import { bearer } from '../auth/bearer.ts';

/** The demo's credentials: one narrow token per role, as an operator would hand them out. */
export interface DemoTokens {
  readonly admin: string;
  /** Dispatches, market data, overrides and the reads its view needs. */
  readonly trader: string;
  /** Read-only, for the console link. */
  readonly viewer: string;
  /** One per site (`site-1`…), bound to that site, `telemetry:write` only. */
  readonly agents: readonly string[];
}

/** Creates the demo's tokens with the admin token the server's first start wrote to `adminTokenFile`. */
export async function demoTokens(url: string, adminTokenFile: string, sites: number): Promise<DemoTokens> {
  const admin = (await readFile(adminTokenFile, 'utf8')).trim();
  const tokens = createClient(TokenService, createGrpcTransport({ baseUrl: url, interceptors: [bearer(admin)] }));
  const create = async (name: string, scopes: string[], site?: string) =>
    (await tokens.createToken({ name, scopes, sites: site ? [site] : [] })).secret;
  const agents: string[] = [];
  for (let s = 1; s <= sites; s++) agents.push(await create(`demo agent site-${s}`, ['telemetry:write'], `site-${s}`));
  return {
    admin,
    trader: await create('demo trading desk', ['dispatch:write', 'marketdata:write', 'control:write', 'readings:read']),
    viewer: await create('demo console', ['readings:read']),
    agents,
  };
}
