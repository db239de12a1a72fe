import { create } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { createClient, type Client } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { ReadingsService } from '../../gen/powerplane/v1/readings_pb.ts';
import {
  BessReadingSchema,
  DatumReadingSchema,
  MeterReadingSchema,
  ReadingBatchSchema,
  TelemetryService,
  type BessReading,
  type DatumReading,
  type MeterReading,
  type ReadingBatch,
} from '../../gen/powerplane/v1/telemetry_pb.ts';
import type { Database } from '../../src/storage/database.ts';

type Fields<T> = Partial<Omit<T, '$typeName' | '$unknown'>>;

/** Registers a device straight in the Flux registry table and returns its id. */
export async function registerDevice(
  database: Database,
  type: 'bess' | 'meter',
  options: { active?: boolean; site?: string } = {},
): Promise<string> {
  const rows = await database.withSession((s) =>
    s.query<{ id: string }>(
      `insert into flux.mg_device_registry (name, type, site, active) values ($1, $2, $3, $4) returning id::text as id`,
      [`${type}-${Math.random().toString(36).slice(2, 8)}`, type, options.site ?? 'site-t', options.active ?? true],
    ),
  );
  return rows[0]!.id;
}

/** A meter reading at `ms` with a few quantities set. */
export function meterReading(deviceId: string, ms: number, fields: Fields<MeterReading> = {}): MeterReading {
  return create(MeterReadingSchema, {
    deviceId,
    time: timestampFromMs(ms),
    frequencyHz: 50,
    powerTotalActiveKw: 12.5,
    energyImportedActiveKwh: 1000,
    ...fields,
  });
}

/** A battery reading at `ms`. */
export function bessReading(deviceId: string, ms: number, fields: Fields<BessReading> = {}): BessReading {
  return create(BessReadingSchema, {
    deviceId,
    time: timestampFromMs(ms),
    soePercent: 55,
    targetPowerKw: -100,
    availableInverterBlocks: 4,
    commandSource: 2,
    ...fields,
  });
}

/** A datum reading at `ms`. */
export function datumReading(deviceId: string, sourceId: string, ms: number, fields: Fields<DatumReading> = {}): DatumReading {
  return create(DatumReadingSchema, { deviceId, sourceId, time: timestampFromMs(ms), ...fields });
}

/** A batch. */
export function batch(sequence: number, lists: { meter?: MeterReading[]; bess?: BessReading[]; datum?: DatumReading[] }): ReadingBatch {
  return create(ReadingBatchSchema, {
    sequence: BigInt(sequence),
    meterReadings: lists.meter ?? [],
    bessReadings: lists.bess ?? [],
    datumReadings: lists.datum ?? [],
  });
}

/** Connect clients over the gRPC protocol. */
export function clients(baseUrl: string): { telemetry: Client<typeof TelemetryService>; readings: Client<typeof ReadingsService> } {
  const transport = createGrpcTransport({ baseUrl });
  return { telemetry: createClient(TelemetryService, transport), readings: createClient(ReadingsService, transport) };
}

/** Counts rows of a table for one device. */
export async function countRows(database: Database, table: string, deviceId: string): Promise<number> {
  const rows = await database.withSession((s) =>
    s.query<{ n: number }>(`select count(*)::int as n from ${table} where device_id = $1`, [deviceId]),
  );
  return rows[0]!.n;
}

/** A whole minute a little in the past, so readings are inside the accepted window. */
export function recentMinute(minutesAgo = 10): number {
  return Math.floor(Date.now() / 60_000) * 60_000 - minutesAgo * 60_000;
}
