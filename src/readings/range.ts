import { InvalidArgumentError } from '../errors.ts';

/** Microseconds in a day. */
export const DAY_US = 86_400_000_000;

/** A time range as the API gives it, in microseconds since the epoch; either end may be missing. */
export interface RangeInput {
  readonly startMicros: number | undefined;
  readonly endMicros: number | undefined;
}

/**
 * `range` with both ends, the end after the start and, with `maxDays`, at most that long;
 * INVALID_ARGUMENT naming `range`, `range.start_time` or `range.end_time` otherwise.
 */
export function checkRange(range: RangeInput | undefined, maxDays?: number): { start: number; end: number } {
  if (!range) throw new InvalidArgumentError('range', undefined, 'is required');
  if (range.startMicros === undefined) throw new InvalidArgumentError('range.start_time', undefined, 'is required');
  if (range.endMicros === undefined) throw new InvalidArgumentError('range.end_time', undefined, 'is required');
  if (range.endMicros <= range.startMicros)
    throw new InvalidArgumentError('range.end_time', new Date(range.endMicros / 1_000).toISOString(), 'must be after range.start_time');
  if (maxDays !== undefined && range.endMicros - range.startMicros > maxDays * DAY_US) {
    throw new InvalidArgumentError(
      'range',
      `${((range.endMicros - range.startMicros) / DAY_US).toFixed(1)} days`,
      `must span at most ${maxDays} days`,
    );
  }
  return { start: range.startMicros, end: range.endMicros };
}
