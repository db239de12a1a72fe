import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import type { connectNodeAdapter } from '@connectrpc/connect-node';
import type { Logger } from '../logger.ts';

/** Handles a request from either protocol: connect-node's adapter. */
export type RequestHandler = ReturnType<typeof connectNodeAdapter>;

/** Options of {@link createListener}. */
export interface ListenerOptions {
  readonly maxConcurrentStreams: number;
  readonly maxMessageBytes: number;
  readonly keepaliveIntervalMs: number;
  readonly keepaliveTimeoutMs: number;
  readonly log: Logger;
}

/** One TCP port speaking cleartext HTTP/2 (gRPC, Connect) and HTTP/1.1 (curl, gRPC-Web). */
export interface Listener {
  listen(port: number, host: string): Promise<{ host: string; port: number }>;
  /** Stops accepting; closes idle connections now and the rest after `graceMs`. */
  close(graceMs: number): Promise<void>;
}

const HTTP2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

/**
 * Serves both protocols on one cleartext port. Node's HTTP/2 server offers HTTP/1.1
 * fallback only through TLS ALPN, so each new connection's first bytes are inspected: the
 * HTTP/2 connection preface goes to the HTTP/2 server, anything else to the HTTP/1.1 one.
 * HTTP/2 sessions are pinged every `keepaliveIntervalMs` and closed when a ping goes
 * unanswered for `keepaliveTimeoutMs`, so dead peers do not hold streams open.
 */
export function createListener(handler: RequestHandler, options: ListenerOptions): Listener {
  const { log } = options;
  const sessions = new Set<http2.Http2Session>();
  const sockets = new Set<net.Socket>();
  const h2 = http2.createServer({
    settings: { maxConcurrentStreams: options.maxConcurrentStreams },
    maxSessionMemory: 64,
    // The largest frame a client may send in one DATA frame is bounded by the settings;
    // whole-message size is bounded by connect's readMaxBytes.
  });
  h2.on('request', handler);
  h2.on('session', (session) => {
    sessions.add(session);
    const timer = setInterval(() => {
      const sent = session.ping((err) => {
        if (err && !session.destroyed) {
          log.info({ err: err.message }, 'closing HTTP/2 session: keepalive ping failed');
          session.destroy();
        }
      });
      if (!sent) session.destroy();
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
  });
  // HTTP/1.1 keep-alive sockets are tracked by requests in flight, so a stop can close the
  // idle ones at once and the busy ones as soon as their response is sent.
  const h1InFlight = new Map<net.Socket, number>();
  let closing = false;
  const h1 = http.createServer({ maxHeaderSize: 16 * 1024, requestTimeout: 0 }, (req, res) => {
    const socket = req.socket;
    h1InFlight.set(socket, (h1InFlight.get(socket) ?? 0) + 1);
    res.on('close', () => {
      const left = (h1InFlight.get(socket) ?? 1) - 1;
      h1InFlight.set(socket, left);
      if (closing && left === 0) socket.destroy();
    });
    if (closing) res.setHeader('connection', 'close');
    handler(req, res);
  });
  h1.keepAliveTimeout = 5_000;

  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => {
      sockets.delete(socket);
      h1InFlight.delete(socket);
    });
    socket.on('error', () => socket.destroy());
    socket.setNoDelay(true);
    // A connection that never says which protocol it speaks is closed, not kept forever.
    socket.setTimeout(10_000, () => socket.destroy());
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
        h1.emit('connection', socket);
        socket.resume();
      }
    };
    socket.on('data', onData);
  });

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
      closing = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const session of sessions) session.close();
      for (const [socket, inFlight] of h1InFlight) if (inFlight === 0) socket.destroy();
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
