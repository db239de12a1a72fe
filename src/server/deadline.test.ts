import { Code, ConnectError, createClient, createRouterTransport } from '@connectrpc/connect';
import { Registry as MetricsRegistry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { Health, HealthCheckResponse_ServingStatus } from '../../gen/grpc/health/v1/health_pb.ts';
import { createDeadlineInterceptor } from './deadline.ts';

/** A Health service whose Check waits until its signal aborts, and reports what it saw. */
function stalledHealth(defaultTimeoutMs: number) {
  const seen: unknown[] = [];
  const metricsRegistry = new MetricsRegistry();
  const transport = createRouterTransport(
    (router) =>
      router.service(Health, {
        check: (_req, ctx) =>
          new Promise((resolve) => {
            ctx.signal.addEventListener('abort', () => {
              seen.push(ctx.signal.reason);
              resolve({ status: HealthCheckResponse_ServingStatus.SERVING });
            });
          }),
        list: () => ({ statuses: {} }),
        watch: async function* (_req, ctx) {
          yield { status: HealthCheckResponse_ServingStatus.SERVING };
          // Outlive the default deadline many times over, then report whether it fired.
          await new Promise((r) => setTimeout(r, defaultTimeoutMs * 20));
          seen.push(ctx.signal.aborted);
          yield { status: HealthCheckResponse_ServingStatus.NOT_SERVING };
        },
      }),
    { router: { interceptors: [createDeadlineInterceptor({ limits: { defaultTimeoutMs }, metricsRegistry })] } },
  );
  return { client: createClient(Health, transport), seen, metricsRegistry };
}

describe('default deadline', () => {
  it('aborts the handler signal of a call without a deadline with DEADLINE_EXCEEDED and answers with that code', async () => {
    const { client, seen, metricsRegistry } = stalledHealth(50);
    const err = await client.check({}).catch((e: unknown) => ConnectError.from(e));
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.DeadlineExceeded);
    expect((err as ConnectError).rawMessage).toMatch(/default deadline of 50 ms/);
    for (let i = 0; i < 100 && seen.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(seen).toHaveLength(1);
    expect(seen[0]).toBeInstanceOf(ConnectError);
    expect((seen[0] as ConnectError).code).toBe(Code.DeadlineExceeded);
    const metric = await metricsRegistry.getSingleMetric('powerplane_rpc_refused_total')!.get();
    expect(metric.values).toEqual([expect.objectContaining({ labels: { reason: 'deadline' }, value: 1 })]);
  });

  it('leaves a client deadline to the client: a longer one is not cut to the default', async () => {
    const { client, seen } = stalledHealth(50);
    const controller = new AbortController();
    // The client's deadline (10 s) is far past the default; the call ends only when the
    // test aborts it after twice the default, so the default never fired.
    const call = client.check({}, { timeoutMs: 10_000, signal: controller.signal }).catch((e: unknown) => ConnectError.from(e));
    await new Promise((r) => setTimeout(r, 100));
    controller.abort();
    const err = await call;
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.Canceled);
    for (let i = 0; i < 100 && seen.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(seen).toHaveLength(1);
    expect(ConnectError.from(seen[0]).code).not.toBe(Code.DeadlineExceeded);
  });

  it('leaves streams without a deadline', async () => {
    const { client, seen } = stalledHealth(5);
    const statuses = [];
    for await (const res of client.watch({})) statuses.push(res.status);
    expect(statuses).toEqual([HealthCheckResponse_ServingStatus.SERVING, HealthCheckResponse_ServingStatus.NOT_SERVING]);
    expect(seen).toEqual([false]);
  });
});
