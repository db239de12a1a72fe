import { mkdtemp, rm } from 'node:fs/promises';
import http2 from 'node:http2';
import os from 'node:os';
import path from 'node:path';
import { create, createFileRegistry, fromBinary, type DescMethod, type DescService } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema, FileDescriptorSetSchema, type FileDescriptorProto } from '@bufbuild/protobuf/wkt';
import { createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Health, HealthCheckResponse_ServingStatus as Status } from '../../gen/grpc/health/v1/health_pb.ts';
import { ServerReflection } from '../../gen/grpc/reflection/v1/reflection_pb.ts';
import { DeviceRegistryService } from '../../gen/powerplane/v1/devices_pb.ts';
import { PRODUCT_SERVICES } from '../../src/server/routes.ts';
import { startServeProcess, type ServeProcess } from '../support/serve-process.ts';

/** The codes a malformed request may get: the body is bad input, or it could not be parsed. */
const CLEAN_CODES = new Set(['invalid_argument', 'internal']);

/** An answer as the wire carried it: the gRPC status (or Connect code) and its message. */
interface Answer {
  readonly code: string;
  readonly message: string;
}

/**
 * Bodies no message type can decode: a length-delimited field claiming 4 GiB, a varint cut
 * short, wire type 7 (does not exist), field number 0. Checked against each method's input
 * below, so a case that happened to decode would fail the test's own precondition.
 */
const MALFORMED: Record<string, Buffer> = {
  'length beyond the body': Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]),
  'truncated varint': Buffer.from([0x08, 0xff, 0xff]),
  'wire type 7': Buffer.from([0x0f, 0x00]),
  'field number 0': Buffer.from([0x00, 0x01]),
};

/** A small deterministic generator (mulberry32), so a failure can be replayed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** `count` random bodies (8 to 200 bytes) that do not decode as `method`'s input. */
function randomBodies(method: DescMethod, seed: number, count: number): Buffer[] {
  const next = random(seed);
  const out: Buffer[] = [];
  for (let attempt = 0; out.length < count && attempt < 1_000; attempt++) {
    const body = Buffer.from(Array.from({ length: 8 + Math.floor(next() * 192) }, () => Math.floor(next() * 256)));
    if (!decodes(method, body)) out.push(body);
  }
  return out;
}

function decodes(method: DescMethod, body: Buffer): boolean {
  try {
    fromBinary(method.input, body);
    return true;
  } catch {
    return false;
  }
}

/** A gRPC length-prefixed message: flags byte, 4-byte big-endian length, the bytes. */
function frame(body: Buffer, flags = 0, claimedLength = body.length): Buffer {
  const header = Buffer.alloc(5);
  header[0] = flags;
  header.writeUInt32BE(claimedLength, 1);
  return Buffer.concat([header, body]);
}

/**
 * One raw gRPC call over an HTTP/2 session: sends `payload` as the whole request stream and
 * reads the status from the trailers (or the headers of a trailers-only answer). Rejects
 * when no status comes within `limitMs`, which is the hang this test looks for.
 */
function grpcCall(session: http2.ClientHttp2Session, path: string, payload: Buffer, limitMs = 10_000): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = session.request({
      ':method': 'POST',
      ':path': path,
      'content-type': 'application/grpc+proto',
      te: 'trailers',
      'grpc-timeout': '5S',
    });
    let status: string | undefined;
    let message = '';
    const take = (headers: http2.IncomingHttpHeaders) => {
      if (headers['grpc-status'] !== undefined) {
        status = String(headers['grpc-status']);
        const raw = String(headers['grpc-message'] ?? '');
        try {
          message = decodeURIComponent(raw);
        } catch {
          message = raw;
        }
      }
    };
    const timer = setTimeout(() => {
      req.close(http2.constants.NGHTTP2_CANCEL);
      reject(new Error(`${path}: no gRPC status within ${limitMs} ms`));
    }, limitMs);
    req.on('response', take);
    req.on('trailers', take);
    req.on('data', () => undefined);
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.on('close', () => {
      clearTimeout(timer);
      if (status === undefined) reject(new Error(`${path}: the stream closed without a gRPC status`));
      else resolve({ code: grpcCodeName(Number(status)), message });
    });
    req.end(payload);
  });
}

function grpcCodeName(code: number): string {
  const names = [
    'ok',
    'canceled',
    'unknown',
    'invalid_argument',
    'deadline_exceeded',
    'not_found',
    'already_exists',
    'permission_denied',
    'resource_exhausted',
    'failed_precondition',
    'aborted',
    'out_of_range',
    'unimplemented',
    'internal',
    'unavailable',
    'data_loss',
    'unauthenticated',
  ];
  return names[code] ?? `code ${code}`;
}

/**
 * One Connect call over HTTP/1.1 (fetch): unary methods get the raw bytes as
 * `application/proto`; streaming ones the bytes in one envelope as `application/connect+proto`,
 * whose error comes in the end-of-stream envelope (flags 0x02) as JSON. A bidirectional
 * stream needs HTTP/2; over HTTP/1.1 its answer is the HTTP status alone.
 */
async function connectCall(baseUrl: string, service: DescService, method: DescMethod, body: Buffer): Promise<Answer> {
  const unary = method.methodKind === 'unary';
  const res = await fetch(`${baseUrl}/${service.typeName}/${method.name}`, {
    method: 'POST',
    headers: {
      'content-type': unary ? 'application/proto' : 'application/connect+proto',
      'connect-protocol-version': '1',
      'connect-timeout-ms': '5000',
    },
    body: unary ? body : frame(body),
    signal: AbortSignal.timeout(10_000),
  });
  if (method.methodKind === 'bidi_streaming') {
    await res.arrayBuffer();
    return { code: `http ${res.status}`, message: res.statusText };
  }
  const bytes = Buffer.from(await res.arrayBuffer());
  if (unary) {
    const error = JSON.parse(bytes.toString('utf8')) as { code?: string; message?: string };
    return { code: error.code ?? `http ${res.status}`, message: error.message ?? '' };
  }
  for (let offset = 0; offset + 5 <= bytes.length;) {
    const flags = bytes[offset]!;
    const length = bytes.readUInt32BE(offset + 1);
    const data = bytes.subarray(offset + 5, offset + 5 + length);
    offset += 5 + length;
    if (flags & 0x02) {
      const end = JSON.parse(data.toString('utf8')) as { error?: { code?: string; message?: string } };
      return { code: end.error?.code ?? 'ok', message: end.error?.message ?? '' };
    }
  }
  return { code: `http ${res.status} without an end of stream`, message: '' };
}

/** Every service the server describes through reflection, with its methods' descriptors. */
async function servedServices(baseUrl: string): Promise<DescService[]> {
  const reflection = createClient(ServerReflection, createGrpcTransport({ baseUrl }));
  async function* ask(requests: Array<Parameters<typeof reflection.serverReflectionInfo>[0] extends AsyncIterable<infer R> ? R : never>) {
    yield* requests;
  }
  const names: string[] = [];
  for await (const res of reflection.serverReflectionInfo(ask([{ messageRequest: { case: 'listServices', value: '' } }]))) {
    if (res.messageResponse.case === 'listServicesResponse') names.push(...res.messageResponse.value.service.map((s) => s.name));
  }
  const files = new Map<string, FileDescriptorProto>();
  const requests = names.map((name) => ({ messageRequest: { case: 'fileContainingSymbol' as const, value: name } }));
  for await (const res of reflection.serverReflectionInfo(ask(requests))) {
    if (res.messageResponse.case !== 'fileDescriptorResponse') continue;
    for (const bytes of res.messageResponse.value.fileDescriptorProto) {
      const proto = fromBinary(FileDescriptorProtoSchema, bytes);
      files.set(proto.name, proto);
    }
  }
  // A descriptor set lists every file after the files it imports.
  const ordered: FileDescriptorProto[] = [];
  const visit = (name: string) => {
    const proto = files.get(name);
    if (!proto || ordered.includes(proto)) return;
    proto.dependency.forEach(visit);
    ordered.push(proto);
  };
  [...files.keys()].forEach(visit);
  const registry = createFileRegistry(create(FileDescriptorSetSchema, { file: ordered }));
  return names.map((name) => {
    const service = registry.getService(name);
    if (!service) throw new Error(`reflection named ${name} but did not describe it`);
    return service;
  });
}

describe('malformed requests to a serve process', () => {
  let dir: string;
  let serve: ServeProcess;
  let services: DescService[];

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'pp-malformed-'));
    serve = await startServeProcess({ POWERPLANE_DATA_DIR: path.join(dir, 'data') });
    services = await servedServices(serve.baseUrl);
  });
  afterAll(async () => {
    await serve?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('reflection describes every product service, so every RPC below is tried', () => {
    const names = services.map((s) => s.typeName);
    for (const name of PRODUCT_SERVICES) expect(names).toContain(name);
    expect(names).toContain(Health.typeName);
    const methods = services.flatMap((s) => s.methods);
    expect(methods.length).toBeGreaterThan(20);
    // The malformed bodies are malformed for every input type, so every answer must be an error.
    expect(
      methods.flatMap((m) =>
        Object.entries(MALFORMED)
          .filter(([, body]) => decodes(m, body))
          .map(([what]) => `${m.name}: ${what}`),
      ),
    ).toEqual([]);
  });

  it('answers malformed protobuf and random bytes on every gRPC method with INVALID_ARGUMENT or INTERNAL and a message', async () => {
    const session = http2.connect(serve.baseUrl);
    session.on('error', () => undefined);
    const failures: string[] = [];
    let calls = 0;
    try {
      for (const [s, service] of services.entries()) {
        await Promise.all(
          service.methods.map(async (method, m) => {
            const path = `/${service.typeName}/${method.name}`;
            const bodies: Array<[string, Buffer]> = [
              ...Object.entries(MALFORMED).map(([what, body]): [string, Buffer] => [what, frame(body)]),
              ...randomBodies(method, 1_000 * s + m, 3).map((body, i): [string, Buffer] => [`random bytes #${i}`, frame(body)]),
              // Broken framing: a length beyond what is sent, and the compressed flag without an encoding.
              ['frame shorter than its length', frame(Buffer.from([0x08, 0x01]), 0, 100)],
              ['compressed flag without grpc-encoding', frame(Buffer.from([0x08, 0x01]), 1)],
            ];
            for (const [what, body] of bodies) {
              calls++;
              const answer = await grpcCall(session, path, body);
              if (!CLEAN_CODES.has(answer.code) || answer.message === '')
                failures.push(`${path} (${what}): ${answer.code} ${JSON.stringify(answer.message)}`);
            }
          }),
        );
      }
    } finally {
      session.close();
    }
    expect(failures).toEqual([]);
    expect(calls).toBeGreaterThan(8 * services.length);
    expect(serve.exited()).toBe(false);
  });

  it('answers the same bodies as Connect over HTTP/1.1 with invalid_argument or internal and a message (bidi streams: 505)', async () => {
    const failures: string[] = [];
    let calls = 0;
    for (const [s, service] of services.entries()) {
      await Promise.all(
        service.methods.map(async (method, m) => {
          for (const [what, body] of [
            ...Object.entries(MALFORMED),
            ...randomBodies(method, 7_000 + 1_000 * s + m, 3).map((b, i) => [`random bytes #${i}`, b] as const),
          ]) {
            calls++;
            const answer = await connectCall(serve.baseUrl, service, method, body);
            // 505 HTTP Version Not Supported: connect's refusal of a bidi stream over HTTP/1.1.
            const clean =
              method.methodKind === 'bidi_streaming' ? answer.code === 'http 505' : CLEAN_CODES.has(answer.code) && answer.message !== '';
            if (!clean) failures.push(`${service.typeName}/${method.name} (${what}): ${answer.code} ${JSON.stringify(answer.message)}`);
          }
        }),
      );
    }
    expect(failures).toEqual([]);
    expect(calls).toBeGreaterThan(4 * services.length);
  });

  it('keeps serving afterwards: the process is alive, healthy, answers a good call and logged nothing fatal', async () => {
    const transport = createGrpcTransport({ baseUrl: serve.baseUrl });
    expect((await createClient(Health, transport).check({})).status).toBe(Status.SERVING);
    expect((await createClient(DeviceRegistryService, transport).listDevices({})).devices).toEqual([]);
    expect(serve.exited()).toBe(false);
    // pino levels: 60 fatal. An uncaught exception would have ended the process anyway.
    expect(serve.logs.filter((line) => Number(line.level) >= 60)).toEqual([]);
  });
});
