import type { DescMethod } from '@bufbuild/protobuf';
import {
  Code,
  ConnectError,
  createConnectRouter,
  type ConnectRouter,
  type ConnectRouterOptions,
  type ContextValues,
} from '@connectrpc/connect';
import type { UniversalHandler } from '@connectrpc/connect/protocol';
import {
  compressionBrotli,
  compressionGzip,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
  type ConnectNodeAdapterOptions,
} from '@connectrpc/connect-node';
import type { Logger } from '../logger.ts';

type NodeHandler = NonNullable<ConnectNodeAdapterOptions['fallback']>;
type NodeRequest = Parameters<NodeHandler>[0];
type NodeResponse = Parameters<NodeHandler>[1];

/** Options of {@link createRpcHandler}: connect-node's adapter options, and a step before the body. */
export interface RpcHandlerOptions extends ConnectRouterOptions {
  routes(router: ConnectRouter): void;
  /** The context values each call starts with. */
  contextValues(req: NodeRequest): ContextValues;
  /** Serves every path that names no RPC. */
  fallback: NodeHandler;
  /**
   * Runs for every RPC once it is routed, before anything reads its body; it may add to
   * `values`. A returned error refuses the call: the caller gets it in the call's own
   * protocol (Connect, gRPC, gRPC-Web) and its body is never read.
   */
  beforeBody(req: NodeRequest, method: DescMethod, values: ContextValues): Promise<ConnectError | undefined>;
  readonly log: Logger;
}

/**
 * connect-node's `connectNodeAdapter` with one step added: {@link RpcHandlerOptions.beforeBody}
 * runs after routing and before the request body is read. connect reads and parses a
 * unary request's whole body (and a server stream's first message) before interceptors
 * run, so a check in an interceptor comes after the server has taken in whatever an
 * unauthenticated client sent.
 *
 * A refused call is still answered by connect's own handler for its protocol, so the
 * error has exactly the encoding an interceptor's would (HTTP status, trailers or end-stream
 * message): the handler is given a body that fails with the refusal when read, in place of
 * the request's. The unread upload is then dropped: HTTP/2 resets the stream (NO_ERROR)
 * once the answer is complete, and HTTP/1.1 closes the connection after the answer
 * instead of draining the rest.
 */
export function createRpcHandler(options: RpcHandlerOptions): NodeHandler {
  const router = createConnectRouter({ ...options, acceptCompression: options.acceptCompression ?? [compressionGzip, compressionBrotli] });
  options.routes(router);
  const paths = new Map<string, UniversalHandler>(router.handlers.map((h) => [h.requestPath, h]));
  const { log } = options;

  async function serve(handler: UniversalHandler, req: NodeRequest, res: NodeResponse): Promise<void> {
    const values = options.contextValues(req);
    // Made before the wait below, so that its abort signal sees the client go away meanwhile.
    let request;
    try {
      request = universalRequestFromNodeRequest(req, res, undefined, values);
    } catch (err) {
      // connect-node cannot make a URL without an authority (no Host header in HTTP/1.x).
      log.debug({ err: (err as Error).message }, 'refusing a request connect cannot read');
      answer(res, 400, 'bad request\n');
      return;
    }
    const refusal = await options.beforeBody(req, handler.method, values);
    if (refusal && req.httpVersionMajor === 1) res.setHeader('connection', 'close');
    const response = await handler(refusal ? { ...request, body: refusingBody(refusal) } : request);
    await universalResponseToNodeResponse(response, res);
  }

  return (req, res) => {
    const handler = paths.get((req.url ?? '').split('?', 2)[0]!);
    if (!handler) {
      options.fallback(req, res);
      return;
    }
    serve(handler, req, res).catch((err: unknown) => {
      if (err instanceof ConnectError && err.code === Code.Aborted) return;
      log.warn({ err, method: `${handler.service.typeName}/${handler.method.name}` }, 'RPC handler failed');
      answer(res, 500, 'internal error\n');
    });
  };
}

/** Ends `res` with a plain-text status, or just ends it when its head is already sent. */
function answer(res: NodeResponse, status: number, text: string): void {
  if (res.writableEnded) return;
  if (res.headersSent) {
    res.end();
    return;
  }
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' });
  res.end(text);
}

/** A request body that fails with `error` when read, and reads nothing. */
function refusingBody(error: ConnectError): AsyncIterable<Uint8Array> {
  return {
    [Symbol.asyncIterator]: () => ({
      next: () => Promise.reject(error),
    }),
  };
}
