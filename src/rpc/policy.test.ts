import { describe, expect, it } from 'vitest';
import { TokenService } from '../../gen/powerplane/v1/auth_pb.ts';
import { DeviceRegistryService } from '../../gen/powerplane/v1/devices_pb.ts';
import { DispatchService } from '../../gen/powerplane/v1/dispatch_pb.ts';
import { ReadingsService } from '../../gen/powerplane/v1/readings_pb.ts';
import { TelemetryService } from '../../gen/powerplane/v1/telemetry_pb.ts';
import { policyOf, PUBLIC } from './policy.ts';
import { SCOPES } from './principal.ts';

const PRODUCT = [TelemetryService, ReadingsService, DeviceRegistryService, DispatchService, TokenService];

describe('the access policy', () => {
  it.each(PRODUCT.flatMap((s) => s.methods.map((m) => [s.typeName, m.name] as const)))(
    'gives %s/%s a scope (no product method is public)',
    (service, method) => {
      const policy = policyOf(service, method);
      expect(policy).toBeDefined();
      expect(policy).not.toBe(PUBLIC);
      if (policy && policy !== PUBLIC) {
        expect(policy.scopes.length).toBeGreaterThan(0);
        for (const scope of policy.scopes) expect(SCOPES).toContain(scope);
      }
    },
  );

  it('audits every change of market data, dispatch, control, registry and tokens', () => {
    const changes = [
      'PublishMarketData',
      'SubmitDispatch',
      'CancelDispatch',
      'SetControlMode',
      'SetSiteConfig',
      'CreateDevice',
      'UpdateDevice',
      'DeactivateDevice',
      'BatchUpsertDevices',
      'CreateToken',
      'RevokeToken',
    ];
    for (const service of PRODUCT) {
      for (const m of service.methods) {
        const policy = policyOf(service.typeName, m.name);
        expect(policy !== PUBLIC && policy?.audited === true, `${m.name} audited`).toBe(changes.includes(m.name));
      }
    }
  });

  it('rate-limits each change per caller in its class, and nothing else', () => {
    const classes: Record<string, string> = {
      SubmitDispatch: 'dispatch',
      CancelDispatch: 'dispatch',
      SetControlMode: 'dispatch',
      SetSiteConfig: 'dispatch',
      PublishMarketData: 'marketdata',
      CreateDevice: 'registry',
      UpdateDevice: 'registry',
      DeactivateDevice: 'registry',
      BatchUpsertDevices: 'registry',
      CreateToken: 'tokens',
      RevokeToken: 'tokens',
    };
    for (const service of PRODUCT) {
      for (const m of service.methods) {
        const policy = policyOf(service.typeName, m.name);
        expect(policy !== PUBLIC ? policy?.rateLimit : undefined, `${m.name} rate-limit class`).toBe(classes[m.name]);
      }
    }
  });

  it('has no policy for a method it does not know, so such a call is refused', () => {
    expect(policyOf('powerplane.v1.DispatchService', 'DropEverything')).toBeUndefined();
    expect(policyOf('powerplane.v2.Unknown', 'Anything')).toBeUndefined();
  });
});
