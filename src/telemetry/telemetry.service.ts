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
export const METER_FIELDS = [
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
        // Not an async function: a batch waits for its commit holding only its validated
        // rows, not the decoded request (an async frame would keep `request` alive, and with
        // it a thousand protobuf messages per batch, through every GC until the ack).
        (request) => {
          try {
            switch (request.message.case) {
              case 'batch':
                return ingest.writeBatch(fromPbBatch(request.message.value)).then(toStreamAck);
              case 'setpointOutcome':
                log.debug({ setpointId: request.message.value.setpointId, verified: request.message.value.verified }, 'relayed setpoint outcome');
                return Promise.resolve(undefined);
              case undefined:
                return Promise.resolve(undefined);
              default: {
                const never: never = request.message;
                return Promise.resolve(never);
              }
            }
          } catch (err) {
            return Promise.reject(err);
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
    meter: meterReadings(batch.meterReadings),
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

/**
 * The hot path of ingest: one plain loop, one object and one array literal per reading
 * (in `METER_FIELDS` order, checked by the type below), no closure per reading.
 */
function meterReadings(readings: readonly MeterReading[]): RawBatch['meter'] {
  const out = new Array<RawBatch['meter'][number]>(readings.length);
  for (let i = 0; i < readings.length; i++) {
    const m = readings[i]!;
    out[i] = { deviceId: m.deviceId, time: m.time, values: meterValues(m) };
  }
  return out;
}

/** A meter reading's quantities in `METER_FIELDS` order (exported for its test). */
export function meterValues(m: MeterReading): (number | undefined)[] {
  return [
    m.frequencyHz,
    m.voltageLineAverageV,
    m.currentPhaseAA,
    m.currentPhaseBA,
    m.currentPhaseCA,
    m.currentPhaseAverageA,
    m.powerPhaseAActiveKw,
    m.powerPhaseBActiveKw,
    m.powerPhaseCActiveKw,
    m.powerTotalActiveKw,
    m.powerTotalReactiveKvar,
    m.powerTotalApparentKva,
    m.powerFactorTotal,
    m.energyImportedActiveKwh,
    m.energyExportedActiveKwh,
    m.energyImportedPhaseAActiveKwh,
    m.energyExportedPhaseAActiveKwh,
    m.energyImportedPhaseBActiveKwh,
    m.energyExportedPhaseBActiveKwh,
    m.energyImportedPhaseCActiveKwh,
    m.energyExportedPhaseCActiveKwh,
    m.energyImportedReactiveKvarh,
    m.energyExportedReactiveKvarh,
    m.energyImportedApparentKvah,
    m.energyExportedApparentKvah,
  ];
}

function toStreamAck(outcome: BatchOutcome): StreamResponseInit {
  return { message: { case: 'ack', value: toPbAck(outcome) } };
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
