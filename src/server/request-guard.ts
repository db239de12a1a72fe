/**
 * The guard around the node-level request handler (connect-node's adapter): no request,
 * however malformed, and no bug in a handler may stop the process.
 *
 * - A request connect cannot serve is refused with 400 before connect sees it. connect-node
 *   2.1.1 builds each call's URL from the request's authority and throws, synchronously and
 *   outside any promise, when there is none or it is not a valid URL authority: an HTTP/1.x
 *   request without a `Host` header once stopped the whole server that way.
 * - Whatever the handler throws synchronously, or rejects its returned promise with, is
 *   logged and answered 500 if nothing was sent yet, else the response is cut off.
 * - The handler, and every listener of the request's and the response's events, run in
 *   the request's async context ({@link requestInFlight}), so the process's last-resort
 *   handler (`last-resort.ts`) can tell an error a request caused (in a timer, a promise or
 *   an I/O callback the handler started) from one outside any request, and answer it.
 *   Node runs those event listeners in the connection's context, or for HTTP/2 in none,
 *   so they are re-entered here; a listener that throws is caught where it is emitted.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { EventEmitter } from 'node:events';
import type http from 'node:http';
import http2 from 'node:http2';
import type { Logger } from '../logger.ts';

/** A request as Node's HTTP/1.1 and HTTP/2 servers hand it to a request listener. */
export type NodeRequest = http.IncomingMessage | http2.Http2ServerRequest;
/** The response of a {@link NodeRequest}. */
export type NodeResponse = http.ServerResponse | http2.Http2ServerResponse;
/** A request listener of either protocol, as connect-node's adapter is one. */
export type NodeRequestHandler = (req: NodeRequest, res: NodeResponse) => void;

/** The request an error escaped from, as the last-resort handler sees it. */
export interface RequestInFlight {
  /**
   * Logs `err` with the request's method and path, then answers 500 if nothing was sent
   * yet, or else cuts the response off (HTTP/2: RST_STREAM INTERNAL_ERROR; HTTP/1.1: the
   * connection is closed). `origin` says where the error was caught.
   */
  fail(err: unknown, origin: string): void;
}

/** Options of {@link guardRequests}. */
export interface RequestGuardOptions {
  readonly log: Logger;
}

const inFlight = new AsyncLocalStorage<RequestInFlight>();

/**
 * The request whose async context the caller runs in, or undefined outside every request.
 * Set for the handler, for every promise, timer and I/O callback it starts, and for the
 * listeners of its request's and response's events.
 */
export function requestInFlight(): RequestInFlight | undefined {
  return inFlight.getStore();
}

/**
 * Wraps `handler` so that no request can stop the process: a request connect cannot
 * serve gets 400, and a handler's error is logged and answered 500 (see the file header).
 * `handler` is any request listener of Node's HTTP/1.1 and HTTP/2 servers (connect-node
 * types its response a little differently from `@types/node`); the result is one too.
 */
export function guardRequests<H extends (req: never, res: never) => void | Promise<unknown>>(
  handler: H,
  options: RequestGuardOptions,
): (...args: Parameters<H>) => void {
  const { log } = options;
  const listener = handler as unknown as NodeRequestHandler;
  const guarded: NodeRequestHandler = (req, res) => {
    const refusal = authorityProblem(req);
    if (refusal !== undefined) {
      refuse(req, res, refusal, log);
      return;
    }
    const request = trackRequest(req, res, log);
    enterOnEmit(req, request);
    enterOnEmit(res, request);
    inFlight.run(request, () => {
      try {
        const result: unknown = listener(req, res);
        if (result instanceof Promise) result.catch((err: unknown) => request.fail(err, 'handler promise'));
      } catch (err) {
        request.fail(err, 'handler');
      }
    });
  };
  return guarded as unknown as (...args: Parameters<H>) => void;
}

/**
 * Why connect could not build this request's URL, or undefined when it can. On the way,
 * an HTTP/1.0 request without `Host` gets the address it arrived on as its authority, as
 * RFC 9112 section 3.3 allows: HTTP/1.0 does not require `Host`, and load balancers'
 * health checks (HAProxy's `option httpchk`) send none.
 */
function authorityProblem(req: NodeRequest): string | undefined {
  let authority: string | undefined;
  if (isHttp2(req)) {
    authority = req.authority;
    if (!authority) return 'the request has no :authority and no host header';
  } else {
    const hosts = countHeader(req.rawHeaders, 'host');
    if (hosts > 1) return 'the request has more than one Host header';
    if (hosts === 0 && req.httpVersionMajor === 1 && req.httpVersionMinor === 0) {
      authority = localAuthority(req);
      if (authority !== undefined) req.headers.host = authority;
    } else {
      authority = req.headers.host;
    }
    if (!authority) return hosts === 0 ? 'the request has no Host header' : 'the Host header is empty';
  }
  try {
    // The URL connect-node builds for every call; a failure here would be a throw there.
    new URL(req.url ?? '', `http://${authority}`);
  } catch {
    return 'the request authority is not a valid host and port';
  }
  return undefined;
}

function isHttp2(req: NodeRequest): req is http2.Http2ServerRequest {
  return 'stream' in req;
}

/** How many times `name` (lower case) appears in Node's raw header list (name, value, name, value, ...). */
function countHeader(rawHeaders: readonly string[], name: string): number {
  let count = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i]!.toLowerCase() === name) count++;
  return count;
}

function localAuthority(req: http.IncomingMessage): string | undefined {
  const { localAddress, localPort } = req.socket;
  if (!localAddress || !localPort) return undefined;
  return localAddress.includes(':') ? `[${localAddress}]:${localPort}` : `${localAddress}:${localPort}`;
}

function refuse(req: NodeRequest, res: NodeResponse, reason: string, log: Logger): void {
  log.debug({ method: req.method, path: pathOf(req), httpVersion: req.httpVersion, reason }, 'refused a malformed request');
  // Errors of a response to a client that is already gone have nowhere to go.
  res.on('error', () => undefined);
  answer(res, 400, `${reason}\n`);
}

/**
 * The request's failure handler, and a debug line when the client goes away before the
 * response ended (a client cancelling is normal, not an error of the server).
 */
function trackRequest(req: NodeRequest, res: NodeResponse, log: Logger): RequestInFlight {
  let failed = false;
  res.once('close', () => {
    if (!res.writableFinished && !failed)
      log.debug({ method: req.method, path: pathOf(req), httpVersion: req.httpVersion }, 'the client went away before the response ended');
  });
  return {
    fail(err, origin) {
      const context = { method: req.method, path: pathOf(req), httpVersion: req.httpVersion, origin };
      if (isStreamError(err, origin)) {
        log.debug({ ...context, err: errorText(err) }, 'request stream failed with nothing listening');
      } else {
        log.error({ ...context, err }, failed ? 'request handler failed again' : 'request handler failed');
      }
      failed = true;
      if (res.writableEnded || isClosed(res)) return;
      if (!res.headersSent) {
        try {
          answer(res, 500, 'internal error\n');
          return;
        } catch {
          // Headers could not be written after all: cut the response off below.
        }
      }
      cutOff(res);
    },
  };
}

/**
 * An `error` event nothing listened for on the request or the response (Node would throw
 * it): the client's connection failing (a reset, a premature close), so it is logged at
 * debug and not as a fault of the server.
 */
function isStreamError(err: unknown, origin: string): boolean {
  return origin === 'error event' && err instanceof Error && typeof (err as { code?: unknown }).code === 'string';
}

function errorText(err: unknown): string {
  return err instanceof Error ? `${(err as { code?: string }).code ?? err.name}: ${err.message}` : String(err);
}

/** Sends a whole plain-text answer; an HTTP/1.x connection is closed after it, as its request may be unread. */
function answer(res: NodeResponse, status: number, text: string): void {
  const headers: http.OutgoingHttpHeaders = { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text) };
  if (!('stream' in res)) headers.connection = 'close';
  res.writeHead(status, headers);
  res.end(text);
}

/** Whether the response's stream is gone (Node's HTTP/2 compatibility response has no `destroyed` of its own). */
function isClosed(res: NodeResponse): boolean {
  return 'stream' in res ? res.stream.destroyed : res.destroyed;
}

function cutOff(res: NodeResponse): void {
  if ('stream' in res) {
    if (!res.stream.destroyed) res.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
  } else {
    res.destroy();
  }
}

/**
 * Makes every listener of `emitter`'s events run in `request`'s async context, and
 * catches what a listener throws: it would otherwise unwind through Node's HTTP
 * internals (an HTTP/2 session callback, the HTTP/1.1 parser) to the process.
 */
function enterOnEmit(emitter: EventEmitter, request: RequestInFlight): void {
  const emit = emitter.emit;
  emitter.emit = function emitInRequest(this: EventEmitter, event: string | symbol, ...args: unknown[]): boolean {
    return inFlight.run(request, () => {
      try {
        return emit.call(this, event, ...args);
      } catch (err) {
        request.fail(err, event === 'error' ? 'error event' : `${String(event)} listener`);
        return true;
      }
    });
  } as EventEmitter['emit'];
}

function pathOf(req: NodeRequest): string {
  // Only the path: a query string may carry anything, and the log is not the place.
  return (req.url ?? '').split('?')[0]!.slice(0, 200);
}
