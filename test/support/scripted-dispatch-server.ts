import { create } from '@bufbuild/protobuf';
import { durationFromMs } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError, type HandlerContext } from '@connectrpc/connect';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import { once } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { RetryInfoSchema } from '../../gen/google/rpc/error_details_pb.ts';
import {
  CancelDispatchResponseSchema,
  DispatchService,
  GetDispatchResponseSchema,
  ListMarketDataResponseSchema,
  SetpointEventSchema,
  SetpointPhase,
  SubmitDispatchResponseSchema,
  WatchSetpointsResponseSchema,
} from '../../gen/powerplane/v1/dispatch_pb.ts';

/** One call as the scripted server received it. */
export interface Attempt {
  readonly method: string;
  readonly requestId?: string;
  readonly authorization: string | null;
  /** `grpc-timeout` (gRPC) or `connect-timeout-ms` (Connect) as sent; null without a deadline. */
  readonly timeout: string | null;
  readonly protocol: 'grpc' | 'connect';
}

/**
 * A stand-in for the control plane's DispatchService over real HTTP on 127.0.0.1, whose
 * unary answers a test scripts: `SubmitDispatch`, `CancelDispatch` and `ListMarketData`
 * throw the script's next error, or answer OK when it is undefined or spent. `GetDispatch`
 * never answers (until the call is cancelled). `WatchSetpoints` sends two VERIFIED events
 * in one message, then holds the stream open until the client ends it.
 */
export interface ScriptedDispatchServer {
  /** An HTTP/2 listener: gRPC and Connect over HTTP/2. */
  readonly h2Url: string;
  /** An HTTP/1.1 listener: Connect over HTTP/1.1. */
  readonly h1Url: string;
  /** The calls received since the last {@link answer}, oldest first. */
  readonly attempts: Attempt[];
  /** Replaces the script and forgets the calls received so far. */
  answer(script: ReadonlyArray<ConnectError | undefined>): void;
  /** How many WatchSetpoints streams have ended on the server side. */
  watchesEnded(): number;
  close(): Promise<void>;
}

/** An UNAVAILABLE error like the control plane's, with a RetryInfo of `retryAfterMs` when given. */
export function unavailable(retryAfterMs?: number): ConnectError {
  const details =
    retryAfterMs === undefined
      ? []
      : [
          {
            desc: RetryInfoSchema,
            value: { retryDelay: durationFromMs(retryAfterMs) },
          },
        ];
  return new ConnectError('database unreachable', Code.Unavailable, undefined, details);
}

/** Starts a {@link ScriptedDispatchServer}. */
export async function startScriptedDispatchServer(): Promise<ScriptedDispatchServer> {
  let script: Array<ConnectError | undefined> = [];
  const attempts: Attempt[] = [];
  let watchesEnded = 0;
  const record = (method: string, ctx: HandlerContext, requestId?: string) => {
    const grpc = ctx.requestHeader.get('content-type')?.startsWith('application/grpc') ?? false;
    attempts.push({
      method,
      requestId,
      authorization: ctx.requestHeader.get('authorization'),
      timeout: ctx.requestHeader.get(grpc ? 'grpc-timeout' : 'connect-timeout-ms'),
      protocol: grpc ? 'grpc' : 'connect',
    });
  };
  const scripted = (method: string, ctx: HandlerContext, requestId?: string) => {
    record(method, ctx, requestId);
    const next = script.shift();
    if (next) throw next;
  };
  const handler = connectNodeAdapter({
    routes: ({ service }) =>
      service(DispatchService, {
        submitDispatch(req, ctx) {
          scripted('SubmitDispatch', ctx, req.requestId);
          return create(SubmitDispatchResponseSchema);
        },
        cancelDispatch(_req, ctx) {
          scripted('CancelDispatch', ctx);
          return create(CancelDispatchResponseSchema);
        },
        listMarketData(_req, ctx) {
          scripted('ListMarketData', ctx);
          return create(ListMarketDataResponseSchema);
        },
        async getDispatch(_req, ctx) {
          record('GetDispatch', ctx);
          if (!ctx.signal.aborted) await once(ctx.signal, 'abort');
          return create(GetDispatchResponseSchema);
        },
        async *watchSetpoints(req, ctx) {
          record('WatchSetpoints', ctx);
          try {
            const event = (deviceId: string) =>
              create(SetpointEventSchema, { deviceId, site: req.site, phase: SetpointPhase.VERIFIED, targetPowerKw: 10 });
            yield create(WatchSetpointsResponseSchema, { events: [event('bess-1'), event('bess-2')] });
            if (!ctx.signal.aborted) await once(ctx.signal, 'abort');
          } finally {
            watchesEnded++;
          }
        },
      }),
  });
  const h2 = http2.createServer(handler);
  const h1 = http.createServer(handler);
  const listen = async (server: http.Server | http2.Http2Server) => {
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  };
  const [h2Url, h1Url] = await Promise.all([listen(h2), listen(h1)]);
  const sessions = new Set<http2.ServerHttp2Session>();
  h2.on('session', (session) => {
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
  });
  return {
    h2Url,
    h1Url,
    attempts,
    answer(next) {
      script = [...next];
      attempts.length = 0;
    },
    watchesEnded: () => watchesEnded,
    async close() {
      for (const session of sessions) session.destroy();
      h1.closeAllConnections();
      await Promise.all([new Promise((r) => h2.close(r)), new Promise((r) => h1.close(r))]);
    },
  };
}
