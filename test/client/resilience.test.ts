import { Code, ConnectError } from '@connectrpc/connect';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createPowerplaneClientWith, type PowerplaneClient, type PowerplaneClientOptions } from '../../src/client/client.ts';
import { SYSTEM_CLIENT_CLOCK, type ClientClock } from '../../src/client/resilient-transport.ts';
import { startScriptedDispatchServer, unavailable, type ScriptedDispatchServer } from '../support/scripted-dispatch-server.ts';
import { waitFor } from '../support/wait.ts';

/** The system clock, recording the waits asked of it. */
function recordingClock(): { clock: ClientClock; sleeps: number[] } {
  const sleeps: number[] = [];
  return {
    sleeps,
    clock: { ...SYSTEM_CLIENT_CLOCK, sleep: (ms, signal) => (sleeps.push(ms), SYSTEM_CLIENT_CLOCK.sleep(ms, signal)) },
  };
}

/** A clock whose time stands still, so the deadline a call sends is exactly the one it was given. */
const frozenClock: ClientClock = { ...SYSTEM_CLIENT_CLOCK, now: () => 0 };

const TRANSPORTS = [
  { name: 'gRPC', url: (s: ScriptedDispatchServer) => s.h2Url, options: { transport: 'grpc' }, protocol: 'grpc', unit: 'm' },
  {
    name: 'Connect over HTTP/1.1',
    url: (s: ScriptedDispatchServer) => s.h1Url,
    options: { transport: 'connect' },
    protocol: 'connect',
    unit: '',
  },
  {
    name: 'Connect over HTTP/2',
    url: (s: ScriptedDispatchServer) => s.h2Url,
    options: { transport: 'connect', httpVersion: '2' },
    protocol: 'connect',
    unit: '',
  },
] as const;

describe.each(TRANSPORTS)('the client over $name against a scripted server', ({ url, options, protocol, unit }) => {
  let server: ScriptedDispatchServer;
  const clients: PowerplaneClient[] = [];
  const clientOn = (clock: ClientClock, more: Partial<PowerplaneClientOptions> = {}) => {
    const client = createPowerplaneClientWith({ baseUrl: url(server), token: 'secret', ...options, ...more }, clock);
    clients.push(client);
    return client;
  };

  beforeAll(async () => {
    server = await startScriptedDispatchServer();
  });
  afterEach(() => {
    for (const client of clients.splice(0)) client.close();
  });
  afterAll(async () => {
    await server?.close();
  });

  it('retries SubmitDispatch through UNAVAILABLE as RetryInfo says, with one request id and the token on every attempt', async () => {
    server.answer([unavailable(30), unavailable(40)]);
    const { clock, sleeps } = recordingClock();
    await clientOn(clock).dispatch.submitDispatch({ target: { case: 'site', value: 'site-a' } });
    expect(server.attempts).toHaveLength(3);
    const ids = new Set(server.attempts.map((a) => a.requestId));
    expect(ids.size).toBe(1);
    expect([...ids][0]).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(server.attempts.every((a) => a.authorization === 'Bearer secret' && a.protocol === protocol)).toBe(true);
    expect(sleeps).toEqual([30, 40]);
  });

  it('gives up after four attempts with the last UNAVAILABLE', async () => {
    server.answer([unavailable(5), unavailable(5), unavailable(5), unavailable(5)]);
    const err = await clientOn(recordingClock().clock)
      .dispatch.listMarketData({})
      .catch((e: unknown) => ConnectError.from(e));
    expect(err).toMatchObject({ code: Code.Unavailable, rawMessage: 'database unreachable' });
    expect(server.attempts).toHaveLength(4);
  });

  it('sends CancelDispatch once, UNAVAILABLE or not', async () => {
    server.answer([unavailable(5)]);
    const { clock, sleeps } = recordingClock();
    await expect(clientOn(clock).dispatch.cancelDispatch({ id: 'x' })).rejects.toMatchObject({ code: Code.Unavailable });
    expect(server.attempts.map((a) => a.method)).toEqual(['CancelDispatch']);
    expect(sleeps).toEqual([]);
  });

  it("gives a unary call the default deadline, the caller's when given, and a stream none", async () => {
    server.answer([]);
    const client = clientOn(frozenClock);
    await client.dispatch.listMarketData({});
    await client.dispatch.listMarketData({}, { timeoutMs: 1_500 });
    for await (const _ of client.watchSetpoints({ site: 'site-a' })) break;
    expect(server.attempts.map((a) => [a.method, a.timeout])).toEqual([
      ['ListMarketData', `30000${unit}`],
      ['ListMarketData', `1500${unit}`],
      ['WatchSetpoints', null],
    ]);
  });

  it('sends no deadline when the client is made with timeoutMs 0', async () => {
    server.answer([]);
    await clientOn(frozenClock, { timeoutMs: 0 }).dispatch.listMarketData({});
    expect(server.attempts.map((a) => a.timeout)).toEqual([null]);
  });

  it('fails with DEADLINE_EXCEEDED when the server does not answer within the deadline', async () => {
    server.answer([]);
    await expect(clientOn(SYSTEM_CLIENT_CLOCK).dispatch.getDispatch({ id: 'x' }, { timeoutMs: 200 })).rejects.toMatchObject({
      code: Code.DeadlineExceeded,
    });
    expect(server.attempts.map((a) => a.method)).toEqual(['GetDispatch']);
  });

  it('yields setpoint events one at a time, and leaving the loop ends the stream on the server', async () => {
    server.answer([]);
    const ended = server.watchesEnded();
    const seen: string[] = [];
    for await (const event of clientOn(SYSTEM_CLIENT_CLOCK).watchSetpoints({ site: 'site-a' })) {
      seen.push(event.deviceId);
      if (seen.length === 2) break;
    }
    expect(seen).toEqual(['bess-1', 'bess-2']);
    await waitFor('the server to see the stream end', () => server.watchesEnded() > ended, 10_000);
  });
});
