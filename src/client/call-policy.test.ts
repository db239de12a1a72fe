import { describe, expect, it } from 'vitest';
import { DispatchService } from '../../gen/powerplane/v1/dispatch_pb.ts';
import { isRetryable, withRequestId } from './call-policy.ts';
import { SERVICES } from './client.ts';

/** Every method of the API that the client sends again after UNAVAILABLE. A new method must be added here or to SENT_ONCE. */
const RETRIED = [
  'ReadingsService/ListMeterReadings',
  'ReadingsService/ListBessReadings',
  'ReadingsService/GetLatestBessState',
  'ReadingsService/ListMeterAggregates',
  'ReadingsService/ListSettlementPeriods',
  'ReadingsService/ListBatterySeries',
  'ReadingsService/ListDatumReadings',
  'DeviceRegistryService/CreateDevice',
  'DeviceRegistryService/GetDevice',
  'DeviceRegistryService/ListDevices',
  'DeviceRegistryService/BatchUpsertDevices',
  'DispatchService/PublishMarketData',
  'DispatchService/ListMarketData',
  'DispatchService/SubmitDispatch',
  'DispatchService/GetDispatch',
  'DispatchService/ListDispatches',
  'DispatchService/GetControlState',
  'DispatchService/GetSiteConfig',
  'FleetService/GetFleetSummary',
  'TokenService/ListTokens',
  'TokenService/GetCaller',
];

/** Every method sent once: a second attempt could act twice, or it is a stream. */
const SENT_ONCE = [
  'TelemetryService/StreamReadings',
  'TelemetryService/WriteReadings',
  'DeviceRegistryService/UpdateDevice',
  'DeviceRegistryService/DeactivateDevice',
  'DispatchService/CancelDispatch',
  'DispatchService/SetControlMode',
  'DispatchService/WatchSetpoints',
  'DispatchService/SetSiteConfig',
  'TokenService/CreateToken',
  'TokenService/RevokeToken',
];

const methods = Object.values(SERVICES).flatMap((service) =>
  service.methods.map((method) => ({ name: `${service.typeName.replace('powerplane.v1.', '')}/${method.name}`, method })),
);

describe('which calls the client retries', () => {
  it('classifies every method of every powerplane.v1 service, and no other', () => {
    expect(methods.map((m) => m.name).sort()).toEqual([...RETRIED, ...SENT_ONCE].sort());
  });

  it.each(methods.map((m) => [m.name, m.method] as const))('%s', (name, method) => {
    expect(isRetryable(method)).toBe(RETRIED.includes(name));
  });
});

describe('withRequestId', () => {
  const submit = DispatchService.method.submitDispatch;
  const cancel = DispatchService.method.cancelDispatch;

  it('fills an empty request_id with a new id, leaving the caller object unchanged', () => {
    const input = { requestId: '', target: { case: 'site' as const, value: 'site-a' } };
    const sent = withRequestId(submit, input, () => 'id-1');
    expect(sent).toEqual({ ...input, requestId: 'id-1' });
    expect(input.requestId).toBe('');
    expect(withRequestId(submit, { target: input.target }, () => 'id-2')).toMatchObject({ requestId: 'id-2' });
  });

  it("keeps the caller's request_id", () => {
    const input = { requestId: 'mine' };
    expect(withRequestId(submit, input, () => 'other')).toBe(input);
  });

  it('leaves a request without a request_id field alone', () => {
    const input = { id: 'x' };
    expect(withRequestId(cancel, input, () => 'other')).toBe(input);
  });
});
