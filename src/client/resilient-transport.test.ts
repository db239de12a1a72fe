import { create } from '@bufbuild/protobuf';
import { Code, ConnectError, createClient, createRouterTransport, type HandlerContext } from '@connectrpc/connect';
import { describe, expect, it } from 'vitest';
import { RetryInfoSchema } from '../../gen/google/rpc/error_details_pb.ts';
import {
  CancelDispatchResponseSchema,
  DispatchService,
  ListMarketDataResponseSchema,
  SubmitDispatchResponseSchema,
} from '../../gen/powerplane/v1/dispatch_pb.ts';
import { SYSTEM_CLIENT_CLOCK, withResilience, type ClientClock } from './resilient-transport.ts';

/** A clock whose time moves only by the waits the client asks for, which it records. */
function steppingClock(): { clock: ClientClock; sleeps: number[] } {
  let now = 0;
  const sleeps: number[] = [];
  return {
    sleeps,
    clock: {
      now: () => now,
      sleep: (ms) => {
        sleeps.push(ms);
        now += ms;
        return Promise.resolve();
      },
      random: () => 0.5,
    },
  };
}

const unavailable = (retryAfterMs?: number) =>
  new ConnectError(
    'database unreachable',
    Code.Unavailable,
    undefined,
    retryAfterMs === undefined
      ? []
      : [
          {
            desc: RetryInfoSchema,
            value: { retryDelay: { seconds: BigInt(Math.floor(retryAfterMs / 1000)), nanos: (retryAfterMs % 1000) * 1e6 } },
          },
        ],
  );

/** DispatchService answering from `script` (one entry per attempt: an error to throw, or undefined for OK), recording each attempt. */
function scriptedDispatch(script: Array<ConnectError | undefined>) {
  const seen: Array<{ method: string; requestId?: string; timeoutHeader: string | null }> = [];
  const answer = (method: string, ctx: HandlerContext, requestId?: string) => {
    seen.push({ method, requestId, timeoutHeader: ctx.requestHeader.get('connect-timeout-ms') });
    const next = script.shift();
    if (next) throw next;
  };
  const transport = createRouterTransport(({ service }) =>
    service(DispatchService, {
      submitDispatch(req, ctx) {
        answer('SubmitDispatch', ctx, req.requestId);
        return create(SubmitDispatchResponseSchema);
      },
      cancelDispatch(_req, ctx) {
        answer('CancelDispatch', ctx);
        return create(CancelDispatchResponseSchema);
      },
      listMarketData(_req, ctx) {
        answer('ListMarketData', ctx);
        return create(ListMarketDataResponseSchema);
      },
    }),
  );
  return { transport, seen };
}

const options = (clock: ClientClock, overrides: Partial<{ timeoutMs: number; maxAttempts: number }> = {}) => {
  let n = 0;
  return { timeoutMs: 30_000, maxAttempts: 4, newRequestId: () => `generated-${++n}`, clock, ...overrides };
};

describe('withResilience', () => {
  it('retries a write with a request id on UNAVAILABLE, waiting what RetryInfo asks, with one generated id for every attempt', async () => {
    const { clock, sleeps } = steppingClock();
    const server = scriptedDispatch([unavailable(250), unavailable(1_500)]);
    const dispatch = createClient(DispatchService, withResilience(server.transport, options(clock)));
    await dispatch.submitDispatch({ target: { case: 'site', value: 'site-a' } });
    expect(server.seen.map((s) => s.requestId)).toEqual(['generated-1', 'generated-1', 'generated-1']);
    expect(sleeps).toEqual([250, 1_500]);
  });

  it('sends what time is left of one deadline with each attempt', async () => {
    const { clock } = steppingClock();
    const server = scriptedDispatch([unavailable(250), unavailable(1_500)]);
    const dispatch = createClient(DispatchService, withResilience(server.transport, options(clock)));
    await dispatch.listMarketData({});
    expect(server.seen.map((s) => s.timeoutHeader)).toEqual(['30000', '29750', '28250']);
  });

  it('backs off with full jitter without RetryInfo and gives up after the last attempt with UNAVAILABLE', async () => {
    const { clock, sleeps } = steppingClock();
    const server = scriptedDispatch([unavailable(), unavailable(), unavailable(), unavailable(), undefined]);
    const dispatch = createClient(DispatchService, withResilience(server.transport, options(clock)));
    const err = await dispatch.listMarketData({}).catch((e: unknown) => ConnectError.from(e));
    expect(err).toMatchObject({ code: Code.Unavailable, rawMessage: 'database unreachable' });
    expect(server.seen).toHaveLength(4);
    // random() is 0.5: half of the 100, 200 and 400 ms ceilings.
    expect(sleeps).toEqual([50, 100, 200]);
  });

  it('honours maxAttempts', async () => {
    const { clock } = steppingClock();
    const server = scriptedDispatch([unavailable(), unavailable(), undefined]);
    const dispatch = createClient(DispatchService, withResilience(server.transport, options(clock, { maxAttempts: 1 })));
    await expect(dispatch.listMarketData({})).rejects.toMatchObject({ code: Code.Unavailable });
    expect(server.seen).toHaveLength(1);
  });

  it('sends a call without a request id once', async () => {
    const { clock, sleeps } = steppingClock();
    const server = scriptedDispatch([unavailable(10), undefined]);
    const dispatch = createClient(DispatchService, withResilience(server.transport, options(clock)));
    await expect(dispatch.cancelDispatch({ id: 'x' })).rejects.toMatchObject({ code: Code.Unavailable });
    expect(server.seen).toHaveLength(1);
    expect(sleeps).toEqual([]);
  });

  it.each([Code.ResourceExhausted, Code.Internal, Code.DeadlineExceeded, Code.InvalidArgument])('does not retry code %s', async (code) => {
    const { clock } = steppingClock();
    const server = scriptedDispatch([new ConnectError('no', code), undefined]);
    const dispatch = createClient(DispatchService, withResilience(server.transport, options(clock)));
    await expect(dispatch.submitDispatch({ requestId: 'r' })).rejects.toMatchObject({ code });
    expect(server.seen).toHaveLength(1);
  });

  it('does not start a wait that would end past the deadline', async () => {
    const { clock, sleeps } = steppingClock();
    const server = scriptedDispatch([unavailable(600), unavailable(600), undefined]);
    const dispatch = createClient(DispatchService, withResilience(server.transport, options(clock)));
    await expect(dispatch.listMarketData({}, { timeoutMs: 1_000 })).rejects.toMatchObject({ code: Code.Unavailable });
    expect(server.seen.map((s) => s.timeoutHeader)).toEqual(['1000', '400']);
    expect(sleeps).toEqual([600]);
  });

  it("uses the caller's timeout, and none when the default is 0", async () => {
    const { clock } = steppingClock();
    const server = scriptedDispatch([]);
    const dispatch = createClient(DispatchService, withResilience(server.transport, options(clock, { timeoutMs: 0 })));
    await dispatch.listMarketData({});
    await dispatch.listMarketData({}, { timeoutMs: 1_234 });
    expect(server.seen.map((s) => s.timeoutHeader)).toEqual([null, '1234']);
  });

  it('ends a wait as soon as the caller aborts, with CANCELED', async () => {
    const abort = new AbortController();
    let attempts = 0;
    const failing = createRouterTransport(({ service }) =>
      service(DispatchService, {
        listMarketData() {
          attempts++;
          setTimeout(() => abort.abort(), 10);
          throw unavailable(60_000);
        },
      }),
    );
    const dispatch = createClient(DispatchService, withResilience(failing, options(SYSTEM_CLIENT_CLOCK, { timeoutMs: 0 })));
    await expect(dispatch.listMarketData({}, { signal: abort.signal })).rejects.toMatchObject({ code: Code.Canceled });
    expect(attempts).toBe(1);
  });
});
