import type { MessageInitShape } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import {
  ReadingKind as PbReadingKind,
  type BessReading,
  type MeterReading,
  type ReadingBatch,
  type ReadingsAckSchema,
  type StreamReadingsResponseSchema,
} from '../../gen/powerplane/v1/telemetry_pb.ts';
import type { Registry as MetricsRegistry } from 'prom-client';
import { mayAccessSite, principalOf, type Principal } from '../rpc/principal.ts';
import { InvalidArgumentError, PermissionDeniedError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { checkText } from '../text.ts';
import { rateLimitError } from '../rpc/refusals.ts';
import { refusalCounter } from '../rpc/refusals.ts';
import { pumpStream } from './flow.ts';
import type { Ingest } from './ingest.ts';
import { createIngestLimiter, readingsIn } from './ingest-limit.ts';
import { mergeRelayed, type RelayedSetpoint, type RelayHub } from './relay-hub.ts';
import { toMeterColumns, type BatchOutcome, type MeterColumns, type RawBatch, type ReadingKind } from './reading-batch.ts';
import { decodeReadingBatch } from './wire-decode.ts';
import type { TelemetryServiceImpl } from './wire-view.ts';

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

/** Options of {@link createTelemetryService}. */
export interface TelemetryServiceOptions {
  /** The server's Prometheus registry; refused batches are counted there. */
  readonly metricsRegistry?: MetricsRegistry;
  /** Monotonic clock of the ingest rate limit, ms (tests). Default `performance.now`. */
  readonly now?: () => number;
}

/**
 * The TelemetryService RPCs. StreamReadings reads the request stream only while the
 * stream and the server have batches in flight to spare, so HTTP/2 flow control slows a
 * client that outruns the database; acks go out as batches commit. With a relay hub, a
 * stream that says hello joins its site and carries relayed setpoints between the acks.
 *
 * Each caller may send `ingestReadingsPerS` readings a second (bursts of `ingestBurst`). A
 * batch over it is refused whole, before anything of it is read further, with
 * RESOURCE_EXHAUSTED, a `google.rpc.RetryInfo` and `retry-after`: WriteReadings answers
 * so; StreamReadings ends the stream so, after the acks of the batches already admitted.
 * Ending the stream keeps an older client safe: it never sees an ack for the refused
 * batch, so it keeps it and sends it again, where a refusal inside an ack could be taken
 * for a commit and lost.
 */
export function createTelemetryService(
  ingest: Ingest,
  log: Logger,
  relayHub?: RelayHub,
  options: TelemetryServiceOptions = {},
): TelemetryServiceImpl {
  const limiter = createIngestLimiter(ingest.config, options.now);
  const refused = options.metricsRegistry ? refusalCounter(options.metricsRegistry) : undefined;
  /** Throws the refusal when `batch` is over `principal`'s ingest rate. */
  const admit = (batch: RawBatch, principal: Principal): void => {
    const readings = readingsIn(batch);
    // An oversize batch is ingest's INVALID_ARGUMENT, and costs the caller nothing here.
    if (!limiter || readings > ingest.config.maxBatchReadings) return;
    const taken = limiter.admit(principal.id, readings);
    if (taken.ok) return;
    refused?.inc({ reason: 'ingest_rate' });
    log.debug({ principal: principal.id, readings, retryAfterMs: taken.retryAfterMs }, 'ingest rate limit exceeded');
    throw rateLimitError('ingest of readings', limiter.limit, taken.retryAfterMs);
  };
  return {
    streamReadings(requests, context) {
      const relay = relayHub?.open();
      const responses = pumpStream<typeof requests extends AsyncIterable<infer R> ? R : never, StreamResponseInit>(
        requests,
        // Not an async function: a batch waits for its commit holding only its validated
        // rows, not the request (an async frame would keep `request` and its batch bytes
        // alive through every GC until the ack).
        (request) => {
          try {
            switch (request.message.case) {
              case 'batch': {
                const batch = fromPbBatch(request.message.value);
                const principal = principalOf(context);
                admit(batch, principal);
                return ingest.writeBatch(batch, principal).then(toStreamAck);
              }
              case 'setpointOutcome':
                // The reason ends up in the setpoint events table, with a whole batch of events.
                checkText('setpoint_outcome.setpoint_id', request.message.value.setpointId, 64);
                checkText('setpoint_outcome.reason', request.message.value.reason, 1_000);
                log.debug(
                  { setpointId: request.message.value.setpointId, verified: request.message.value.verified },
                  'relayed setpoint outcome',
                );
                relay?.outcome(request.message.value);
                return Promise.resolve(undefined);
              case 'hello': {
                const site = checkText('hello.site', request.message.value.site, 200);
                const principal = principalOf(context);
                // An empty site is the hub's INVALID_ARGUMENT, not a permission question.
                if (site.trim() !== '' && !mayAccessSite(principal, site))
                  throw new PermissionDeniedError(`hello.site names site ${JSON.stringify(site)}, which ${principal.id} is not bound to`);
                relay?.hello(site);
                return Promise.resolve(undefined);
              }
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
      return relay ? mergeRelayed(responses, relay, toRelaySetpoint) : responses;
    },
    async writeReadings(request, context) {
      if (!request.batch) throw new InvalidArgumentError('batch', undefined, 'is required');
      const batch = fromPbBatch(request.batch);
      const principal = principalOf(context);
      admit(batch, principal);
      const release = await ingest.inFlight.acquire();
      try {
        return { ack: toPbAck(await ingest.writeBatch(batch, principal)) };
      } finally {
        release();
      }
    },
  };
}

/**
 * Maps an API batch to the domain's unvalidated batch: from its bytes (every binary
 * request, through the wire view) or from the decoded message (JSON requests). Exported
 * for the decoder's test, which compares the two.
 */
export function fromPbBatch(batch: ReadingBatch | Uint8Array): RawBatch {
  if (batch instanceof Uint8Array) return decodeReadingBatch(batch);
  return {
    sequence: batch.sequence,
    meter: meterReadings(batch.meterReadings),
    bess: batch.bessReadings.map((b: BessReading) => ({
      deviceId: b.deviceId,
      time: b.time && { seconds: b.time.seconds, nanos: b.time.nanos },
      values: {
        soe: b.soePercent,
        targetPower: b.targetPowerKw,
        availableInverterBlocks: b.availableInverterBlocks,
        commandSource: b.commandSource,
      },
    })),
    datum: batch.datumReadings.map((d) => ({
      deviceId: d.deviceId,
      sourceId: d.sourceId,
      time: d.time && { seconds: d.time.seconds, nanos: d.time.nanos },
      values: undefined,
      instantaneous: d.instantaneous,
      accumulating: d.accumulating,
      status: d.status,
    })),
  };
}

/** Decoded meter readings (JSON requests) as columns; binary ones never become messages. */
function meterReadings(readings: readonly MeterReading[]): MeterColumns {
  return toMeterColumns(
    readings.map((m) => ({
      deviceId: m.deviceId,
      time: m.time && { seconds: m.time.seconds, nanos: m.time.nanos },
      values: meterValues(m),
    })),
  );
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

function toRelaySetpoint(setpoint: RelayedSetpoint): StreamResponseInit {
  const { expireAt, epoch, ...rest } = setpoint;
  return { message: { case: 'relaySetpoint', value: { ...rest, epoch: BigInt(epoch), expireTime: timestampFromDate(expireAt) } } };
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
