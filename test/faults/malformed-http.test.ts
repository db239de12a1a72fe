import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import http2 from 'node:http2';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FrameType, Flag, frame, h2Greeting, headerBlock, rawConnect, type RawConnection } from '../support/raw-http.ts';
import { startServeProcess, type ServeProcess } from '../support/serve-process.ts';

/** One of every kind of route: an RPC, the console, health, metrics, and no route at all. */
const ROUTES = ['/powerplane.v1.DeviceRegistryService/ListDevices', '/', '/healthz', '/metrics', '/no/such/route'];

/** An HTTP/1.x case: the bytes sent for `route`, and how the client leaves (half-close, or a reset). */
interface Http1Case {
  readonly bytes: (route: string) => Buffer | string;
  readonly then: 'end' | 'reset';
}

const JSON_BODY = 'Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}';

/** Malformed HTTP/1.x requests: headers, methods, framing and bodies a well-behaved client never sends. */
const HTTP1_CASES: Record<string, Http1Case> = {
  'HTTP/1.0 without Host': { bytes: (r) => `POST ${r} HTTP/1.0\r\n${JSON_BODY}`, then: 'end' },
  'HTTP/1.0 with an empty Host': { bytes: (r) => `POST ${r} HTTP/1.0\r\nHost:\r\n${JSON_BODY}`, then: 'end' },
  'HTTP/1.1 without Host': { bytes: (r) => `POST ${r} HTTP/1.1\r\n${JSON_BODY}`, then: 'end' },
  'HTTP/1.1 with an empty Host': { bytes: (r) => `POST ${r} HTTP/1.1\r\nHost: \r\n${JSON_BODY}`, then: 'end' },
  'HTTP/1.1 with two Hosts': { bytes: (r) => `POST ${r} HTTP/1.1\r\nHost: a\r\nHost: b\r\n${JSON_BODY}`, then: 'end' },
  'a Host with a space': { bytes: (r) => `POST ${r} HTTP/1.1\r\nHost: a b\r\n${JSON_BODY}`, then: 'end' },
  'a Host with an open bracket': { bytes: (r) => `POST ${r} HTTP/1.1\r\nHost: [::1\r\n${JSON_BODY}`, then: 'end' },
  'a 64 KiB header': { bytes: (r) => `GET ${r} HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(64 * 1024)}\r\n\r\n`, then: 'end' },
  'two thousand headers': { bytes: (r) => `GET ${r} HTTP/1.1\r\nHost: x\r\n${'X-A: b\r\n'.repeat(2_000)}\r\n`, then: 'end' },
  'an unknown method': { bytes: (r) => `BREW ${r} HTTP/1.1\r\nHost: x\r\n\r\n`, then: 'end' },
  'a control character in the method': { bytes: (r) => `P\x01ST ${r} HTTP/1.1\r\nHost: x\r\n\r\n`, then: 'end' },
  'no HTTP version': { bytes: (r) => `GET ${r}\r\n\r\n`, then: 'end' },
  'a NUL in the path': { bytes: (r) => `GET ${r}\x00x HTTP/1.1\r\nHost: x\r\n\r\n`, then: 'end' },
  'an absolute-form target': { bytes: (r) => `POST http://x${r} HTTP/1.1\r\nHost: x\r\n${JSON_BODY}`, then: 'end' },
  'a body shorter than its Content-Length': {
    bytes: (r) => `POST ${r} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"sit`,
    then: 'end',
  },
  'a body cut off by a reset': {
    bytes: (r) => `POST ${r} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"sit`,
    then: 'reset',
  },
  'a broken chunked body': {
    bytes: (r) => `POST ${r} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n`,
    then: 'end',
  },
  'both Content-Length and chunked': {
    bytes: (r) => `POST ${r} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n`,
    then: 'end',
  },
  'headers cut off mid-line': { bytes: (r) => `POST ${r} HTTP/1.1\r\nHost: x\r\nContent-Ty`, then: 'end' },
  'headers cut off by a reset': { bytes: (r) => `POST ${r} HTTP/1.1\r\nHost: x\r\nContent-Ty`, then: 'reset' },
  'a non-ASCII header value': {
    bytes: (r) => Buffer.from(`GET ${r} HTTP/1.1\r\nHost: x\r\nX-Name: \xff\xfe\r\n\r\n`, 'latin1'),
    then: 'end',
  },
  'an h2c upgrade': {
    bytes: (r) =>
      `GET ${r} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n`,
    then: 'end',
  },
  'a CONNECT': { bytes: () => `CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n`, then: 'end' },
  'pipelined, the second without Host': {
    bytes: (r) => `GET ${r} HTTP/1.1\r\nHost: x\r\n\r\nPOST ${r} HTTP/1.0\r\nHost:\r\n${JSON_BODY}`,
    then: 'end',
  },
  'a Connect call with a bad timeout header': {
    bytes: (r) => `POST ${r} HTTP/1.1\r\nHost: x\r\nConnect-Timeout-Ms: -1e999\r\n${JSON_BODY}`,
    then: 'end',
  },
};

type Headers = ReadonlyArray<readonly [string, string]>;
const requestHeaders = (route: string, extra: Headers = []): Headers => [
  [':method', 'POST'],
  [':scheme', 'http'],
  [':authority', 'x'],
  [':path', route],
  ['content-type', 'application/json'],
  ...extra,
];
const rst = (streamId: number) => frame(FrameType.RST_STREAM, 0, streamId, Buffer.from([0, 0, 0, http2.constants.NGHTTP2_CANCEL]));

/** Malformed HTTP/2: frames after a good preface (unless the case is the preface). Each is followed by a PING. */
const HTTP2_CASES: Record<string, (route: string) => Buffer> = {
  'a bad connection preface': () => Buffer.from('PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n'),
  // Read as a frame header, "GET " is a 4.6 MB frame of an unknown type, which the server
  // waits for: the connection opened no stream, so the header timeout closes it.
  'HTTP/1.1 after the preface': () => Buffer.concat([h2Greeting(), Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')]),
  'a DATA frame beyond the largest frame size': () => Buffer.concat([h2Greeting(), frame(FrameType.DATA, 0, 1, Buffer.alloc(20_000))]),
  'a SETTINGS frame of the wrong length': () => Buffer.concat([h2Greeting(), frame(FrameType.SETTINGS, 0, 0, randomBytes(5))]),
  'a frame of an unknown type': () => Buffer.concat([h2Greeting(), frame(0xee, 0xff, 1, randomBytes(64))]),
  'HEADERS without :authority': (r) =>
    Buffer.concat([
      h2Greeting(),
      frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, 1, headerBlock(requestHeaders(r).filter(([n]) => n !== ':authority'))),
    ]),
  'HEADERS with an empty :authority': (r) =>
    Buffer.concat([
      h2Greeting(),
      frame(
        FrameType.HEADERS,
        Flag.END_HEADERS | Flag.END_STREAM,
        1,
        headerBlock(requestHeaders(r).map(([n, v]) => [n, n === ':authority' ? '' : v] as const)),
      ),
    ]),
  'HEADERS with two :path': (r) =>
    Buffer.concat([
      h2Greeting(),
      frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, 1, headerBlock(requestHeaders(r, [[':path', '/other']]))),
    ]),
  'HEADERS with a connection header': (r) =>
    Buffer.concat([
      h2Greeting(),
      frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, 1, headerBlock(requestHeaders(r, [['connection', 'keep-alive']]))),
    ]),
  'HEADERS with an upper-case name': (r) =>
    Buffer.concat([
      h2Greeting(),
      frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, 1, headerBlock(requestHeaders(r, [['X-Upper', 'a']]))),
    ]),
  'an unknown method': (r) =>
    Buffer.concat([
      h2Greeting(),
      frame(
        FrameType.HEADERS,
        Flag.END_HEADERS | Flag.END_STREAM,
        1,
        headerBlock(requestHeaders(r).map(([n, v]) => [n, n === ':method' ? 'BREW' : v] as const)),
      ),
    ]),
  'a CONNECT': () =>
    Buffer.concat([
      h2Greeting(),
      frame(
        FrameType.HEADERS,
        Flag.END_HEADERS | Flag.END_STREAM,
        1,
        headerBlock([
          [':method', 'CONNECT'],
          [':authority', 'x:443'],
        ]),
      ),
    ]),
  'a 64 KiB header across CONTINUATION frames': (r) => {
    const block = headerBlock(requestHeaders(r, [['x-big', 'a'.repeat(64 * 1024)]]));
    const parts = [];
    for (let at = 0; at < block.length; at += 16_000) parts.push(block.subarray(at, at + 16_000));
    return Buffer.concat([
      h2Greeting(),
      ...parts.map((part, i) =>
        frame(
          i === 0 ? FrameType.HEADERS : FrameType.CONTINUATION,
          (i === 0 ? Flag.END_STREAM : 0) | (i === parts.length - 1 ? Flag.END_HEADERS : 0),
          1,
          part,
        ),
      ),
    ]);
  },
  'a body shorter than its content-length': (r) =>
    Buffer.concat([
      h2Greeting(),
      frame(FrameType.HEADERS, Flag.END_HEADERS, 1, headerBlock(requestHeaders(r, [['content-length', '100']]))),
      frame(FrameType.DATA, Flag.END_STREAM, 1, Buffer.from('{"si')),
    ]),
  'RST_STREAM mid-request': (r) =>
    Buffer.concat([
      h2Greeting(),
      frame(FrameType.HEADERS, Flag.END_HEADERS, 1, headerBlock(requestHeaders(r))),
      frame(FrameType.DATA, 0, 1, Buffer.from('{"si')),
      rst(1),
    ]),
  'a stream reset before its first message': (r) =>
    Buffer.concat([h2Greeting(), frame(FrameType.HEADERS, Flag.END_HEADERS, 1, headerBlock(requestHeaders(r))), rst(1)]),
  'DATA on a stream never opened': () => Buffer.concat([h2Greeting(), frame(FrameType.DATA, Flag.END_STREAM, 7, Buffer.from('{}'))]),
  'a WINDOW_UPDATE of zero': (r) =>
    Buffer.concat([
      h2Greeting(),
      frame(FrameType.HEADERS, Flag.END_HEADERS, 1, headerBlock(requestHeaders(r))),
      frame(FrameType.WINDOW_UPDATE, 0, 1, Buffer.alloc(4)),
    ]),
  'a GOAWAY at once': () => Buffer.concat([h2Greeting(), frame(FrameType.GOAWAY, 0, 0, Buffer.alloc(8))]),
  'a thousand PINGs': () =>
    Buffer.concat([h2Greeting(), ...Array.from({ length: 1_000 }, () => frame(FrameType.PING, 0, 0, Buffer.alloc(8)))]),
};

const PING_PAYLOAD = Buffer.from('corpus!!');

/** Sends `bytes`, then a PING: once it is answered, or the server closed the connection, the server has handled all of it. */
async function sendHttp2(connection: RawConnection, bytes: Buffer): Promise<void> {
  connection.write(Buffer.concat([bytes, frame(FrameType.PING, 0, 0, PING_PAYLOAD)]));
  await connection.waitForFrame((f) => f.type === FrameType.PING && (f.flags & Flag.ACK) !== 0 && f.payload.equals(PING_PAYLOAD));
}

describe('malformed HTTP to a serve process with authentication on', () => {
  let dir: string;
  let serve: ServeProcess;
  let token: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'pp-malformed-http-'));
    serve = await startServeProcess({
      POWERPLANE_DATA_DIR: path.join(dir, 'data'),
      POWERPLANE_AUTH: 'on',
      POWERPLANE_LOG_LEVEL: 'debug',
      // A connection stuck before its first stream is closed after these (default 10 s each).
      POWERPLANE_HEADERS_TIMEOUT_MS: '1000',
      POWERPLANE_IDLE_TIMEOUT_MS: '1000',
    });
    token = (await readFile(path.join(dir, 'data', 'admin.token'), 'utf8')).trim();
  });
  afterAll(async () => {
    await serve?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  /** The process is alive and `/healthz` answers 200; a description of what is wrong otherwise. */
  const stillServing = async (after: string): Promise<string | undefined> => {
    if (serve.exited()) return `${after}: the process exited`;
    const res = await fetch(`${serve.baseUrl}/healthz`, { signal: AbortSignal.timeout(10_000) }).catch((err: unknown) => err as Error);
    if (res instanceof Error) return `${after}: /healthz failed (${res.message})`;
    return res.status === 200 ? undefined : `${after}: /healthz answered ${res.status}`;
  };

  it('survives every malformed HTTP/1.x request on every kind of route', async () => {
    const failures: string[] = [];
    for (const [name, test] of Object.entries(HTTP1_CASES)) {
      for (const route of ROUTES) {
        const connection = await rawConnect(serve.port);
        connection.write(test.bytes(route));
        if (test.then === 'end') {
          connection.end();
          await connection.closed;
        } else {
          connection.destroy();
        }
        const problem = await stillServing(`${name} to ${route}`);
        if (problem) failures.push(problem);
      }
    }
    expect(failures).toEqual([]);
  });

  it('answers the requests connect could not serve with 400 before authentication', async () => {
    const rpc = ROUTES[0]!;
    for (const name of ['HTTP/1.0 with an empty Host', 'HTTP/1.1 with an empty Host', 'HTTP/1.1 with two Hosts', 'a Host with a space']) {
      const connection = await rawConnect(serve.port);
      connection.write(HTTP1_CASES[name]!.bytes(rpc));
      connection.end();
      expect((await connection.closed).toString('latin1'), name).toMatch(/^HTTP\/1\.1 400 /);
    }
    // HTTP/1.0 does not need Host: the request is served (here: refused by authentication).
    const connection = await rawConnect(serve.port);
    connection.write(HTTP1_CASES['HTTP/1.0 without Host']!.bytes(rpc));
    connection.end();
    expect((await connection.closed).toString('latin1')).toMatch(/^HTTP\/1\.1 401 /);
  });

  it('survives every malformed HTTP/2 connection and stream on every kind of route', async () => {
    const failures: string[] = [];
    for (const [name, bytes] of Object.entries(HTTP2_CASES)) {
      // A case that names no route is about the connection: once is enough.
      for (const route of bytes.length === 0 ? ROUTES.slice(0, 1) : ROUTES) {
        const connection = await rawConnect(serve.port);
        await sendHttp2(connection, bytes(route));
        connection.destroy();
        const problem = await stillServing(`HTTP/2 ${name} to ${route}`);
        if (problem) failures.push(problem);
      }
    }
    expect(failures).toEqual([]);
  });

  it('survives HTTP/2 clients that cancel streams, reset mid-body and drop the connection', async () => {
    const failures: string[] = [];
    for (const route of ROUTES) {
      for (const how of ['cancel at once', 'cancel mid-body', 'drop the connection mid-body'] as const) {
        const session = http2.connect(serve.baseUrl);
        session.on('error', () => undefined);
        const stream = session.request({ ':method': 'POST', ':path': route, 'content-type': 'application/json' });
        stream.on('error', () => undefined);
        const closed = new Promise((resolve) => stream.once('close', resolve));
        if (how !== 'cancel at once') stream.write('{"si');
        if (how === 'drop the connection mid-body') session.destroy();
        else stream.close(http2.constants.NGHTTP2_CANCEL);
        await closed;
        session.destroy();
        const problem = await stillServing(`HTTP/2 client: ${how} on ${route}`);
        if (problem) failures.push(problem);
      }
    }
    expect(failures).toEqual([]);
  });

  it('counts an authenticated stream aborted before its first message as canceled, logged at debug', async () => {
    const auth: Headers = [
      ['authorization', `Bearer ${token}`],
      ['te', 'trailers'],
    ];
    const grpc = (method: string): Headers => [
      [':method', 'POST'],
      [':scheme', 'http'],
      [':authority', 'x'],
      [':path', method],
      ['content-type', 'application/grpc'],
      ...auth,
    ];
    const watch = '/powerplane.v1.DispatchService/WatchSetpoints';
    const stream = '/powerplane.v1.TelemetryService/StreamReadings';
    // Over HTTP/2: HEADERS, then RST_STREAM CANCEL before any DATA.
    for (const method of [watch, watch, stream, stream]) {
      const connection = await rawConnect(serve.port);
      await sendHttp2(connection, Buffer.concat([h2Greeting(), frame(FrameType.HEADERS, Flag.END_HEADERS, 1, headerBlock(grpc(method)))]));
      await sendHttp2(connection, rst(1));
      connection.destroy();
    }
    // Over HTTP/1.1 (Connect): the request body is cut off by a reset. `100 Continue` says
    // the server has started the call, so the reset cannot come before it.
    for (let i = 0; i < 2; i++) {
      const connection = await rawConnect(serve.port);
      connection.write(
        `POST ${watch} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\n` +
          'Content-Type: application/connect+json\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n',
      );
      expect(await connection.waitForText('100 Continue')).toBe(true);
      connection.write('\x00\x00\x00');
      connection.destroy();
    }
    const watchCancelled = (line: Record<string, unknown>) =>
      line.method === 'WatchSetpoints' && line.msg === 'call cancelled: the client went away';
    await serve.waitForLog((line) => watchCancelled(line) && serve.logs.filter(watchCancelled).length >= 4, 15_000);

    const metrics = await (await fetch(`${serve.baseUrl}/metrics`, { headers: { authorization: `Bearer ${token}` } })).text();
    const counts = Object.fromEntries(
      metrics
        .split('\n')
        .filter((line) => line.startsWith('powerplane_rpc_calls_total{') && /method="(WatchSetpoints|StreamReadings)"/.test(line))
        .map((line) => [
          line.replace(/ [\d.e+]+$/, '').replace(/^.*method="(\w+)",code="(\w+)".*$/, '$1 $2'),
          Number(line.split(' ').at(-1)),
        ]),
    );
    expect(counts['WatchSetpoints canceled']).toBe(4);
    expect(Object.keys(counts).filter((key) => !/ (canceled|ok)$/.test(key))).toEqual([]);
    const loud = serve.logs.filter(
      (line) => Number(line.level) >= 40 && (line.method === 'WatchSetpoints' || line.method === 'StreamReadings'),
    );
    expect(loud).toEqual([]);
  });

  it('is alive and healthy at the end, and no request made a handler fail or logged anything fatal', async () => {
    expect(await stillServing('the whole corpus')).toBeUndefined();
    expect(serve.logs.filter((line) => Number(line.level) >= 60 || line.msg === 'request handler failed')).toEqual([]);
  });
});
