/**
 * Battery series for charts: each selected battery's SoE, reported power and setpoint over
 * a window, in at most `points` equal buckets computed in SQL (`battery-series.repository.ts`).
 */
import type { Kysely } from 'kysely';
import { InvalidArgumentError, NotFoundError } from '../errors.ts';
import type { SiteScope } from '../storage/site-scope.ts';
import { normalizeDeviceId } from '../uuid.ts';
import * as repo from './battery-series.repository.ts';
import { checkRange } from './range.ts';

/** Most batteries one call may select by id. */
export const MAX_SERIES_BATTERIES = 1_000;
/** Most buckets per battery a caller may ask for. */
export const MAX_SERIES_POINTS = 1_000;
/** Buckets per battery when the caller asks for none (`points` 0). */
export const DEFAULT_SERIES_POINTS = 120;
/** Longest window, days. */
export const MAX_SERIES_RANGE_DAYS = 31;

/** What a caller asks for: a site or battery ids (one of the two), a window and a number of buckets. */
export interface SeriesInput {
  /** A site, checked against the caller's binding by the caller; '' when `deviceIds` selects. */
  readonly site: string;
  readonly deviceIds: readonly string[];
  /** The window in microseconds since the epoch, either end possibly missing (refused). */
  readonly range: { readonly startMicros: number | undefined; readonly endMicros: number | undefined } | undefined;
  /** Buckets per battery, 0 for {@link DEFAULT_SERIES_POINTS}. */
  readonly points: number;
}

/** One bucket of one battery; a value is null where the bucket has none. */
export interface SeriesPoint {
  /** The bucket's start, microseconds since the epoch. */
  readonly timeMicros: number;
  readonly soePercent: number | null;
  readonly reportedPowerKw: number | null;
  readonly setpointKw: number | null;
}

/** One battery's buckets with data, oldest first. */
export interface BatterySeries {
  readonly deviceId: string;
  readonly points: SeriesPoint[];
}

/** The series and the width of their buckets. */
export interface SeriesAnswer {
  /** One per selected battery, by device id. */
  readonly series: BatterySeries[];
  readonly bucketMicros: number;
}

/**
 * Answers a series request. The buckets are `bucketMicros` wide from the window's start, or
 * from the first reading or planned setpoint in it when that comes later (so a window
 * longer than the stored history is drawn from its first data, not squeezed into its right
 * end); their number is at most `points` and at most `maxTotalPoints` ÷ batteries (at
 * least 1), which keeps the answer within the caller's message budget. Throws
 * INVALID_ARGUMENT naming the field for a bad selection, window or `points`, and NOT_FOUND
 * for a site without active batteries.
 */
export async function listBatterySeries(
  db: Kysely<object>,
  input: SeriesInput,
  sites: SiteScope,
  maxTotalPoints: number,
): Promise<SeriesAnswer> {
  const selected = selection(input, sites);
  const { start, end } = checkRange(input.range, MAX_SERIES_RANGE_DAYS);
  const points = requestedPoints(input.points);
  const ids = await repo.findSeriesBatteries(db, selected);
  if ('site' in selected && ids.length === 0) throw new NotFoundError('site with active batteries', selected.site, 'site');
  const perBattery = Math.max(1, Math.min(points, Math.floor(maxTotalPoints / Math.max(1, ids.length))));
  const first = ids.length > 0 ? await repo.findFirstSeriesData(db, ids, start, end) : undefined;
  const origin = first !== undefined && first > start ? first : start;
  const bucketMicros = Math.max(1, Math.ceil((end - origin) / perBattery));
  const rows = first !== undefined ? await repo.findSeriesBuckets(db, ids, origin, end, bucketMicros) : [];
  const byDevice = new Map<string, SeriesPoint[]>(ids.map((id) => [id, []]));
  for (const row of rows) {
    byDevice.get(row.device_id)?.push({
      timeMicros: row.bucket_us,
      soePercent: row.soe,
      reportedPowerKw: row.power,
      setpointKw: row.setpoint,
    });
  }
  return { series: ids.map((deviceId) => ({ deviceId, points: byDevice.get(deviceId)! })), bucketMicros };
}

function selection(input: SeriesInput, sites: SiteScope): repo.SeriesBatteries {
  if (input.site !== '' && input.deviceIds.length > 0)
    throw new InvalidArgumentError('site', input.site, 'must be empty when device_ids is set');
  if (input.site !== '') return { site: input.site };
  if (input.deviceIds.length === 0) throw new InvalidArgumentError('site', '', 'is required (or device_ids)');
  if (input.deviceIds.length > MAX_SERIES_BATTERIES)
    throw new InvalidArgumentError('device_ids', input.deviceIds.length, `must name at most ${MAX_SERIES_BATTERIES} batteries`);
  const ids = input.deviceIds.map((id, i) => {
    const normal = normalizeDeviceId(id);
    if (!normal) throw new InvalidArgumentError(`device_ids[${i}]`, id, 'must be a UUID');
    return normal;
  });
  return { ids: [...new Set(ids)], sites };
}

function requestedPoints(points: number): number {
  if (points === 0) return DEFAULT_SERIES_POINTS;
  if (!Number.isInteger(points) || points < 1 || points > MAX_SERIES_POINTS)
    throw new InvalidArgumentError('points', points, `must be from 1 to ${MAX_SERIES_POINTS} (0 for ${DEFAULT_SERIES_POINTS})`);
  return points;
}
