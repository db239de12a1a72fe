import { readdir, readFile } from 'node:fs/promises';
import { Code, type ContextValues } from '@connectrpc/connect';
import type { ConnectNodeAdapterOptions } from '@connectrpc/connect-node';
import type { Registry as MetricsRegistry } from 'prom-client';
import type { AuditLog } from '../audit/audit.ts';
import type { Scope } from '../rpc/principal.ts';
import { ServingStatus, type HealthState } from './health.ts';
import type { PreAuth } from './pre-auth.ts';

type NodeHandler = NonNullable<ConnectNodeAdapterOptions['fallback']>;

/** The scope `/metrics` needs while it is guarded. */
export const METRICS_SCOPE: Scope = 'metrics:read';

/** Dependencies of {@link createHttpRoutes}. */
export interface HttpRoutesDeps {
  readonly health: HealthState;
  readonly metricsRegistry: MetricsRegistry;
  /** Authenticates `/metrics`; undefined leaves it public (`POWERPLANE_METRICS_AUTH=off`, or authentication off). */
  readonly metricsAuth: { readonly preAuth: PreAuth; readonly audit: Pick<AuditLog, 'refused'> } | undefined;
  /** The context values of a request (its client certificate), as for RPCs. */
  readonly contextValues: (req: Parameters<NodeHandler>[0]) => ContextValues;
}

/** A file of the operator console, served as it is. */
interface Asset {
  readonly type: string;
  readonly body: string;
}

/** The console's files by extension: what is served, and as which type. Tests beside them are not. */
const CONSOLE_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
};

/**
 * The operator console's files (`server/console/`), read once at start: `/` is its
 * `index.html`, every other file is `/console/<name>`. The page loads its modules and style
 * from there, so the content security policy needs no inline code and no other origin.
 */
async function consoleAssets(): Promise<Map<string, Asset>> {
  const dir = new URL('./console/', import.meta.url);
  const assets = new Map<string, Asset>();
  for (const name of (await readdir(dir)).sort()) {
    const type = CONSOLE_TYPES[name.slice(name.lastIndexOf('.'))];
    if (!type || name.includes('.test.')) continue;
    const asset = { type, body: await readFile(new URL(name, dir), 'utf8') };
    assets.set(name === 'index.html' ? '/' : `/console/${name}`, asset);
  }
  return assets;
}

/**
 * The plain HTTP endpoints beside the RPCs: the operator console at `/` (its modules and
 * style under `/console/`, so the content security policy needs no inline code),
 * `/healthz` for load balancers, `/metrics` for Prometheus (with a bearer credential
 * holding `metrics:read` unless `metricsAuth` is undefined), 404 for anything else.
 */
export async function createHttpRoutes(deps: HttpRoutesDeps): Promise<NodeHandler> {
  const assets = await consoleAssets();
  const text = 'text/plain; charset=utf-8';

  return (req, res) => {
    const reply = (status: number, type: string, body: string, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': type, 'content-length': String(Buffer.byteLength(body)), ...headers });
      res.end(body);
    };
    const path = (req.url ?? '/').split('?')[0]!;
    const page = assets.get(path);
    if (page && (req.method === 'GET' || req.method === 'HEAD')) {
      reply(200, page.type, page.body, { 'cache-control': 'no-cache' });
    } else if (path === '/healthz') {
      const serving = deps.health.get('') === ServingStatus.SERVING;
      reply(serving ? 200 : 503, text, serving ? 'SERVING\n' : 'NOT_SERVING\n');
    } else if (path === '/metrics') {
      serveMetrics(req, reply).catch((err: unknown) => {
        if (!res.headersSent) reply(500, text, 'internal error\n');
        else res.destroy(err as Error);
      });
    } else {
      reply(404, text, 'not found\n');
    }
  };

  async function serveMetrics(
    req: Parameters<NodeHandler>[0],
    reply: (status: number, type: string, body: string, headers?: Record<string, string>) => void,
  ): Promise<void> {
    const guard = deps.metricsAuth;
    if (guard) {
      const outcome = await guard.preAuth.http(req, '/metrics', deps.contextValues(req));
      if ('refusal' in outcome) {
        const { refusal } = outcome;
        const retryAfter = refusal.metadata.get('retry-after');
        const status =
          refusal.code === Code.Unauthenticated
            ? 401
            : refusal.code === Code.ResourceExhausted
              ? 429
              : refusal.code === Code.Unavailable
                ? 503
                : 500;
        reply(status, text, `${refusal.rawMessage}\n`, {
          ...(status === 401 ? { 'www-authenticate': 'Bearer' } : {}),
          ...(retryAfter ? { 'retry-after': retryAfter } : {}),
        });
        return;
      }
      if (!outcome.principal.scopes.has(METRICS_SCOPE)) {
        const message = `/metrics needs the scope ${METRICS_SCOPE}`;
        await guard.audit.refused({ principal: outcome.principal.id, method: '/metrics', code: Code[Code.PermissionDenied], message });
        reply(403, text, `${message}\n`);
        return;
      }
    }
    reply(200, deps.metricsRegistry.contentType, await deps.metricsRegistry.metrics());
  }
}
