import { createClient, createRouterTransport } from '@connectrpc/connect';
import { describe, expect, it } from 'vitest';
import { Health, HealthCheckResponse_ServingStatus } from '../../gen/grpc/health/v1/health_pb.ts';
import { isLoopbackUrl, localAdminToken, type LookupAll } from './client-transport.ts';

/** A resolver answering `localhost` with `addresses` and recording every name asked. */
function resolver(addresses: string[]) {
  const asked: string[] = [];
  const lookup: LookupAll = async (hostname) => {
    asked.push(hostname);
    return addresses.map((address) => ({ address }));
  };
  return { lookup, asked };
}

describe('isLoopbackUrl', () => {
  // What Node's URL parser makes of the host decides: IPv4 shorthand is normalised to the
  // dotted address the connection then uses, so 127.1 and 0x7f.1 are 127.0.0.1.
  it.each([
    ['http://127.0.0.1:50051', true],
    ['http://127.1:50051', true],
    ['http://0x7f.1:50051', true],
    ['http://0177.0.0.1', true],
    ['http://2130706433', true],
    ['http://127.0.0.1.:50051', true],
    ['http://127.255.255.254', true],
    ['http://[::1]:50051', true],
    ['http://[0:0:0:0:0:0:0:1]', true],
    ['http://[::ffff:127.0.0.1]:50051', true],
    ['http://[::ffff:7f00:1]', true],
    ['https://127.0.0.1', true],
    ['http://127.attacker.example:50051', false],
    ['http://127.0.0.1.nip.io', false],
    ['http://localhost.attacker.example', false],
    ['http://128.0.0.1', false],
    ['http://126.255.255.255', false],
    ['http://10.0.0.1', false],
    ['http://[::2]', false],
    ['http://[::ffff:128.0.0.1]', false],
    ['http://[::ffff:10.0.0.1]', false],
    ['http://0.0.0.0:50051', false],
    ['http://[::]:50051', false],
    ['http://256.0.0.1', false],
    ['not a url', false],
  ])('%s is local: %s, without any name lookup', async (url, local) => {
    const { lookup, asked } = resolver(['127.0.0.1']);
    expect(await isLoopbackUrl(url, lookup)).toBe(local);
    expect(asked).toEqual([]);
  });

  it.each([
    [['127.0.0.1'], true],
    [['::1', '127.0.0.1'], true],
    [['127.0.1.1'], true],
    [['127.0.0.1', '192.168.1.5'], false],
    [['10.0.0.7'], false],
    [[], false],
  ])('localhost resolving to %j is local: %s', async (addresses, local) => {
    const { lookup, asked } = resolver(addresses);
    expect(await isLoopbackUrl('http://LOCALHOST:50051', lookup)).toBe(local);
    expect(asked).toEqual(['localhost']);
  });

  it('treats localhost as not local when it cannot be resolved', async () => {
    const failing: LookupAll = () => Promise.reject(Object.assign(new Error('getaddrinfo ENOTFOUND localhost'), { code: 'ENOTFOUND' }));
    expect(await isLoopbackUrl('http://localhost:50051', failing)).toBe(false);
  });

  it("resolves localhost with this machine's resolver", async () => {
    expect(await isLoopbackUrl('http://localhost:50051')).toBe(true);
  });
});

describe('the local admin token', () => {
  /** A Health service that records the authorization header of each call. */
  function recordingClient(interceptor: ReturnType<typeof localAdminToken>) {
    const seen: Array<string | null> = [];
    const transport = createRouterTransport(
      (router) =>
        router.service(Health, {
          check: (_req, ctx) => {
            seen.push(ctx.requestHeader.get('authorization'));
            return { status: HealthCheckResponse_ServingStatus.SERVING };
          },
          list: () => ({ statuses: {} }),
          watch: async function* () {},
        }),
      { transport: { interceptors: [interceptor] } },
    );
    return { client: createClient(Health, transport), seen };
  }

  it('goes to a loopback server, read once for every call', async () => {
    let reads = 0;
    const { client, seen } = recordingClient(localAdminToken('http://127.0.0.1:50051', () => (reads++, 'pp_local')));
    await client.check({});
    await client.check({});
    expect(seen).toEqual(['Bearer pp_local', 'Bearer pp_local']);
    expect(reads).toBe(1);
  });

  it('never goes to a host whose name merely starts with 127, and its file is not even read', async () => {
    let reads = 0;
    const { lookup, asked } = resolver(['127.0.0.1']);
    const { client, seen } = recordingClient(localAdminToken('http://127.attacker.example:50051', () => (reads++, 'pp_local'), lookup));
    await client.check({});
    expect(seen).toEqual([null]);
    expect(reads).toBe(0);
    expect(asked).toEqual([]);
  });

  it('is not sent when the data directory has no token file', async () => {
    const { client, seen } = recordingClient(localAdminToken('http://[::1]:50051', () => undefined));
    await client.check({});
    expect(seen).toEqual([null]);
  });
});
