import type { Timestamp } from '@bufbuild/protobuf/wkt';
import { InvalidArgumentError } from './errors.ts';

/**
 * The one conversion of `google.protobuf.Timestamp` request fields. A Timestamp holds any
 * int64 of seconds, but protobuf defines it only from 0001-01-01T00:00:00Z to
 * 9999-12-31T23:59:59.999999999Z (its JSON form cannot say more), and a JavaScript Date
 * holds about ±275 000 years: `timestampDate` on `seconds = 2^62` gives an Invalid Date
 * that throws `RangeError` wherever it is used. Every request time is converted here, so
 * an impossible one is INVALID_ARGUMENT naming its field, never INTERNAL.
 */

/** 0001-01-01T00:00:00Z, the earliest time a Timestamp may hold, in seconds since the epoch. */
export const MIN_TIMESTAMP_SECONDS = -62_135_596_800n;
/** 9999-12-31T23:59:59Z, the latest whole second a Timestamp may hold, in seconds since the epoch. */
export const MAX_TIMESTAMP_SECONDS = 253_402_300_799n;

/** What is wrong with `time`, or undefined when it is a valid Timestamp. */
export function timestampProblem(time: Pick<Timestamp, 'seconds' | 'nanos'>): string | undefined {
  if (!Number.isInteger(time.nanos) || time.nanos < 0 || time.nanos > 999_999_999) return 'must have nanos from 0 to 999999999';
  if (time.seconds < MIN_TIMESTAMP_SECONDS || time.seconds > MAX_TIMESTAMP_SECONDS) {
    return 'must be from year 1 to year 9999 (the range of a Timestamp)';
  }
  return undefined;
}

/**
 * Converts a request Timestamp to a Date (millisecond precision, nanoseconds below it
 * dropped), or throws an {@link InvalidArgumentError} naming `field` when it is outside the
 * Timestamp range or its nanos are not 0–999999999.
 */
export function toDate(field: string, time: Timestamp): Date {
  check(field, time);
  return new Date(Number(time.seconds) * 1_000 + Math.floor(time.nanos / 1_000_000));
}

/** {@link toDate} for a field that must be set: an unset one is INVALID_ARGUMENT "is required". */
export function requireDate(field: string, time: Timestamp | undefined): Date {
  if (!time) throw new InvalidArgumentError(field, undefined, 'is required');
  return toDate(field, time);
}

/** {@link toDate} for an optional field: unset stays undefined. */
export function optionalDate(field: string, time: Timestamp | undefined): Date | undefined {
  return time ? toDate(field, time) : undefined;
}

/**
 * Converts a request Timestamp that bounds a query range to microseconds since the epoch
 * (PostgreSQL's resolution; nanoseconds below it dropped), checked as {@link toDate}.
 * Microseconds are exact in a double only from 1685 to 2255; a bound beyond those years
 * is moved to them, which selects the same rows, since no reading can be stored there
 * (ingest accepts times only a few minutes ahead of the clock and within its backfill
 * window).
 */
export function toMicrosBound(field: string, time: Timestamp): number {
  check(field, time);
  const micros = Number(time.seconds) * 1_000_000 + Math.floor(time.nanos / 1_000);
  return Math.min(Math.max(micros, -Number.MAX_SAFE_INTEGER), Number.MAX_SAFE_INTEGER);
}

function check(field: string, time: Timestamp): void {
  const problem = timestampProblem(time);
  if (problem !== undefined) throw new InvalidArgumentError(field, `${time.seconds}s ${time.nanos}ns`, problem);
}
