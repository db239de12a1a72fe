import { Code, ConnectError } from '@connectrpc/connect';
import { describe, expect, it } from 'vitest';
import { RetryInfoSchema } from '../../gen/google/rpc/error_details_pb.ts';
import { backoffDelayMs, MAX_RETRY_INFO_MS, retryInfoDelayMs } from './backoff.ts';

describe('backoffDelayMs', () => {
  it.each([
    [1, 100],
    [2, 200],
    [3, 400],
    [4, 800],
    [5, 1_600],
    [6, 2_000],
    [20, 2_000],
  ])('after %i failures draws below a ceiling of %i ms', (failures, ceiling) => {
    expect(backoffDelayMs(failures, () => 0)).toBe(0);
    expect(backoffDelayMs(failures, () => 0.5)).toBe(ceiling / 2);
    expect(backoffDelayMs(failures, () => 0.999_999)).toBe(ceiling - 1);
  });
});

describe('retryInfoDelayMs', () => {
  const unavailable = (seconds: bigint, nanos: number) =>
    new ConnectError('busy', Code.Unavailable, undefined, [{ desc: RetryInfoSchema, value: { retryDelay: { seconds, nanos } } }]);

  it('reads the delay of a RetryInfo detail, nanoseconds rounded up to whole ms', () => {
    expect(retryInfoDelayMs(unavailable(1n, 250_000_000))).toBe(1_250);
    expect(retryInfoDelayMs(unavailable(0n, 1))).toBe(1);
    expect(retryInfoDelayMs(unavailable(0n, 0))).toBe(0);
  });

  it('cuts a delay beyond the ceiling', () => {
    expect(retryInfoDelayMs(unavailable(86_400n, 0))).toBe(MAX_RETRY_INFO_MS);
  });

  it('is undefined without a RetryInfo', () => {
    expect(retryInfoDelayMs(new ConnectError('busy', Code.Unavailable))).toBeUndefined();
  });

  it('is undefined for a RetryInfo that does not decode', () => {
    const garbled = new ConnectError('busy', Code.Unavailable);
    garbled.details = [{ type: RetryInfoSchema.typeName, value: new Uint8Array([0xff]) }];
    expect(retryInfoDelayMs(garbled)).toBeUndefined();
  });
});
