/**
 * Header and idle timeouts, so a connection that sends nothing useful is not held open.
 *
 * - HTTP/1.1: a request's headers must be complete within `headersTimeoutMs` of the
 *   connection's start; on a kept-alive connection, within `idleTimeoutMs +
 *   headersTimeoutMs` of the previous response's end (Node closes a wholly idle one after
 *   `idleTimeoutMs`). Node's own `headersTimeout` is set too, but it is checked only every
 *   30 s, and not at all for HTTP/1.1 over the TLS server (`allowHTTP1`): the deadline
 *   here is one timer per connection that covers both.
 * - HTTP/2: a session must open its first stream (its HEADERS complete) within
 *   `headersTimeoutMs`, and a session with no open stream is closed after
 *   `idleTimeoutMs`. A stream, however long it lives (StreamReadings, WatchSetpoints,
 *   Health.Watch), keeps its session open: keepalive PINGs find dead peers there.
 *
 * Nothing here cuts a request once its headers are in.
 */
import type http from 'node:http';
import http2 from 'node:http2';
import type net from 'node:net';
import tls from 'node:tls';
import type { Logger } from '../logger.ts';

/** The two timeouts, in ms (`POWERPLANE_HEADERS_TIMEOUT_MS`, `POWERPLANE_IDLE_TIMEOUT_MS`). */
export interface ConnectionTimeouts {
  readonly headersTimeoutMs: number;
  readonly idleTimeoutMs: number;
}

/** The largest HTTP/2 stream id: a GOAWAY naming it refuses no stream. */
const LAST_STREAM_ID = 2 ** 31 - 1;

/**
 * Node's HTTP/1.1 server settings for `timeouts`: for `http.createServer`, and assigned to
 * the TLS server, whose HTTP/1.1 connections read the same properties. No request
 * timeout: a Connect server stream over HTTP/1.1 lives as long as the call.
 */
export function http1ServerTimeouts(timeouts: ConnectionTimeouts): {
  headersTimeout: number;
  keepAliveTimeout: number;
  requestTimeout: number;
} {
  return { headersTimeout: timeouts.headersTimeoutMs, keepAliveTimeout: timeouts.idleTimeoutMs, requestTimeout: 0 };
}

/**
 * Closes every HTTP/1.1 connection of `server` whose request headers are not complete in
 * time (see the file header). `server` is the cleartext HTTP/1.1 server, which is handed
 * its connections through `connection` events, or the TLS server, whose HTTP/1.1
 * connections are those that did not choose `h2`.
 */
export function watchHttp1Deadlines(server: http.Server | http2.Http2SecureServer, timeouts: ConnectionTimeouts, log: Logger): void {
  interface Deadline {
    timer: NodeJS.Timeout | undefined;
    inFlight: number;
  }
  const deadlines = new WeakMap<net.Socket, Deadline>();
  const arm = (socket: net.Socket, deadline: Deadline, ms: number) => {
    clearTimeout(deadline.timer);
    deadline.timer = setTimeout(() => {
      log.debug({ remoteAddress: socket.remoteAddress }, 'closing HTTP/1.1 connection: request headers not complete in time');
      socket.destroy();
    }, ms);
    deadline.timer.unref();
  };
  const onConnection = (socket: net.Socket) => {
    if ((socket as tls.TLSSocket).alpnProtocol === 'h2') return;
    const deadline: Deadline = { timer: undefined, inFlight: 0 };
    deadlines.set(socket, deadline);
    arm(socket, deadline, timeouts.headersTimeoutMs);
    socket.once('close', () => clearTimeout(deadline.timer));
  };
  // The TLS server's `connection` comes before the handshake has chosen a protocol.
  server.on(server instanceof tls.Server ? 'secureConnection' : 'connection', onConnection);
  server.on('request', (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) => {
    if (req.httpVersionMajor !== 1) return;
    const socket = req.socket;
    const deadline = deadlines.get(socket);
    if (!deadline) return;
    deadline.inFlight++;
    clearTimeout(deadline.timer);
    res.once('close', () => {
      deadline.inFlight--;
      if (deadline.inFlight === 0 && !socket.destroyed) arm(socket, deadline, timeouts.idleTimeoutMs + timeouts.headersTimeoutMs);
    });
  });
}

/**
 * Closes `session` when it opens no stream within `headersTimeoutMs` of its start, or
 * has had no open stream for `idleTimeoutMs`. It is closed the way gRPC servers close
 * idle connections: a GOAWAY that refuses nothing and a PING, then, once the PING is
 * answered (the client has seen the GOAWAY, so opens no more streams), a graceful close
 * that lets any stream the client opened meanwhile finish; no call is lost to the race.
 * A client that answers nothing and opens nothing is cut off after `headersTimeoutMs`.
 */
export function closeIdleSessions(session: http2.ServerHttp2Session, timeouts: ConnectionTimeouts, log: Logger): void {
  let open = 0;
  let timer: NodeJS.Timeout | undefined;
  let backstop: NodeJS.Timeout | undefined;
  const arm = (ms: number, reason: string) => {
    clearTimeout(timer);
    timer = setTimeout(() => expire(reason), ms);
    timer.unref();
  };
  const expire = (reason: string) => {
    if (open > 0 || session.closed || session.destroyed) return;
    log.debug({ reason }, 'closing HTTP/2 connection');
    try {
      session.goaway(http2.constants.NGHTTP2_NO_ERROR, LAST_STREAM_ID);
      const sent = session.ping(() => session.close());
      if (!sent) session.close();
    } catch {
      // The session is already going (a ping on a closing session throws).
      session.close();
    }
    clearTimeout(backstop);
    backstop = setTimeout(() => {
      if (open === 0 && !session.destroyed) session.destroy();
    }, timeouts.headersTimeoutMs);
    backstop.unref();
  };
  arm(timeouts.headersTimeoutMs, 'opened no stream in time');
  session.on('stream', (stream: http2.ServerHttp2Stream) => {
    open++;
    clearTimeout(timer);
    stream.once('close', () => {
      open--;
      if (open === 0) arm(timeouts.idleTimeoutMs, 'idle');
    });
  });
  session.once('close', () => {
    clearTimeout(timer);
    clearTimeout(backstop);
  });
}
