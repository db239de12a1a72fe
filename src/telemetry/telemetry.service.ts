import type { MessageInitShape } from '@bufbuild/protobuf';
import type { ServiceImpl } from '@connectrpc/connect';
import {
  ReadingKind as PbReadingKind,
  TelemetryService,
  type BessReading,
  type MeterReading,
  type ReadingBatch,
  type ReadingsAckSchema,
  type StreamReadingsResponseSchema,
} from '../../gen/powerplane/v1/telemetry_pb.ts';
import { InvalidArgumentError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { pumpStream } from './flow.ts';
import type { Ingest } from './ingest.ts';
import type { BatchOutcome, RawBatch, ReadingKind } from './readings.ts';

/** MeterReading's quantity fields in `METER_QUANTITIES` order. */
const METER_FIELDS = [
  'frequencyHz',
  'voltageLineAverageV',
  'currentPhaseAA',
  'currentPhaseBA',
  'currentPhaseCA',
  'currentPhaseAverageA',
  'powerPhaseAActiveKw',
  'powerPhaseBActiveKw',
  'powerPhaseCActiveKw',
  'powerTotalActiveKw',
  'powerTotalReactiveKvar',
  'powerTotalApparentKva',
  'powerFactorTotal',
  'energyImportedActiveKwh',
  'energyExportedActiveKwh',
  'energyImportedPhaseAActiveKwh',
  'energyExportedPhaseAActiveKwh',
  'energyImportedPhaseBActiveKwh',
  'energyExportedPhaseBActiveKwh',
  'energyImportedPhaseCActiveKwh',
  'energyExportedPhaseCActiveKwh',
  'energyImportedReactiveKvarh',
  'energyExportedReactiveKvarh',
  'energyImportedApparentKvah',
  'energyExportedApparentKvah',
] as const satisfies readonly (keyof MeterReading)[];

const KIND_TO_PB: Record<ReadingKind, PbReadingKind> = {
  meter: PbReadingKind.METER,
  bess: PbReadingKind.BESS,
  datum: PbReadingKind.DATUM,
};

type AckInit = MessageInitShape<typeof ReadingsAckSchema>;
type StreamResponseInit = MessageInitShape<typeof StreamReadingsResponseSchema>;

/**
 * The TelemetryService RPCs. StreamReadings reads the request stream only while the
 * stream and the server have batches in flight to spare, so HTTP/2 flow control slows a
 * client that outruns the database; acks go out as batches commit.
 */
export function createTelemetryService(ingest: Ingest, log: Logger): ServiceImpl<typeof TelemetryService> {
  return {
    streamReadings(requests) {
      return pumpStream<(typeof requests extends AsyncIterable<infer R> ? R : never), StreamResponseInit>(
        requests,
        async (request) => {
          switch (request.message.case) {
            case 'batch':
              return { message: { case: 'ack', value: toPbAck(await ingest.writeBatch(fromPbBatch(request.message.value))) } };
            case 'setpointOutcome':
              log.debug({ setpointId: request.message.value.setpointId, verified: request.message.value.verified }, 'relayed setpoint outcome');
              return undefined;
            case undefined:
              return undefined;
            default: {
              const never: never = request.message;
              return never;
            }
          }
        },
        { perStream: ingest.config.maxBatchesInFlightPerStream, global: ingest.inFlight },
      );
    },
    async writeReadings(request) {
      if (!request.batch) throw new InvalidArgumentError('batch', undefined, 'is required');
      const release = await ingest.inFlight.acquire();
      try {
        return { ack: toPbAck(await ingest.writeBatch(fromPbBatch(request.batch))) };
      } finally {
        release();
      }
    },
  };
}

/** Maps an API batch to the domain's unvalidated batch. */
function fromPbBatch(batch: ReadingBatch): RawBatch {
  return {
    sequence: batch.sequence,
    meter: batch.meterReadings.map((m) => ({ deviceId: m.deviceId, time: m.time, values: METER_FIELDS.map((f) => m[f]) })),
    bess: batch.bessReadings.map((b: BessReading) => ({
      deviceId: b.deviceId,
      time: b.time,
      values: { soe: b.soePercent, targetPower: b.targetPowerKw, availableInverterBlocks: b.availableInverterBlocks, commandSource: b.commandSource },
    })),
    datum: batch.datumReadings.map((d) => ({
      deviceId: d.deviceId,
      sourceId: d.sourceId,
      time: d.time,
      values: undefined,
      instantaneous: d.instantaneous,
      accumulating: d.accumulating,
      status: d.status,
    })),
  };
}

function toPbAck(outcome: BatchOutcome): AckInit {
  return {
    sequence: outcome.sequence,
    storedCount: outcome.stored,
    duplicateCount: outcome.duplicates,
    conflictCount: outcome.conflicts,
    rejectedCount: outcome.rejections.length,
    rejections: outcome.rejections.map((r) => ({ ...r, kind: KIND_TO_PB[r.kind] })),
  };
}
