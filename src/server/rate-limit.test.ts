import { Code, ConnectError, createContextValues, type Interceptor } from '@connectrpc/connect';
import { Registry as MetricsRegistry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { TokenService } from '../../gen/powerplane/v1/auth_pb.ts';
import { DeviceRegistryService } from '../../gen/powerplane/v1/devices_pb.ts';
import { DispatchService } from '../../gen/powerplane/v1/dispatch_pb.ts';
import { ReadingsService } from '../../gen/powerplane/v1/readings_pb.ts';
import { TelemetryService } from '../../gen/powerplane/v1/telemetry_pb.ts';
import { createLogger } from '../logger.ts';
import { policyOf, PUBLIC } from '../rpc/policy.ts';
import { createRateLimitInterceptor } from './rate-limit.ts';

const PRODUCT = [TelemetryService, ReadingsService, DeviceRegistryService, DispatchService, TokenService];
const UNARY = PRODUCT.flatMap((s) => s.methods.filter((m) => m.methodKind === 'unary').map((m) => [s.typeName, m.name] as const));

/** Every class allows one call, then refuses for about 1000 s: the second call of a class is always refused. */
function limiter(): Interceptor {
  const one = { ratePerS: 0.001, burst: 1 };
  return createRateLimitInterceptor({
    limits: {
      dispatchRatePerS: one.ratePerS,
      dispatchBurst: one.burst,
      marketDataRatePerS: one.ratePerS,
      marketDataBurst: one.burst,
      registryRatePerS: one.ratePerS,
      registryBurst: one.burst,
      tokensRatePerS: one.ratePerS,
      tokensBurst: one.burst,
    },
    metricsRegistry: new MetricsRegistry(),
    log: createLogger('silent'),
    now: () => 0,
  });
}

/** Calls `service/method` through the interceptor; resolves to the refusal's code, or 'ok' when the handler ran. */
async function call(interceptor: Interceptor, service: string, method: string): Promise<string> {
  const handler = interceptor(async () => ({ stream: false, message: {} }) as never);
  const req = {
    stream: false,
    service: { typeName: service },
    method: { name: method },
    contextValues: createContextValues(),
    message: {},
  };
  try {
    await handler(req as never);
    return 'ok';
  } catch (err) {
    return Code[ConnectError.from(err).code]!;
  }
}

describe('the rate limiter reads the policy table', () => {
  it.each(UNARY)('limits %s/%s exactly when the policy gives it a rate-limit class', async (service, method) => {
    const policy = policyOf(service, method);
    const limited = policy !== undefined && policy !== PUBLIC && policy.rateLimit !== undefined;
    const interceptor = limiter();
    expect(await call(interceptor, service, method)).toBe('ok');
    expect(await call(interceptor, service, method)).toBe(limited ? 'ResourceExhausted' : 'ok');
  });

  it('shares one bucket among the methods of a class and keeps the classes apart', async () => {
    const interceptor = limiter();
    expect(await call(interceptor, 'powerplane.v1.DispatchService', 'SubmitDispatch')).toBe('ok');
    expect(await call(interceptor, 'powerplane.v1.DispatchService', 'SetSiteConfig')).toBe('ResourceExhausted');
    expect(await call(interceptor, 'powerplane.v1.DispatchService', 'PublishMarketData')).toBe('ok');
    expect(await call(interceptor, 'powerplane.v1.DeviceRegistryService', 'CreateDevice')).toBe('ok');
    expect(await call(interceptor, 'powerplane.v1.TokenService', 'RevokeToken')).toBe('ok');
    expect(await call(interceptor, 'powerplane.v1.TokenService', 'CreateToken')).toBe('ResourceExhausted');
  });
});
