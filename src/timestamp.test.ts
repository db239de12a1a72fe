import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from './errors.ts';
import { MAX_TIMESTAMP_SECONDS, MIN_TIMESTAMP_SECONDS, optionalDate, requireDate, toDate, toMicrosBound } from './timestamp.ts';

const ts = (seconds: bigint, nanos = 0) => ({ $typeName: 'google.protobuf.Timestamp' as const, seconds, nanos });

describe('the request timestamp conversion', () => {
  it.each([
    ['2^62 seconds', ts(2n ** 62n), 'must be from year 1 to year 9999 (the range of a Timestamp)'],
    ['-2^62 seconds', ts(-(2n ** 62n)), 'must be from year 1 to year 9999 (the range of a Timestamp)'],
    ['the second after 9999', ts(MAX_TIMESTAMP_SECONDS + 1n), 'must be from year 1 to year 9999 (the range of a Timestamp)'],
    ['the second before year 1', ts(MIN_TIMESTAMP_SECONDS - 1n), 'must be from year 1 to year 9999 (the range of a Timestamp)'],
    ['negative nanos', ts(0n, -1), 'must have nanos from 0 to 999999999'],
    ['a whole second of nanos', ts(0n, 1_000_000_000), 'must have nanos from 0 to 999999999'],
  ])('refuses %s with INVALID_ARGUMENT naming the field', (_name, time, reason) => {
    expect(() => toDate('intervals[0].end_time', time)).toThrow(InvalidArgumentError);
    expect(() => toDate('intervals[0].end_time', time)).toThrow(`intervals[0].end_time ${reason} (got "${time.seconds}s ${time.nanos}ns")`);
    expect(() => toMicrosBound('range.end_time', time)).toThrow(`range.end_time ${reason}`);
  });

  it('converts the ends of the Timestamp range and the times in between', () => {
    expect(toDate('t', ts(MAX_TIMESTAMP_SECONDS, 999_999_999)).toISOString()).toBe('9999-12-31T23:59:59.999Z');
    expect(toDate('t', ts(MIN_TIMESTAMP_SECONDS)).toISOString()).toBe('0001-01-01T00:00:00.000Z');
    expect(toDate('t', ts(1_700_000_000n, 123_456_789)).toISOString()).toBe('2023-11-14T22:13:20.123Z');
    expect(toMicrosBound('t', ts(1_700_000_000n, 123_456_789))).toBe(1_700_000_000_123_456);
  });

  it('moves a query bound beyond the exact microseconds of a double to their edge', () => {
    expect(toMicrosBound('t', ts(MAX_TIMESTAMP_SECONDS))).toBe(Number.MAX_SAFE_INTEGER);
    expect(toMicrosBound('t', ts(MIN_TIMESTAMP_SECONDS))).toBe(-Number.MAX_SAFE_INTEGER);
  });

  it('requires a required field and leaves an optional one unset', () => {
    expect(() => requireDate('start_time', undefined)).toThrow('start_time is required');
    expect(optionalDate('expire_time', undefined)).toBeUndefined();
    expect(optionalDate('expire_time', ts(0n))?.getTime()).toBe(0);
  });
});
