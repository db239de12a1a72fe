import type { MessageInitShape } from '@bufbuild/protobuf';
import type { HandlerContext, ServiceImpl } from '@connectrpc/connect';
import {
  MeterAggregateSchema,
  ReadingsService,
  SeriesPointSchema,
  TimeOrder,
  type TimeRange,
} from '../../gen/powerplane/v1/readings_pb.ts';
import { BessReadingSchema, DatumReadingSchema, MeterReadingSchema } from '../../gen/powerplane/v1/telemetry_pb.ts';
import type { SiteAccess } from '../rpc/site-access.ts';
import { InvalidArgumentError } from '../errors.ts';
import { DEFAULT_PAGE_BYTES } from '../page-token.ts';
import { largestSize, responseSizer } from '../response-size.ts';
import { METER_QUANTITIES } from '../storage/reading-columns.ts';
import { toMicrosBound } from '../timestamp.ts';
import type { DatumReading, RangeInput, Readings } from './readings.ts';
import type { BessReadingRow, MeterAggregateRow, MeterReadingRow } from './readings.table.ts';

type MeterInit = MessageInitShape<typeof MeterReadingSchema>;
type BessInit = MessageInitShape<typeof BessReadingSchema>;

/** The API field of each meter quantity (protobuf-es names fields in lowerCamelCase). */
const METER_KEYS = METER_QUANTITIES.map((q) => ({
  column: q.column,
  key: q.field.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase()),
}));

/** The string fields of a reading or aggregate row at their longest: a device id. */
const ROW_STRINGS = { deviceId: '00000000-0000-0000-0000-000000000000' };

/**
 * The ReadingsService RPCs: decode, query, encode. `pageBytes` bounds the bytes of rows on
 * one page of every paged listing (default `DEFAULT_PAGE_BYTES`, 1 MiB): a page of 10 000
 * meter readings is about 11 MB in JSON. Readings and aggregates have one shape, so each
 * row counts as the largest of its kind; datum readings are measured one by one.
 * `seriesBytes` bounds the points of one ListBatterySeries answer the same way (default
 * twice `pageBytes`, half the message limit): a call selecting many batteries gets fewer
 * buckets per battery.
 */
export function createReadingsService(
  readings: Readings,
  access: SiteAccess,
  options: { readonly pageBytes?: number; readonly seriesBytes?: number } = {},
): ServiceImpl<typeof ReadingsService> {
  const bytes = options.pageBytes ?? DEFAULT_PAGE_BYTES;
  const seriesBytes = options.seriesBytes ?? 2 * bytes;
  /** The page budget of rows of one fixed shape: each counts as the largest of its kind. */
  const sameSizeRows = (ctx: HandlerContext, schema: Parameters<typeof largestSize>[1]) => {
    const rowBytes = largestSize(ctx, schema, ROW_STRINGS);
    return { bytes, sizeOf: () => rowBytes };
  };
  return {
    async listMeterReadings(req, ctx) {
      const page = await readings.listMeterReadings(rawListInput(req), access.scope(ctx), sameSizeRows(ctx, MeterReadingSchema));
      return { meterReadings: page.items.map(toPbMeter), nextPageToken: page.nextPageToken };
    },
    async listBessReadings(req, ctx) {
      const page = await readings.listBessReadings(rawListInput(req), access.scope(ctx), sameSizeRows(ctx, BessReadingSchema));
      return { bessReadings: page.items.map(toPbBess), nextPageToken: page.nextPageToken };
    },
    async getLatestBessState(req, ctx) {
      const site = req.deviceIds.length && req.site === '' ? '' : (access.listSite(ctx, req.site, 'site') ?? '');
      return { states: (await readings.latestBessState(req.deviceIds, site, access.scope(ctx))).map(toPbBess) };
    },
    async listMeterAggregates(req, ctx) {
      const budget = sameSizeRows(ctx, MeterAggregateSchema);
      const page = await readings.listMeterAggregates(
        { deviceIds: req.deviceIds, range: toRange(req.range), pageSize: req.pageSize, pageToken: req.pageToken },
        access.scope(ctx),
        budget,
      );
      return { aggregates: page.items.map(toPbAggregate), nextPageToken: page.nextPageToken };
    },
    async listSettlementPeriods(req, ctx) {
      const periods = await readings.listSettlementPeriods(req.deviceIds, toRange(req.range), access.scope(ctx));
      return {
        periods: periods.map((p) => ({
          deviceId: p.deviceId,
          startTime: toTimestamp(p.startMicros),
          settlementDate: p.settlementDate,
          settlementPeriod: p.settlementPeriod,
          powerTotalActiveAvgKw: opt(p.powerTotalActiveAvg),
          energyImportedActiveDeltaKwh: opt(p.energyImportedActiveDelta),
          energyExportedActiveDeltaKwh: opt(p.energyExportedActiveDelta),
          complete: p.complete,
        })),
      };
    },
    async listBatterySeries(req, ctx) {
      if (req.site !== '') access.site(ctx, req.site, 'site');
      // Every point counted at its largest; the series' ids and framing fit in the rest of the message limit.
      const maxPoints = Math.floor(seriesBytes / largestSize(ctx, SeriesPointSchema, {}));
      const input = { site: req.site, deviceIds: req.deviceIds, range: toRange(req.range), points: req.points };
      const answer = await readings.listBatterySeries(input, access.scope(ctx), maxPoints);
      return {
        series: answer.series.map((s) => ({
          deviceId: s.deviceId,
          points: s.points.map((p) => ({
            time: toTimestamp(p.timeMicros),
            soePercent: opt(p.soePercent),
            reportedPowerKw: opt(p.reportedPowerKw),
            setpointKw: opt(p.setpointKw),
          })),
        })),
        bucketSeconds: answer.bucketMicros / 1_000_000,
      };
    },
    async listDatumReadings(req, ctx) {
      const toPbDatum = (d: DatumReading) => ({
        deviceId: req.deviceId.toLowerCase(),
        sourceId: req.sourceId,
        time: toTimestamp(d.timeMicros),
        instantaneous: d.instantaneous,
        accumulating: d.accumulating,
        status: d.status,
      });
      const size = responseSizer(ctx, DatumReadingSchema);
      const page = await readings.listDatumReadings(
        req.deviceId,
        req.sourceId,
        { range: toRange(req.range), descending: isDescending(req.order), pageSize: req.pageSize, pageToken: req.pageToken },
        access.scope(ctx),
        { bytes, sizeOf: (d) => size(toPbDatum(d)) },
      );
      return { datumReadings: page.items.map(toPbDatum), nextPageToken: page.nextPageToken };
    },
  };
}

/** The listing input of a raw readings request (meter or battery). */
function rawListInput(req: { deviceIds: string[]; range?: TimeRange | undefined; order: TimeOrder; pageSize: number; pageToken: string }) {
  return {
    deviceIds: req.deviceIds,
    range: toRange(req.range),
    descending: isDescending(req.order),
    pageSize: req.pageSize,
    pageToken: req.pageToken,
  };
}

function isDescending(order: TimeOrder): boolean {
  switch (order) {
    case TimeOrder.UNSPECIFIED:
    case TimeOrder.ASCENDING:
      return false;
    case TimeOrder.DESCENDING:
      return true;
    default:
      throw new InvalidArgumentError('order', order, 'is not a known TimeOrder');
  }
}

function toRange(range: TimeRange | undefined): RangeInput | undefined {
  if (!range) return undefined;
  return {
    startMicros: range.startTime ? toMicrosBound('range.start_time', range.startTime) : undefined,
    endMicros: range.endTime ? toMicrosBound('range.end_time', range.endTime) : undefined,
  };
}

function toTimestamp(micros: number): { seconds: bigint; nanos: number } {
  const seconds = Math.floor(micros / 1_000_000);
  return { seconds: BigInt(seconds), nanos: (micros - seconds * 1_000_000) * 1_000 };
}

function opt(value: number | null): number | undefined {
  return value === null ? undefined : value;
}

function toPbMeter(row: MeterReadingRow): MeterInit {
  const reading: Record<string, unknown> = { deviceId: row.device_id, time: toTimestamp(row.time_us) };
  for (const { column, key } of METER_KEYS) {
    const value = row[column];
    if (value !== null && value !== undefined) reading[key] = Number(value);
  }
  return reading as MeterInit;
}

function toPbAggregate(a: MeterAggregateRow): MessageInitShape<typeof MeterAggregateSchema> {
  return {
    deviceId: a.device_id,
    bucketStartTime: toTimestamp(a.time_b_us),
    readingCount: a.reading_count,
    frequencyAvgHz: opt(a.frequency_avg),
    voltageLineAverageAvgV: opt(a.voltage_line_average_avg),
    currentPhaseAverageAvgA: opt(a.current_phase_average_avg),
    powerTotalActiveAvgKw: opt(a.power_total_active_avg),
    powerTotalReactiveAvgKvar: opt(a.power_total_reactive_avg),
    powerFactorTotalAvg: opt(a.power_factor_total_avg),
    energyImportedActiveMinKwh: opt(a.energy_imported_active_min),
    energyImportedActiveMaxKwh: opt(a.energy_imported_active_max),
    energyExportedActiveMinKwh: opt(a.energy_exported_active_min),
    energyExportedActiveMaxKwh: opt(a.energy_exported_active_max),
  };
}

function toPbBess(row: BessReadingRow): BessInit {
  return {
    deviceId: row.device_id,
    time: toTimestamp(row.time_us),
    soePercent: opt(row.soe),
    targetPowerKw: opt(row.target_power),
    availableInverterBlocks: opt(row.available_inverter_blocks),
    commandSource: row.command_source ?? 0,
  };
}
