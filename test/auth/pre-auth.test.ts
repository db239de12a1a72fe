import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { create } from '@bufbuild/protobuf';
import { Code, ConnectError, createClient, type Transport } from '@connectrpc/connect';
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from '@connectrpc/connect-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RetryInfoSchema } from '../../gen/google/rpc/error_details_pb.ts';
import { TokenService } from '../../gen/powerplane/v1/auth_pb.ts';
import { DeviceRegistryService, DeviceSchema } from '../../gen/powerplane/v1/devices_pb.ts';
import { createAuditLog } from '../../src/audit/audit.ts';
import { bearer } from '../../src/auth/bearer.ts';
import { createTokenStore } from '../../src/auth/tokens.ts';
import { toConfig } from '../../src/config.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

/** A request body of the size the probe sent (3.9 MB), under the 4 MiB message limit. */
const BODY_BYTES = 3_900_000;
const CHUNK = Buffer.alloc(64 * 1024, 0x61);

/** What an HTTP/2 upload saw: how much of its body the client got to write before the answer, and the answer. */
interface Upload {
  readonly sent: number;
  readonly headers: http2.IncomingHttpHeaders;
  readonly trailers: http2.IncomingHttpHeaders;
  readonly body: Buffer;
}

/**
 * Sends `path` a body of `total` bytes (starting with `prefix`) over HTTP/2, writing only
 * as fast as flow control lets it, and stops writing once the answer's head arrives. A
 * server that reads the body before answering gets all of it; one that answers from the
 * headers gets at most its flow-control window.
 */
function uploadUntilAnswered(
  port: number,
  path: string,
  contentType: string,
  total: number,
  prefix: Uint8Array = new Uint8Array(0),
): Promise<Upload> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', reject);
    const stream = session.request({ ':method': 'POST', ':path': path, 'content-type': contentType, te: 'trailers' });
    let sent = 0;
    let answered = false;
    let headers: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    const body: Buffer[] = [];
    const pump = () => {
      while (!answered && sent < total) {
        const chunk =
          sent === 0 && prefix.length
            ? Buffer.concat([prefix, CHUNK.subarray(prefix.length)])
            : CHUNK.subarray(0, Math.min(CHUNK.length, total - sent));
        sent += chunk.length;
        if (!stream.write(chunk)) return void stream.once('drain', pump);
      }
      if (!answered) stream.end();
    };
    stream.on('response', (h) => {
      answered = true;
      headers = h;
    });
    stream.on('trailers', (t) => (trailers = t));
    stream.on('data', (d: Buffer) => body.push(d));
    stream.on('error', () => undefined);
    stream.on('close', () => {
      session.close();
      resolve({ sent, headers, trailers, body: Buffer.concat(body) });
    });
    pump();
  });
}

/** A gRPC (and gRPC-Web) message prefix announcing a message of `length` bytes. */
function envelopeHead(length: number, flags = 0): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt8(flags, 0);
  head.writeUInt32BE(length, 1);
  return head;
}

/**
 * Sends an HTTP/1.1 request head over a raw socket, then as much of its body as the socket
 * takes, until a whole answer (head and content-length body) has arrived.
 */
function http1Upload(port: number, head: string, total: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let sent = 0;
    let response = '';
    socket.on('error', () => undefined);
    const pump = () => {
      while (sent < total) {
        const chunk = CHUNK.subarray(0, Math.min(CHUNK.length, total - sent));
        sent += chunk.length;
        if (!socket.write(chunk)) return void socket.once('drain', pump);
      }
    };
    socket.on('data', (d: Buffer) => {
      response += d.toString('latin1');
      const end = response.indexOf('\r\n\r\n');
      const length = Number(/\r\ncontent-length: (\d+)/i.exec(response)?.[1] ?? NaN);
      if (end >= 0 && response.length - end - 4 >= length) {
        socket.destroy();
        resolve(response);
      }
    });
    socket.on('close', () => reject(new Error(`closed before a whole answer: ${JSON.stringify(response)}`)));
    socket.write(head);
    pump();
  });
}

describe('authentication before the request body is read', () => {
  let t: TestServer;
  let port: number;
  let admin: string;

  beforeAll(async () => {
    const base = toConfig({ dataDir: 'memory://' });
    t = await startTestServer('pglite', { auth: { ...base.auth, adminTokenFile: undefined, failureRatePerS: 1, failureBurst: 3 } });
    port = t.server.address.port;
    admin = (
      await createTokenStore({ db: t.server.database.db, cacheMs: 0 }).create(
        { name: 'admin', scopes: ['registry:admin', 'metrics:read'] },
        'test',
      )
    ).secret;
  });
  afterAll(async () => {
    await t?.stop();
  });

  it.each([
    ['gRPC', 'application/grpc', '/powerplane.v1.DeviceRegistryService/CreateDevice'],
    ['gRPC-Web', 'application/grpc-web+proto', '/powerplane.v1.DeviceRegistryService/CreateDevice'],
  ])('refuses a large unauthenticated %s upload with UNAUTHENTICATED before reading it', async (_, contentType, path) => {
    const upload = await uploadUntilAnswered(port, path, contentType, BODY_BYTES, envelopeHead(BODY_BYTES - 5));
    const status =
      upload.trailers['grpc-status'] ?? upload.headers['grpc-status'] ?? /grpc-status:\s*(\d+)/.exec(upload.body.toString('latin1'))?.[1];
    expect(upload.headers[':status']).toBe(200);
    expect(status).toBe(String(Code.Unauthenticated));
    // At most the stream's flow-control window was taken in; the rest was never sent.
    expect(upload.sent).toBeLessThan(BODY_BYTES / 4);
  });

  it('refuses a large unauthenticated Connect upload with 401 and a Connect error before reading it', async () => {
    const upload = await uploadUntilAnswered(port, '/powerplane.v1.DeviceRegistryService/CreateDevice', 'application/json', BODY_BYTES);
    expect(upload.headers[':status']).toBe(401);
    expect(JSON.parse(upload.body.toString())).toMatchObject({
      code: 'unauthenticated',
      message: expect.stringContaining('credentials required'),
    });
    expect(upload.sent).toBeLessThan(BODY_BYTES / 4);
  });

  it.each([
    ['a server stream', '/powerplane.v1.DispatchService/WatchSetpoints'],
    ['a bidirectional stream', '/powerplane.v1.TelemetryService/StreamReadings'],
  ])('ends %s over Connect with an UNAUTHENTICATED end-stream message before reading its first message', async (_, path) => {
    const upload = await uploadUntilAnswered(port, path, 'application/connect+proto', BODY_BYTES, envelopeHead(BODY_BYTES - 5));
    expect(upload.headers[':status']).toBe(200);
    // One envelope flagged end-stream (2) holding the error as JSON.
    expect(upload.body.readUInt8(0)).toBe(2);
    expect(JSON.parse(upload.body.subarray(5).toString())).toMatchObject({ error: { code: 'unauthenticated' } });
    expect(upload.sent).toBeLessThan(BODY_BYTES / 4);
  });

  it(
    'answers an unauthenticated Connect upload over HTTP/1.1 with 401 and closes the connection ' + 'instead of draining the body',
    async () => {
      const head =
        'POST /powerplane.v1.DeviceRegistryService/CreateDevice HTTP/1.1\r\nHost: 127.0.0.1\r\n' +
        `content-type: application/json\r\ncontent-length: ${BODY_BYTES}\r\n\r\n`;
      const response = await http1Upload(port, head, BODY_BYTES);
      expect(response).toMatch(/^HTTP\/1\.1 401 /);
      expect(response).toMatch(/\r\nconnection: close\r\n/i);
      expect(response).toContain('"code":"unauthenticated"');
    },
  );

  it.each([
    ['gRPC', (baseUrl: string) => createGrpcTransport({ baseUrl })],
    ['gRPC-Web', (baseUrl: string) => createGrpcWebTransport({ baseUrl, httpVersion: '2' })],
    ['Connect', (baseUrl: string) => createConnectTransport({ baseUrl, httpVersion: '2' })],
  ])('gives a %s client sending a large unauthenticated request UNAUTHENTICATED', async (_, transport: (baseUrl: string) => Transport) => {
    const registry = createClient(DeviceRegistryService, transport(t.baseUrl));
    const err = await registry
      .createDevice({ device: create(DeviceSchema, { name: 'x'.repeat(BODY_BYTES), site: 'a' }) })
      .catch((e: unknown) => e);
    expect(ConnectError.from(err)).toMatchObject({
      code: Code.Unauthenticated,
      rawMessage: expect.stringContaining('credentials required'),
    });
    // The same call with a token goes on to the handler, which refuses the name.
    const authorized = createClient(DeviceRegistryService, createGrpcTransport({ baseUrl: t.baseUrl, interceptors: [bearer(admin)] }));
    const invalid = await authorized
      .createDevice({ device: create(DeviceSchema, { name: 'x'.repeat(BODY_BYTES), site: 'a' }) })
      .catch((e: unknown) => e);
    expect(ConnectError.from(invalid).code).toBe(Code.InvalidArgument);
  });

  describe('failed authentications per peer address', () => {
    const from = (localAddress: string, token?: string) => {
      const transport = createGrpcTransport({
        baseUrl: t.baseUrl,
        nodeOptions: { localAddress } as http2.ClientSessionOptions,
        interceptors: token ? [bearer(token)] : [],
      });
      return createClient(TokenService, transport);
    };
    const guess = () => `pp_${Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString('base64url')}`;
    const codeOf = async (call: Promise<unknown>) =>
      ConnectError.from(
        await call.then(
          () => new ConnectError('ok', Code.Unknown),
          (e: unknown) => e,
        ),
      );

    it(
      'refuses an address past its burst of bad tokens RESOURCE_EXHAUSTED with retry info, even with a good token, ' +
        'and spares other addresses',
      async () => {
        // Three guesses, the burst: each is looked up and refused.
        for (let i = 0; i < 3; i++) expect((await codeOf(from('127.0.0.2', guess()).getCaller({}))).code).toBe(Code.Unauthenticated);
        // Then nothing from that address is looked up: a valid token is refused too.
        const refused = await codeOf(from('127.0.0.2', admin).getCaller({}));
        expect(refused.code).toBe(Code.ResourceExhausted);
        expect(refused.rawMessage).toMatch(
          /^rate limit for failed authentications exceeded \(1 per second with bursts of 3 per caller\) - retry after \d+ ms$/,
        );
        expect(refused.metadata.get('retry-after')).toBe('1');
        const [retryInfo] = refused.findDetails(RetryInfoSchema);
        const delayMs = Number(retryInfo!.retryDelay!.seconds) * 1000 + retryInfo!.retryDelay!.nanos / 1e6;
        expect(delayMs).toBeGreaterThan(0);
        expect(delayMs).toBeLessThanOrEqual(1000);

        // Connect over HTTP/1.1 and /metrics from that address are refused the same way.
        const plain = await new Promise<http.IncomingMessage>((resolve, reject) => {
          const req = http.request(
            {
              host: '127.0.0.1',
              port,
              localAddress: '127.0.0.2',
              method: 'POST',
              path: '/powerplane.v1.TokenService/GetCaller',
              headers: { 'content-type': 'application/json' },
            },
            resolve,
          );
          req.on('error', reject);
          req.end('{}');
        });
        expect(plain.statusCode).toBe(429);
        expect(plain.headers['retry-after']).toBe('1');
        plain.resume();
        const metrics = await new Promise<http.IncomingMessage>((resolve, reject) => {
          http
            .get(
              { host: '127.0.0.1', port, localAddress: '127.0.0.2', path: '/metrics', headers: { authorization: `Bearer ${admin}` } },
              resolve,
            )
            .on('error', reject);
        });
        expect(metrics.statusCode).toBe(429);
        metrics.resume();

        // Another address is served as usual.
        expect((await from('127.0.0.1', admin).getCaller({})).scopes).toContain('registry:admin');
        // Calls without any credentials cost no lookup and are not counted against an address.
        for (let i = 0; i < 5; i++) expect((await codeOf(from('127.0.0.3').getCaller({}))).code).toBe(Code.Unauthenticated);
        expect((await from('127.0.0.3', admin).getCaller({})).scopes).toContain('registry:admin');

        // After the advised delay the address may try again.
        await new Promise((resolve) => setTimeout(resolve, delayMs));
        expect((await from('127.0.0.2', admin).getCaller({})).scopes).toContain('registry:admin');

        const rows = await createAuditLog({ db: t.server.database.db }).list({ principal: 'unauthenticated', limit: 1_000 });
        expect(rows.find((r) => r.method === 'powerplane.v1.TokenService/GetCaller' && r.code === 'ResourceExhausted')).toMatchObject({
          phase: 'refused',
        });
        const text = await (await fetch(`${t.baseUrl}/metrics`, { headers: { authorization: `Bearer ${admin}` } })).text();
        expect(Number(/^powerplane_rpc_refused_total\{reason="auth_failure_rate"\} (\d+)$/m.exec(text)?.[1])).toBeGreaterThanOrEqual(3);
        expect(
          Number(
            /^powerplane_rpc_calls_total\{service="powerplane.v1.TokenService",method="GetCaller",code="unauthenticated"\} (\d+)$/m.exec(
              text,
            )?.[1],
          ),
        ).toBeGreaterThanOrEqual(8);
      },
    );
  });
});

/** Sends one HTTP/1.1 request on an open socket and reads its answer (a body with content-length). */
function exchange(socket: net.Socket, request: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (d: Buffer) => {
      text += d.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      const length = Number(/\r\ncontent-length: (\d+)/i.exec(text)?.[1] ?? NaN);
      if (end >= 0 && text.length - end - 4 >= length) {
        socket.off('data', onData);
        socket.off('close', onClose);
        resolve({ status: Number(text.slice(9, 12)), body: text.slice(end + 4) });
      }
    };
    const onClose = () => reject(new Error(`connection closed before an answer: ${JSON.stringify(text)}`));
    socket.on('data', onData);
    socket.once('close', onClose);
    socket.write(request);
  });
}

describe('connections that have not authenticated, per peer address', () => {
  let t: TestServer;
  let port: number;
  let token: string;
  const sockets: net.Socket[] = [];

  /** A raw TCP connection from `localAddress`, once connected. */
  const open = (localAddress = '127.0.0.1') =>
    new Promise<net.Socket>((resolve, reject) => {
      const socket = net.connect({ port, host: '127.0.0.1', localAddress });
      sockets.push(socket);
      socket.once('connect', () => resolve(socket));
      socket.once('error', reject);
    });
  /** Resolves once the server has closed `socket` without sending anything; rejects if it answers. */
  const closedUnanswered = (socket: net.Socket) =>
    new Promise<void>((resolve, reject) => {
      socket.once('data', () => reject(new Error('the server answered')));
      socket.once('close', () => resolve());
    });
  const healthz = 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n';
  const authenticated = () =>
    `POST /powerplane.v1.TokenService/GetCaller HTTP/1.1\r\nHost: 127.0.0.1\r\nauthorization: Bearer ${token}\r\n` +
    'content-type: application/json\r\ncontent-length: 2\r\n\r\n{}';

  beforeAll(async () => {
    const base = toConfig({ dataDir: 'memory://' });
    t = await startTestServer('pglite', { auth: { ...base.auth, adminTokenFile: undefined, maxUnauthenticatedConnectionsPerIp: 3 } });
    port = t.server.address.port;
    token = (await createTokenStore({ db: t.server.database.db, cacheMs: 0 }).create({ name: 'reader', scopes: ['readings:read'] }, 'test'))
      .secret;
  });
  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    await t?.stop();
  });

  it('closes a new connection at once past the limit, counting each connection until it authenticates or closes', async () => {
    const [first, second, third] = [await open(), await open(), await open()];
    await closedUnanswered(await open());
    // Another address has its own count.
    expect((await exchange(await open('127.0.0.2'), healthz)).status).toBe(200);

    // A public request does not make a connection authenticated; a call with a token does.
    expect((await exchange(third!, healthz)).status).toBe(200);
    await closedUnanswered(await open());
    const caller = await exchange(first!, authenticated());
    expect(caller.status).toBe(200);
    expect(JSON.parse(caller.body)).toMatchObject({ scopes: ['readings:read'] });
    const fourth = await open();
    expect((await exchange(fourth, healthz)).status).toBe(200);
    await closedUnanswered(await open());

    // A closed connection frees its place, once the server has seen it close.
    second!.destroy();
    let admitted: number | undefined;
    for (let attempt = 0; attempt < 50 && admitted === undefined; attempt++) {
      admitted = await exchange(await open(), healthz).then(
        (r) => r.status,
        () => undefined,
      );
      if (admitted === undefined) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(admitted).toBe(200);
    // The authenticated connection is still served.
    expect((await exchange(first!, healthz)).status).toBe(200);
  });
});
