/**
 * Whether the client of a call has gone away: it reset the HTTP/2 stream, or closed the
 * connection before the call ended.
 *
 * A call whose client cancels surfaces inside the server as whatever reading its request
 * then meets, none of which says "cancelled": for a server stream aborted before its
 * request message, connect's "missing input message" (UNIMPLEMENTED); aborted inside the
 * message, "incomplete envelope" (INVALID_ARGUMENT); on HTTP/1.1 the socket's
 * `ECONNRESET`, which looks like a database connection failing. At that moment the call's
 * abort signal may not have fired yet (HTTP/2 ends the request body before it reports the
 * reset), so the state of the node-level request is what tells; this puts it into each
 * call's context values for the error interceptor.
 */
import http2 from 'node:http2';
import { createContextKey, type ContextValues } from '@connectrpc/connect';
import type { NodeRequest } from './request-guard.ts';

/** Answers whether the call's client has gone away; false where the call has no node request (in-memory transports). */
export const clientGoneKey = createContextKey<() => boolean>(() => false, { description: 'whether the client has gone away' });

/** Whether the client of `values`' call has reset its stream or closed its connection. */
export function clientGone(values: ContextValues): boolean {
  return values.get(clientGoneKey)();
}

/**
 * connect-node's `contextValues` option: `base`'s values for the request, plus
 * {@link clientGoneKey} read from the node-level request.
 */
export function withClientGone(base: (req: NodeRequest) => ContextValues): (req: NodeRequest) => ContextValues {
  return (req) => base(req).set(clientGoneKey, goneAwayCheck(req));
}

/**
 * Answers whether `req`'s client has gone away: over HTTP/2, it reset the stream (any
 * code but NO_ERROR) or its connection is gone; over HTTP/1.x, the connection is closed.
 * Read at request start, because Node drops an HTTP/1.x request's socket when the
 * request is destroyed.
 */
export function goneAwayCheck(req: NodeRequest): () => boolean {
  if ('stream' in req) {
    const { stream } = req;
    return () => {
      const code = stream.rstCode;
      // The compatibility request is marked aborted only by the stream's `aborted` event
      // (a reset before the response ended); destroying the request itself does not.
      return req.aborted || (code !== undefined && code !== http2.constants.NGHTTP2_NO_ERROR) || stream.session?.destroyed === true;
    };
  }
  // Not `req.aborted`: the server sets it too, when connect stops reading a request body
  // early (a malformed message) and the body stream is destroyed.
  const socket = req.socket;
  return () => socket.destroyed;
}
