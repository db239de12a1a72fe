import http from 'node:http';
import http2 from 'node:http2';
import type net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FrameType, Flag, frame, h2Greeting, headerBlock, indexedStatus, rawConnect, rawExchange } from '../../test/support/raw-http.ts';
import { createLogger } from '../logger.ts';
import { guardRequests, requestInFlight, type NodeRequest, type NodeResponse } from './request-guard.ts';

/** Log lines as parsed JSON, written by a logger the guard logs to. */
function capturedLog() {
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger('debug', { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  return { log, lines };
}

/**
 * What the guarded handler does, by path. Each failing route fails in its own way; none
 * of them may take the server down, which is what the guard is for.
 */
function testHandler(calls: string[]) {
  return (req: NodeRequest, res: NodeResponse): void | Promise<void> => {
    const path = req.url ?? '';
    calls.push(path);
    switch (path) {
      case '/authority':
        res.end(('stream' in req ? req.authority : req.headers.host) ?? '');
        return;
      case '/throw':
        throw new Error('thrown by the handler');
      case '/reject':
        return Promise.reject(new Error('rejected by the handler'));
      case '/throw-in-end-listener':
        req.on('end', () => {
          throw new Error('thrown by an end listener');
        });
        req.resume();
        return;
      case '/throw-after-headers':
        res.writeHead(200, { 'content-type': 'text/plain' });
        (res as http.ServerResponse).write('partial');
        throw new Error('thrown after the headers were sent');
      case '/in-flight':
        setTimeout(() => res.end(requestInFlight() ? 'inside' : 'outside'), 1);
        return;
      default:
        res.end('ok');
    }
  };
}

describe('the request guard over HTTP/1.x', () => {
  const calls: string[] = [];
  const { log, lines } = capturedLog();
  let server: http.Server;
  let port: number;

  beforeAll(async () => {
    server = http.createServer(guardRequests(testHandler(calls), { log }));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as net.AddressInfo).port;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it('gives an HTTP/1.0 request without Host the address it came to as its authority', async () => {
    const answer = await rawExchange(port, 'GET /authority HTTP/1.0\r\n\r\n');
    expect(answer).toMatch(/^HTTP\/1\.1 200/);
    expect(answer.endsWith(`\r\n\r\n127.0.0.1:${port}`)).toBe(true);
  });

  it.each([
    ['HTTP/1.0 with an empty Host', 'GET /authority HTTP/1.0\r\nHost:\r\n\r\n', 'the Host header is empty'],
    ['HTTP/1.1 with an empty Host', 'GET /authority HTTP/1.1\r\nHost: \r\n\r\n', 'the Host header is empty'],
    ['HTTP/1.1 with two Hosts', 'GET /authority HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', 'more than one Host header'],
    ['HTTP/1.0 with two Hosts', 'GET /authority HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n', 'more than one Host header'],
    ['a Host that is no authority', 'GET /authority HTTP/1.1\r\nHost: a b\r\n\r\n', 'not a valid host and port'],
  ])('answers %s with 400 naming the problem, without calling the handler', async (_, request, problem) => {
    const before = calls.length;
    const answer = await rawExchange(port, request);
    expect(answer).toMatch(/^HTTP\/1\.1 400/);
    expect(answer).toContain(problem);
    expect(calls.length).toBe(before);
  });

  it.each([
    ['/throw', 'handler'],
    ['/reject', 'handler promise'],
    ['/throw-in-end-listener', 'end listener'],
  ])('answers a request whose handler fails at %s with 500, logs the error, and keeps serving', async (path, origin) => {
    const answer = await rawExchange(port, `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}`);
    expect(answer).toMatch(/^HTTP\/1\.1 500/);
    expect(answer).toContain('internal error');
    expect(lines).toContainEqual(expect.objectContaining({ level: 50, path, origin, msg: 'request handler failed' }));
    expect(await rawExchange(port, 'GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')).toMatch(/^HTTP\/1\.1 200/);
  });

  it('closes the connection of a request that fails after its headers were written', async () => {
    // rawExchange resolves when the server closes the connection; what was buffered of the
    // response may or may not have gone out, but never a whole one, nor a 500 after a 200.
    const answer = await rawExchange(port, 'GET /throw-after-headers HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(answer).not.toContain('500');
    expect(answer).not.toMatch(/\r\n0\r\n\r\n$/);
    expect(lines).toContainEqual(expect.objectContaining({ path: '/throw-after-headers', msg: 'request handler failed' }));
  });

  it('runs what the handler starts in the request context, and nothing else', async () => {
    expect(requestInFlight()).toBeUndefined();
    expect(await rawExchange(port, 'GET /in-flight HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')).toMatch(/inside$/);
  });
});

describe('the request guard over HTTP/2', () => {
  const calls: string[] = [];
  const { log, lines } = capturedLog();
  let server: http2.Http2Server;
  let port: number;
  let session: http2.ClientHttp2Session;

  const request = (headers: http2.OutgoingHttpHeaders, body?: string) =>
    new Promise<{ status: number | undefined; body: string; rstCode: number | undefined }>((resolve) => {
      const stream = session.request(headers);
      let status: number | undefined;
      let text = '';
      stream.on('response', (h) => (status = Number(h[':status'])));
      stream.on('data', (chunk: Buffer) => (text += chunk.toString()));
      stream.on('error', () => undefined);
      stream.on('close', () => resolve({ status, body: text, rstCode: stream.rstCode }));
      stream.end(body);
    });

  beforeAll(async () => {
    server = http2.createServer(guardRequests(testHandler(calls), { log }));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as net.AddressInfo).port;
    session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', () => undefined);
  });
  afterAll(async () => {
    session.destroy();
    await new Promise((resolve) => server.close(resolve));
  });

  it.each([
    ['no :authority and no host', []],
    ['an empty :authority', [[':authority', '']]],
    ['an empty host', [['host', '']]],
  ] as const)('refuses a stream with %s without calling the handler, and serves the next stream', async (_, authority) => {
    const connection = await rawConnect(port);
    try {
      const before = calls.length;
      const headers = (more: ReadonlyArray<readonly [string, string]>) =>
        headerBlock([[':method', 'GET'], [':scheme', 'http'], [':path', '/authority'], ...more]);
      connection.write(Buffer.concat([h2Greeting(), frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, 1, headers(authority))]));
      // nghttp2 resets such a stream itself (PROTOCOL_ERROR); the guard answers 400 to any that got through.
      const refusal = await connection.waitForFrame(
        (f) => f.streamId === 1 && (f.type === FrameType.RST_STREAM || f.type === FrameType.HEADERS),
      );
      expect(refusal?.type === FrameType.RST_STREAM ? refusal.payload.readUInt32BE(0) : indexedStatus(refusal!.payload)).toBeOneOf([
        http2.constants.NGHTTP2_PROTOCOL_ERROR,
        400,
      ]);
      connection.write(frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, 3, headers([[':authority', 'x']])));
      const next = await connection.waitForFrame((f) => f.streamId === 3 && f.type === FrameType.HEADERS);
      expect(next && indexedStatus(next.payload)).toBe(200);
      expect(calls.length).toBe(before + 1);
    } finally {
      connection.destroy();
    }
  });

  it.each([
    ['/throw', 'handler'],
    ['/reject', 'handler promise'],
    ['/throw-in-end-listener', 'end listener'],
  ])('answers a stream whose handler fails at %s with 500 and serves the next one on the same connection', async (path, origin) => {
    expect(await request({ ':method': 'POST', ':path': path }, '{}')).toMatchObject({ status: 500, body: 'internal error\n' });
    expect(lines).toContainEqual(expect.objectContaining({ level: 50, path, origin }));
    expect(await request({ ':path': '/ok' })).toMatchObject({ status: 200, body: 'ok' });
  });

  it('resets a stream that fails after its headers went out with INTERNAL_ERROR', async () => {
    const answer = await request({ ':path': '/throw-after-headers' });
    expect(answer.status).toBe(200);
    expect(answer.rstCode).toBe(http2.constants.NGHTTP2_INTERNAL_ERROR);
  });

  it('runs what the handler starts in the request context', async () => {
    expect(await request({ ':path': '/in-flight' })).toMatchObject({ body: 'inside' });
  });
});
