import type { Kysely } from 'kysely';
import { InvalidArgumentError, NotFoundError } from '../errors.ts';
import { decodePageToken, encodePageToken, pageSize, takePage, type PageBudget } from '../page-token.ts';
import type { SiteScope } from '../storage/site-scope.ts';
import { toMaps, type DatumMaps } from '../storage/datum-layout.ts';
import { normalizeDeviceId } from '../uuid.ts';
import { listBatterySeries, type SeriesAnswer, type SeriesInput } from './battery-series.ts';
import { checkRange, type RangeInput } from './range.ts';
import * as repo from './readings.repository.ts';
import type { BessReadingRow, MeterAggregateRow, MeterReadingRow } from './readings.table.ts';
import { settlementPeriodOf } from './settlement.ts';

/** A time range as given: microseconds since the epoch, either end possibly missing. */
export type { RangeInput };

/** A listing request of raw readings. */
export interface ListInput {
  readonly deviceIds: readonly string[];
  readonly range: RangeInput | undefined;
  readonly descending: boolean;
  readonly pageSize: number;
  readonly pageToken: string;
}

/** A page of rows and the token of the next. */
export interface Page<T> {
  readonly items: T[];
  readonly nextPageToken: string;
}

/** One settlement period of a meter. */
export interface SettlementPeriod {
  readonly deviceId: string;
  readonly startMicros: number;
  readonly settlementDate: string;
  readonly settlementPeriod: number;
  readonly powerTotalActiveAvg: number | null;
  readonly energyImportedActiveDelta: number | null;
  readonly energyExportedActiveDelta: number | null;
  /**
   * Whether the period has ended and is followed by a reading of the meter and of each
   * counter read in it, so its deltas are interpolated at both ends. When false, a delta
   * whose counter has no reading after the period runs to the period's last reading: the
   * open period's running figure.
   */
  readonly complete: boolean;
}

/** A datum reading read back as maps. */
export interface DatumReading extends DatumMaps {
  readonly timeMicros: number;
}

/**
 * Queries over stored readings. `sites` is what the caller may see: a device outside it
 * is treated as unknown (no rows, or NOT_FOUND where an unknown device is), in the same
 * queries an unknown device costs. A listing given a `budget` also ends a page before the
 * row that would take it past the budget's bytes (a single larger row comes alone).
 */
export interface Readings {
  listMeterReadings(input: ListInput, sites: SiteScope, budget?: PageBudget<MeterReadingRow>): Promise<Page<MeterReadingRow>>;
  listBessReadings(input: ListInput, sites: SiteScope, budget?: PageBudget<BessReadingRow>): Promise<Page<BessReadingRow>>;
  latestBessState(deviceIds: readonly string[], site: string, sites: SiteScope): Promise<BessReadingRow[]>;
  listMeterAggregates(
    input: Omit<ListInput, 'descending'>,
    sites: SiteScope,
    budget?: PageBudget<MeterAggregateRow>,
  ): Promise<Page<MeterAggregateRow>>;
  listSettlementPeriods(deviceIds: readonly string[], range: RangeInput | undefined, sites: SiteScope): Promise<SettlementPeriod[]>;
  listDatumReadings(
    deviceId: string,
    sourceId: string,
    input: Omit<ListInput, 'deviceIds'>,
    sites: SiteScope,
    budget?: PageBudget<DatumReading>,
  ): Promise<Page<DatumReading>>;
  /** Battery series for charts (see `battery-series.ts`), at most `maxTotalPoints` buckets in all (at least one per battery). */
  listBatterySeries(input: SeriesInput, sites: SiteScope, maxTotalPoints: number): Promise<SeriesAnswer>;
}

/** Longest range of the roll-up and settlement listings. */
export const MAX_AGGREGATE_RANGE_DAYS = 31;

/**
 * Creates the readings queries over `db`. `now` is the wall clock, ms since the epoch
 * (default `Date.now`): a settlement period that has not ended by it is never complete.
 */
export function createReadings(deps: { db: Kysely<object>; now?: () => number }): Readings {
  const db = deps.db;
  const now = deps.now ?? Date.now;

  async function listRaw<R extends { time_us: number; device_id: string }>(
    kind: string,
    input: ListInput,
    fetch: (ids: string[], range: repo.MicrosRange, after: repo.TimeCursor | undefined, limit: number) => Promise<R[]>,
    budget: PageBudget<R> | undefined,
  ): Promise<Page<R>> {
    const ids = deviceIds(input.deviceIds, 100);
    const range = checkRange(input.range);
    const limit = pageSize(input.pageSize, 1_000, 10_000);
    const filters = { kind, ids, range, descending: input.descending };
    const after = decodePageToken<repo.TimeCursor>(input.pageToken, filters, ['number', 'uuid']);
    const { page: items, more } = takePage(await fetch(ids, range, after, limit + 1), limit, budget);
    const last = items.at(-1);
    return { items, nextPageToken: more && last ? encodePageToken([last.time_us, last.device_id], filters) : '' };
  }

  return {
    listMeterReadings: (input, sites, budget) =>
      listRaw(
        'meter',
        input,
        (ids, range, after, limit) => repo.listMeterReadings(db, ids, sites, range, input.descending, after, limit),
        budget,
      ),
    listBessReadings: (input, sites, budget) =>
      listRaw(
        'bess',
        input,
        (ids, range, after, limit) => repo.listBessReadings(db, ids, sites, range, input.descending, after, limit),
        budget,
      ),

    async latestBessState(ids, site, sites) {
      if (ids.length === 0 && site === '') throw new InvalidArgumentError('device_ids', [], 'must name batteries or site must be set');
      return repo.latestBessReadings(db, ids.length > 0 ? deviceIds(ids, 1_000) : [], sites, site === '' ? undefined : site);
    },

    async listMeterAggregates(input, sites, budget) {
      const ids = deviceIds(input.deviceIds, 100);
      const range = checkRange(input.range, MAX_AGGREGATE_RANGE_DAYS);
      const limit = pageSize(input.pageSize, 1_000, 10_000);
      const filters = { kind: 'aggregates', ids, range };
      const after = decodePageToken<repo.TimeCursor>(input.pageToken, filters, ['number', 'uuid']);
      const { page: items, more } = takePage(await repo.listMeterAggregates(db, ids, sites, range, after, limit + 1), limit, budget);
      const last = items.at(-1);
      return { items, nextPageToken: more && last ? encodePageToken([last.time_b_us, last.device_id], filters) : '' };
    },

    async listSettlementPeriods(idsIn, rangeIn, sites) {
      const ids = deviceIds(idsIn, 100);
      const range = checkRange(rangeIn, MAX_AGGREGATE_RANGE_DAYS);
      const rows = await repo.listSettlementRows(db, ids, sites, range, Math.floor(now()) * 1_000);
      return rows.map((row) => {
        const { date, period } = settlementPeriodOf(row.time_b_us / 1_000);
        return {
          deviceId: row.device_id,
          startMicros: row.time_b_us,
          settlementDate: date,
          settlementPeriod: period,
          powerTotalActiveAvg: row.power_total_active_avg,
          energyImportedActiveDelta: row.energy_imported_active_delta,
          energyExportedActiveDelta: row.energy_exported_active_delta,
          complete: row.complete,
        };
      });
    },

    listBatterySeries: (input, sites, maxTotalPoints) => listBatterySeries(db, input, sites, maxTotalPoints),

    async listDatumReadings(deviceIdIn, sourceId, input, sites, budget) {
      const [deviceId] = deviceIds([deviceIdIn], 1, 'device_id');
      if (sourceId === '') throw new InvalidArgumentError('source_id', sourceId, 'is required');
      const range = checkRange(input.range);
      const limit = pageSize(input.pageSize, 1_000, 10_000);
      const filters = { kind: 'datum', deviceId, sourceId, range, descending: input.descending };
      const after = decodePageToken<[number]>(input.pageToken, filters, ['number']);
      const stream = await repo.findDatumStream(db, deviceId!, sourceId, sites);
      if (!stream) throw new NotFoundError('datum stream', sourceId, 'source_id');
      if (stream === 'outsideSites') throw new NotFoundError('datum stream', sourceId, 'source_id', { outsideSites: true });
      const rows = await repo.listDatumReadings(db, stream.stream_id, range, input.descending, after?.[0], limit + 1);
      const names = { i: stream.names_i, a: stream.names_a, s: stream.names_s };
      const readings = rows.map((row) => ({ timeMicros: row.time_us, ...toMaps(names, { i: row.data_i, a: row.data_a, s: row.data_s }) }));
      const { page: items, more } = takePage(readings, limit, budget);
      const last = items.at(-1);
      return { items, nextPageToken: more && last ? encodePageToken([last.timeMicros], filters) : '' };
    },
  };
}

function deviceIds(ids: readonly string[], max: number, field = 'device_ids'): string[] {
  if (ids.length === 0) throw new InvalidArgumentError(field, ids, 'must name at least one device');
  if (ids.length > max) throw new InvalidArgumentError(field, ids.length, `must name at most ${max} devices`);
  return ids.map((id) => {
    const normal = normalizeDeviceId(id);
    if (!normal) throw new InvalidArgumentError(field, id, 'must hold UUIDs');
    return normal;
  });
}
