import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import type tls from 'node:tls';
import type { connectNodeAdapter } from '@connectrpc/connect-node';
import type { TlsConfig } from '../config.ts';
import type { Logger } from '../logger.ts';
import { closeIdleSessions, http1ServerTimeouts, watchHttp1Deadlines } from './connection-timeouts.ts';
import { guardRequests } from './request-guard.ts';
import { withSecurityHeaders } from './security-headers.ts';
import { loadTlsCredentials } from './tls-credentials.ts';

/** Handles a request from either protocol: connect-node's adapter. */
export type RequestHandler = ReturnType<typeof connectNodeAdapter>;

/** Options of {@link createListener}. */
export interface ListenerOptions {
  readonly maxConcurrentStreams: number;
  readonly maxMessageBytes: number;
  readonly keepaliveIntervalMs: number;
  readonly keepaliveTimeoutMs: number;
  /** See `connection-timeouts.ts`; also bounds the TLS handshake and the first bytes of a cleartext connection. */
  readonly headersTimeoutMs: number;
  /** See `connection-timeouts.ts`. */
  readonly idleTimeoutMs: number;
  /** Serve TLS (and mutual TLS with a client CA) instead of cleartext. */
  readonly tls?: TlsConfig | undefined;
  readonly log: Logger;
  /** Asked at accept, before a byte is read; false closes the connection at once. */
  readonly admitConnection?: ((socket: net.Socket) => boolean) | undefined;
}

/** One TCP port speaking HTTP/2 (gRPC, Connect) and HTTP/1.1 (curl, gRPC-Web), cleartext or TLS. */
export interface Listener {
  listen(port: number, host: string): Promise<{ host: string; port: number }>;
  /** Stops accepting; closes idle connections now and the rest after `graceMs`. */
  close(graceMs: number): Promise<void>;
}

const HTTP2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

/**
 * Serves both protocols on one port.
 *
 * - Cleartext: Node's HTTP/2 server offers HTTP/1.1 fallback only through TLS ALPN, so
 *   each new connection's first bytes are inspected: the HTTP/2 connection preface goes to
 *   the HTTP/2 server, anything else to the HTTP/1.1 one.
 * - TLS (`options.tls`): one secure HTTP/2 server with `allowHTTP1`, so ALPN picks `h2` or
 *   `http/1.1`. With a client CA it asks for a client certificate: `require` refuses a
 *   client without a valid one at the handshake; `optional` admits clients without one
 *   (they authenticate with a bearer token) but closes a connection whose certificate does
 *   not verify, rather than treat it as anonymous.
 *
 * HTTP/2 sessions are pinged every `keepaliveIntervalMs` and closed when a ping goes
 * unanswered for `keepaliveTimeoutMs`, so dead peers do not hold streams open. Header and
 * idle timeouts close connections that carry no request (`connection-timeouts.ts`); every
 * request goes through the request guard (`request-guard.ts`), so none can stop the process.
 */
export function createListener(connectHandler: RequestHandler, options: ListenerOptions): Listener {
  const { log } = options;
  // Security headers outermost, so even the guard's own 400 and 500 answers carry them.
  const handler = withSecurityHeaders(guardRequests(connectHandler, { log }));
  const sessions = new Set<http2.Http2Session>();
  const sockets = new Set<net.Socket>();
  const h1 = trackHttp1(handler);
  const http2Options = {
    settings: { maxConcurrentStreams: options.maxConcurrentStreams },
    maxSessionMemory: 64,
    // The largest frame a client may send in one DATA frame is bounded by the settings;
    // whole-message size is bounded by connect's readMaxBytes.
  };
  const track = (socket: net.Socket) => {
    sockets.add(socket);
    socket.on('close', () => {
      sockets.delete(socket);
      h1.forget(socket);
    });
  };

  let server: net.Server;
  if (options.tls) {
    const credentials = loadTlsCredentials(options.tls);
    const requireCert = options.tls.clientAuth === 'require';
    const secure = http2.createSecureServer({
      ...http2Options,
      cert: credentials.cert,
      key: credentials.key,
      ...(credentials.ca ? { ca: credentials.ca, requestCert: true, rejectUnauthorized: requireCert } : {}),
      allowHTTP1: true,
      minVersion: 'TLSv1.2',
      handshakeTimeout: options.headersTimeoutMs,
      noDelay: true,
    });
    // HTTP/1.1 over TLS is served by Node's HTTP/1 code with this server's settings; these
    // match the cleartext HTTP/1.1 server (no request timeout for long Connect streams).
    Object.assign(secure, http1ServerTimeouts(options));
    watchHttp1Deadlines(secure, options, log);
    secure.on('request', (req: http2.Http2ServerRequest | http.IncomingMessage, res: http2.Http2ServerResponse | http.ServerResponse) => {
      if (req.httpVersionMajor === 1) h1.serve(req as http.IncomingMessage, res as http.ServerResponse);
      else handler(req, res);
    });
    watchSessions(secure, sessions, options);
    secure.on('connection', (socket: net.Socket) => {
      if (options.admitConnection && !options.admitConnection(socket)) return void socket.destroy();
      track(socket);
      socket.on('error', () => socket.destroy());
    });
    secure.on('secureConnection', (socket: tls.TLSSocket) => {
      track(socket);
      if (credentials.ca && !socket.authorized && Object.keys(socket.getPeerCertificate() ?? {}).length > 0) {
        log.info({ reason: String(socket.authorizationError) }, 'closing TLS connection: client certificate did not verify');
        socket.destroy();
      }
    });
    secure.on('tlsClientError', (err) => log.debug({ err: err.message }, 'TLS handshake failed'));
    server = secure;
  } else {
    const h2 = http2.createServer(http2Options);
    h2.on('request', handler);
    watchSessions(h2, sessions, options);
    const http1 = http.createServer({ maxHeaderSize: 16 * 1024, ...http1ServerTimeouts(options) }, h1.serve);
    watchHttp1Deadlines(http1, options, log);
    server = net.createServer((socket) => {
      if (options.admitConnection && !options.admitConnection(socket)) return void socket.destroy();
      track(socket);
      socket.on('error', () => socket.destroy());
      socket.setNoDelay(true);
      socket.setTimeout(options.headersTimeoutMs, () => socket.destroy());
      let head = Buffer.alloc(0);
      const onData = (chunk: Buffer) => {
        head = Buffer.concat([head, chunk]);
        const prefix = HTTP2_PREFACE.subarray(0, Math.min(head.length, HTTP2_PREFACE.length));
        const isHttp2 = head.subarray(0, prefix.length).equals(prefix);
        if (isHttp2 && head.length < HTTP2_PREFACE.length) return;
        socket.off('data', onData);
        socket.setTimeout(0);
        socket.pause();
        socket.unshift(head);
        if (isHttp2) {
          // The session reads what is buffered on the socket on its next tick; resuming
          // here would flow those bytes to no one.
          h2.emit('connection', socket);
        } else {
          http1.emit('connection', socket);
          socket.resume();
        }
      };
      socket.on('data', onData);
    });
  }

  return {
    listen(port, host) {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          const address = server.address() as net.AddressInfo;
          resolve({ host: address.address, port: address.port });
        });
      });
    },
    async close(graceMs) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const session of sessions) session.close();
      h1.closeIdle();
      const timer = setTimeout(() => {
        for (const session of sessions) session.destroy();
        for (const socket of sockets) socket.destroy();
      }, graceMs);
      timer.unref();
      await closed;
      clearTimeout(timer);
    },
  };
}

/** Keeps every HTTP/2 session in `sessions` while it is open, and pings it to find dead peers. */
function watchSessions(
  server: http2.Http2Server | http2.Http2SecureServer,
  sessions: Set<http2.Http2Session>,
  options: ListenerOptions,
): void {
  const { log } = options;
  server.on('session', (session: http2.ServerHttp2Session) => {
    sessions.add(session);
    const timer = setInterval(() => {
      // A session destroyed but not yet closed throws from ping(): with many sessions
      // closing at shutdown that would escape a timer callback and end the process.
      if (session.destroyed || session.closed) {
        clearInterval(timer);
        return;
      }
      try {
        const sent = session.ping((err) => {
          if (err && !session.destroyed) {
            log.info({ err: err.message }, 'closing HTTP/2 session: keepalive ping failed');
            session.destroy();
          }
        });
        if (!sent) session.destroy();
      } catch (err) {
        log.info({ err: (err as Error).message }, 'closing HTTP/2 session: keepalive ping refused');
        session.destroy();
      }
    }, options.keepaliveIntervalMs);
    timer.unref();
    session.setTimeout(options.keepaliveIntervalMs + options.keepaliveTimeoutMs, () => {
      // No frame at all for the interval plus the timeout: a ping would have produced one.
      session.destroy();
    });
    session.on('close', () => {
      clearInterval(timer);
      sessions.delete(session);
    });
    session.on('error', (err) => log.debug({ err: err.message }, 'HTTP/2 session error'));
    closeIdleSessions(session, options, log);
  });
}

/**
 * HTTP/1.1 keep-alive sockets are tracked by requests in flight, so a stop can close the
 * idle ones at once and the busy ones as soon as their response is sent.
 */
function trackHttp1(handler: RequestHandler) {
  const inFlight = new Map<net.Socket, number>();
  let closing = false;
  return {
    serve(req: http.IncomingMessage, res: http.ServerResponse) {
      const socket = req.socket;
      inFlight.set(socket, (inFlight.get(socket) ?? 0) + 1);
      res.on('close', () => {
        const left = (inFlight.get(socket) ?? 1) - 1;
        inFlight.set(socket, left);
        if (closing && left === 0) socket.destroy();
      });
      if (closing) res.setHeader('connection', 'close');
      handler(req, res);
    },
    forget(socket: net.Socket) {
      inFlight.delete(socket);
    },
    closeIdle() {
      closing = true;
      for (const [socket, n] of inFlight) if (n === 0) socket.destroy();
    },
  };
}
