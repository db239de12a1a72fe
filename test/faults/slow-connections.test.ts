import { once } from 'node:events';
import http2 from 'node:http2';
import tls from 'node:tls';
import { createClient } from '@connectrpc/connect';
import { createConnectTransport, createGrpcTransport } from '@connectrpc/connect-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Health, HealthCheckResponse_ServingStatus as Status } from '../../gen/grpc/health/v1/health_pb.ts';
import { toConfig, type ServerLimits } from '../../src/config.ts';
import { ServingStatus } from '../../src/server/health.ts';
import { createListener, type Listener, type RequestHandler } from '../../src/server/listener.ts';
import { createTestCa, type TestCa } from '../support/certificates.ts';
import { silentLog } from '../support/databases.ts';
import { FrameType, frame, h2Greeting, headerBlock, rawConnect } from '../support/raw-http.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

/**
 * Small timeouts through config, so each case takes a moment. Nothing here measures time:
 * a connection is "closed" when its socket closes, and "still open" when it still delivers
 * after several times both timeouts have passed.
 */
const TIMEOUTS = { headersTimeoutMs: 300, idleTimeoutMs: 300 } as const;
const limits: ServerLimits = { ...toConfig({}).limits, ...TIMEOUTS };
const PAST_BOTH_TIMEOUTS_MS = 4 * (TIMEOUTS.headersTimeoutMs + TIMEOUTS.idleTimeoutMs);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('header and idle timeouts on the cleartext port', () => {
  let t: TestServer;
  let port: number;
  beforeAll(async () => {
    t = await startTestServer('pglite', { limits });
    port = t.server.address.port;
  });
  afterAll(() => t?.stop());

  it('closes a connection that never sends a byte', async () => {
    const connection = await rawConnect(port);
    expect((await connection.closed).length).toBe(0);
  });

  it('closes an HTTP/1.1 connection that sends half a request header', async () => {
    const connection = await rawConnect(port);
    connection.write('POST /powerplane.v1.DeviceRegistryService/ListDevices HTTP/1.1\r\nHost: x\r\nContent-Type: appl');
    const received = (await connection.closed).toString('latin1');
    // Node's own headers timeout answers 408 when it comes first; the deadline just closes.
    expect(received === '' || received.startsWith('HTTP/1.1 408')).toBe(true);
  });

  it('closes an HTTP/1.1 keep-alive connection that idles after a response', async () => {
    const connection = await rawConnect(port);
    connection.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(await connection.waitForText('SERVING\n')).toBe(true);
    await connection.closed;
    expect(connection.received().toString('latin1')).toMatch(/^HTTP\/1\.1 200/);
  });

  it('closes a kept-alive HTTP/1.1 connection whose next request never finishes its headers', async () => {
    const connection = await rawConnect(port);
    connection.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(await connection.waitForText('SERVING\n')).toBe(true);
    connection.write('GET /healthz HTTP/1.1\r\nHo');
    await connection.closed;
    expect(
      connection
        .received()
        .toString('latin1')
        .match(/HTTP\/1\.1 200/g),
    ).toHaveLength(1);
  });

  it('closes an HTTP/2 connection that opens no stream, with a GOAWAY', async () => {
    const connection = await rawConnect(port);
    connection.write(h2Greeting());
    await connection.closed;
    expect(connection.frames().some((f) => f.type === FrameType.GOAWAY)).toBe(true);
  });

  it('closes an HTTP/2 connection whose first HEADERS never end', async () => {
    const connection = await rawConnect(port);
    const headers = headerBlock([
      [':method', 'POST'],
      [':scheme', 'http'],
      [':authority', 'x'],
      [':path', '/grpc.health.v1.Health/Check'],
    ]);
    // No END_HEADERS: the server waits for a CONTINUATION that never comes.
    connection.write(Buffer.concat([h2Greeting(), frame(FrameType.HEADERS, 0, 1, headers)]));
    await connection.closed;
    expect(connection.frames().some((f) => f.type === FrameType.HEADERS && f.streamId === 1)).toBe(false);
  });

  it('closes an idle HTTP/2 connection after its last stream with GOAWAY NO_ERROR, and the call it carried succeeded', async () => {
    const session = http2.connect(t.baseUrl);
    session.on('error', () => undefined);
    const goaway = once(session, 'goaway') as Promise<[number]>;
    const closed = once(session, 'close');
    const status = await new Promise<number>((resolve, reject) => {
      const stream = session.request({ ':path': '/healthz' });
      stream.on('response', (headers) => resolve(Number(headers[':status'])));
      stream.on('error', reject);
      stream.resume();
      stream.end();
    });
    expect(status).toBe(200);
    const [code] = await goaway;
    expect(code).toBe(http2.constants.NGHTTP2_NO_ERROR);
    await closed;
    expect(session.closed || session.destroyed).toBe(true);
  });

  it('keeps long-lived streams open past both timeouts, over HTTP/2 and HTTP/1.1', async () => {
    const watchers = [
      createClient(Health, createGrpcTransport({ baseUrl: t.baseUrl })),
      createClient(Health, createConnectTransport({ baseUrl: t.baseUrl, httpVersion: '1.1' })),
    ].map((client) => {
      const controller = new AbortController();
      const seen: Status[] = [];
      const changes = new Set<() => void>();
      const done = (async () => {
        for await (const res of client.watch({ service: '' }, { signal: controller.signal })) {
          seen.push(res.status);
          for (const change of changes) change();
        }
      })().catch((err: unknown) => (controller.signal.aborted ? undefined : err));
      const waitFor = (status: Status) =>
        new Promise<void>((resolve) => {
          const check = () => {
            if (seen.includes(status)) {
              changes.delete(check);
              resolve();
            }
          };
          changes.add(check);
          check();
        });
      return { controller, seen, done, waitFor };
    });
    try {
      await Promise.all(watchers.map((w) => w.waitFor(Status.SERVING)));
      await sleep(PAST_BOTH_TIMEOUTS_MS);
      // Still open: a change now reaches both watchers.
      t.server.health.setAll(ServingStatus.NOT_SERVING);
      await Promise.all(watchers.map((w) => w.waitFor(Status.NOT_SERVING)));
      expect(watchers.map((w) => w.seen)).toEqual([
        [Status.SERVING, Status.NOT_SERVING],
        [Status.SERVING, Status.NOT_SERVING],
      ]);
    } finally {
      t.server.health.setAll(ServingStatus.SERVING);
      for (const w of watchers) w.controller.abort();
      expect(await Promise.all(watchers.map((w) => w.done))).toEqual([undefined, undefined]);
    }
  });
});

describe('header and idle timeouts over TLS', () => {
  let ca: TestCa;
  let listener: Listener;
  let port: number;
  const ok: RequestHandler = (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('ok');
  };
  const connectTls = async (alpn: string) => {
    const socket = tls.connect({ port, host: '127.0.0.1', ca: ca.cert, servername: 'localhost', ALPNProtocols: [alpn] });
    socket.on('error', () => undefined);
    await once(socket, 'secureConnect');
    const closed = once(socket, 'close');
    let received = '';
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    return { socket, closed, received: () => received };
  };

  beforeAll(async () => {
    ca = createTestCa();
    const cert = ca.issue('server', 'localhost', { altNames: ['DNS:localhost', 'IP:127.0.0.1'], usage: 'serverAuth' });
    listener = createListener(ok, {
      ...limits,
      tls: { certFile: cert.certFile, keyFile: cert.keyFile, clientCaFile: undefined, clientAuth: 'optional' },
      log: silentLog,
    });
    port = (await listener.listen(0, '127.0.0.1')).port;
  });
  afterAll(async () => {
    await listener?.close(0);
    ca?.remove();
  });

  it('closes a connection that never starts its TLS handshake', async () => {
    const connection = await rawConnect(port);
    expect((await connection.closed).length).toBe(0);
  });

  it('closes an HTTP/1.1 connection that sends half a request header (Node does not time these out over TLS)', async () => {
    const connection = await connectTls('http/1.1');
    connection.socket.write('GET / HTTP/1.1\r\nHost: x\r\nX-Half: ');
    await connection.closed;
    expect(connection.received()).toBe('');
  });

  it('closes an HTTP/1.1 keep-alive connection that idles after a response', async () => {
    const connection = await connectTls('http/1.1');
    connection.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await connection.closed;
    expect(connection.received()).toMatch(/^HTTP\/1\.1 200[\s\S]*\r\nok\r\n/);
  });

  it('closes an HTTP/2 connection that opens no stream', async () => {
    const connection = await connectTls('h2');
    connection.socket.write(h2Greeting());
    await connection.closed;
    expect(connection.socket.alpnProtocol).toBe('h2');
  });

  it('still serves a request that completes in time', async () => {
    const connection = await connectTls('http/1.1');
    connection.socket.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    await connection.closed;
    expect(connection.received()).toMatch(/^HTTP\/1\.1 200/);
  });
});
