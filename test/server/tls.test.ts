import { X509Certificate } from 'node:crypto';
import https from 'node:https';
import http2 from 'node:http2';
import path from 'node:path';
import tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { peerContextValues, peerIdentityKey, parseSubjectAltName } from '../../src/auth/peer.ts';
import { toConfig, type TlsConfig } from '../../src/config.ts';
import { createListener, type Listener, type RequestHandler } from '../../src/server/listener.ts';
import { loadTlsCredentials } from '../../src/server/tls-credentials.ts';
import { createTestCa, type Issued, type TestCa } from '../support/certificates.ts';
import { silentLog } from '../support/databases.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const PROTO_ROOT = path.resolve(import.meta.dirname, '../../proto');
const limits = toConfig({ listen: '127.0.0.1:0' }).limits;

let ca: TestCa;
let rogue: TestCa;
let serverCert: Issued;
let agentCert: Issued;
let rogueCert: Issued;

beforeAll(() => {
  ca = createTestCa('Powerplane test CA');
  rogue = createTestCa('Rogue CA');
  serverCert = ca.issue('server', 'powerplane test server', { altNames: ['IP:127.0.0.1', 'DNS:localhost'], usage: 'serverAuth' });
  agentCert = ca.issue('agent', 'site-a', {
    altNames: ['URI:spiffe://powerplane/site/site-a', 'DNS:agent.site-a.example'],
    usage: 'clientAuth',
  });
  rogueCert = rogue.issue('rogue', 'site-a', { altNames: ['DNS:agent.site-a.example'], usage: 'clientAuth' });
});
afterAll(() => {
  ca?.remove();
  rogue?.remove();
});

function tlsConfig(clientAuth?: 'require' | 'optional'): TlsConfig {
  return {
    certFile: serverCert.certFile,
    keyFile: serverCert.keyFile,
    clientCaFile: clientAuth ? ca.certFile : undefined,
    clientAuth: clientAuth ?? 'optional',
  };
}

type HealthClient = grpc.Client & {
  Check(
    req: unknown,
    md: grpc.Metadata,
    opts: grpc.CallOptions,
    cb: (err: grpc.ServiceError | null, res?: { status: string }) => void,
  ): void;
};

function grpcHealth(port: number, creds: grpc.ChannelCredentials): HealthClient {
  const definition = protoLoader.loadSync('grpc/health/v1/health.proto', { includeDirs: [PROTO_ROOT], enums: String });
  const pkg = grpc.loadPackageDefinition(definition) as any;
  return new pkg.grpc.health.v1.Health(`127.0.0.1:${port}`, creds) as HealthClient;
}

function check(client: HealthClient): Promise<string> {
  return new Promise((resolve, reject) => {
    client.Check({ service: '' }, new grpc.Metadata(), { deadline: Date.now() + 5_000 }, (err, res) =>
      err ? reject(err) : resolve(res!.status),
    );
  });
}

/** A Connect JSON call over HTTP/1.1 with TLS; answers the status, the negotiated ALPN protocol and the body. */
function connectJson(
  port: number,
  pathName: string,
  body: unknown,
  client?: Issued,
): Promise<{ status: number; alpn: string | false | null; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        path: pathName,
        method: 'POST',
        ca: ca.cert,
        // Offer only HTTP/1.1 in ALPN, as an HTTP/1.1-only client does (Node types omit it here).
        ...({ ALPNProtocols: ['http/1.1'] } satisfies tls.ConnectionOptions),
        ...(client ? { cert: client.cert, key: client.key } : {}),
        headers: { 'content-type': 'application/json' },
        agent: false,
        timeout: 5_000,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, alpn: (res.socket as tls.TLSSocket).alpnProtocol, body: text }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

/** Opens a raw TLS connection and says whether the handshake succeeded and the server kept it open for a request. */
function handshake(port: number, client?: Issued): Promise<'connected' | 'refused'> {
  return new Promise((resolve) => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      ca: ca.cert,
      ALPNProtocols: ['http/1.1'],
      ...(client ? { cert: client.cert, key: client.key } : {}),
    });
    socket.setTimeout(5_000, () => socket.destroy());
    socket.on('secureConnect', () => socket.write('GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n'));
    let data = '';
    socket.on('data', (chunk) => (data += chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(data.startsWith('HTTP/1.1 200') ? 'connected' : 'refused'));
  });
}

describe('TLS listener, client certificate optional', () => {
  let t: TestServer;
  const clients: grpc.Client[] = [];
  beforeAll(async () => {
    t = await startTestServer('pglite', { tls: tlsConfig('optional') });
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await t?.stop();
  });

  it('serves a grpc-js client over TLS, with or without a client certificate', async () => {
    const anonymous = grpcHealth(t.server.address.port, grpc.credentials.createSsl(ca.cert));
    const withCert = grpcHealth(t.server.address.port, grpc.credentials.createSsl(ca.cert, agentCert.key, agentCert.cert));
    clients.push(anonymous, withCert);
    expect(await check(anonymous)).toBe('SERVING');
    expect(await check(withCert)).toBe('SERVING');
  });

  it('serves Connect JSON over HTTP/1.1 with TLS (ALPN http/1.1)', async () => {
    const res = await connectJson(t.server.address.port, '/powerplane.v1.DeviceRegistryService/ListDevices', { site: 'nowhere' });
    expect(res).toMatchObject({ status: 200, alpn: 'http/1.1' });
    expect(JSON.parse(res.body)).toEqual({});
  });

  it('refuses a cleartext gRPC client on the TLS port', async () => {
    const cleartext = grpcHealth(t.server.address.port, grpc.credentials.createInsecure());
    clients.push(cleartext);
    const err = await check(cleartext).catch((e: grpc.ServiceError) => e);
    expect((err as grpc.ServiceError).code).toBe(grpc.status.UNAVAILABLE);
  });

  it('closes a connection whose client certificate another CA signed instead of treating it as anonymous', async () => {
    expect(await handshake(t.server.address.port)).toBe('connected');
    expect(await handshake(t.server.address.port, agentCert)).toBe('connected');
    expect(await handshake(t.server.address.port, rogueCert)).toBe('refused');
  });
});

describe('TLS listener, client certificate required', () => {
  let t: TestServer;
  const clients: grpc.Client[] = [];
  beforeAll(async () => {
    t = await startTestServer('pglite', { tls: tlsConfig('require') });
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await t?.stop();
  });

  it('refuses a client without a certificate at the handshake and serves one with a certificate', async () => {
    expect(await handshake(t.server.address.port)).toBe('refused');
    expect(await handshake(t.server.address.port, rogueCert)).toBe('refused');
    const anonymous = grpcHealth(t.server.address.port, grpc.credentials.createSsl(ca.cert));
    const withCert = grpcHealth(t.server.address.port, grpc.credentials.createSsl(ca.cert, agentCert.key, agentCert.cert));
    clients.push(anonymous, withCert);
    expect(((await check(anonymous).catch((e: grpc.ServiceError) => e)) as grpc.ServiceError).code).toBe(grpc.status.UNAVAILABLE);
    expect(await check(withCert)).toBe('SERVING');
    const res = await connectJson(
      t.server.address.port,
      '/powerplane.v1.DeviceRegistryService/ListDevices',
      { site: 'nowhere' },
      agentCert,
    );
    expect(res.status).toBe(200);
  });
});

describe('peer identity of a verified client certificate', () => {
  // The product's listener with a handler that answers what connect's `contextValues`
  // hook would put in the call context, so the identity is observed through real TLS
  // without a debug RPC in the product.
  const echo: RequestHandler = (req, res) => {
    const identity = peerContextValues(req).get(peerIdentityKey);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(identity ?? null));
  };
  let listener: Listener;
  let cleartext: Listener;
  let port = 0;
  let cleartextPort = 0;
  beforeAll(async () => {
    listener = createListener(echo, { ...limits, tls: tlsConfig('optional'), log: silentLog });
    port = (await listener.listen(0, '127.0.0.1')).port;
    cleartext = createListener(echo, { ...limits, log: silentLog });
    cleartextPort = (await cleartext.listen(0, '127.0.0.1')).port;
  });
  afterAll(async () => {
    await listener?.close(0);
    await cleartext?.close(0);
  });

  const expected = () => ({
    subjectCommonName: 'site-a',
    dnsNames: ['agent.site-a.example'],
    uris: ['spiffe://powerplane/site/site-a'],
    fingerprint256: new X509Certificate(agentCert.cert).fingerprint256,
  });

  it('gives an HTTP/2 call the certificate common name, alternative names and fingerprint', async () => {
    const session = http2.connect(`https://127.0.0.1:${port}`, { ca: ca.cert, cert: agentCert.cert, key: agentCert.key });
    try {
      const body = await new Promise<string>((resolve, reject) => {
        const stream = session.request({ ':method': 'POST', ':path': '/' });
        let text = '';
        stream.setEncoding('utf8');
        stream.on('data', (chunk: string) => (text += chunk));
        stream.on('end', () => resolve(text));
        stream.on('error', reject);
        stream.end();
      });
      expect(JSON.parse(body)).toEqual(expected());
    } finally {
      session.close();
    }
  });

  it('gives an HTTP/1.1 call the same identity, and none without a certificate or over cleartext', async () => {
    expect(JSON.parse((await connectJson(port, '/', {}, agentCert)).body)).toEqual(expected());
    expect(JSON.parse((await connectJson(port, '/', {})).body)).toBeNull();
    const res = await fetch(`http://127.0.0.1:${cleartextPort}/`, { method: 'POST' });
    expect(await res.json()).toBeNull();
  });

  it('splits alternative names without letting a quoted value smuggle another entry', () => {
    expect(parseSubjectAltName('DNS:a.example, URI:spiffe://x/y, IP Address:127.0.0.1')).toEqual([
      { type: 'DNS', value: 'a.example' },
      { type: 'URI', value: 'spiffe://x/y' },
      { type: 'IP Address', value: '127.0.0.1' },
    ]);
    expect(parseSubjectAltName('DNS:"evil.example, URI:spiffe://admin"')).toEqual([
      { type: 'DNS', value: 'evil.example, URI:spiffe://admin' },
    ]);
  });
});

describe('TLS configuration', () => {
  it('names the variable of a missing or inconsistent setting', () => {
    expect(() => toConfig({ tlsCert: 'a.pem' })).toThrow(/^POWERPLANE_TLS_KEY is required with POWERPLANE_TLS_CERT/);
    expect(() => toConfig({ tlsClientCa: 'ca.pem' })).toThrow(/^POWERPLANE_TLS_CLIENT_CA needs POWERPLANE_TLS_CERT/);
    expect(() => toConfig({ tlsCert: 'a.pem', tlsKey: 'k.pem', tlsClientAuth: 'require' })).toThrow(
      /^POWERPLANE_TLS_CLIENT_AUTH needs POWERPLANE_TLS_CLIENT_CA/,
    );
    expect(() => toConfig({ tlsCert: 'a.pem', tlsKey: 'k.pem', tlsClientCa: 'ca.pem', tlsClientAuth: 'always' })).toThrow(
      /^POWERPLANE_TLS_CLIENT_AUTH must be require or optional/,
    );
    expect(toConfig({ tlsCert: 'a.pem', tlsKey: 'k.pem', tlsClientCa: 'ca.pem' }).tls).toMatchObject({ clientAuth: 'optional' });
    expect(toConfig({}).tls).toBeUndefined();
  });

  it('refuses at start a file that cannot be read or a key that does not match the certificate', () => {
    expect(() => loadTlsCredentials({ ...tlsConfig(), certFile: '/nonexistent/server.crt' })).toThrow(
      /^POWERPLANE_TLS_CERT cannot be read \(ENOENT\)/,
    );
    expect(() => loadTlsCredentials({ ...tlsConfig(), keyFile: agentCert.keyFile })).toThrow(
      /^POWERPLANE_TLS_CERT with POWERPLANE_TLS_KEY must be a PEM certificate chain and its private key/,
    );
    expect(() => loadTlsCredentials({ ...tlsConfig('optional'), clientCaFile: serverCert.keyFile })).toThrow(
      /^POWERPLANE_TLS_CLIENT_CA must hold PEM CA certificates/,
    );
  });
});
