/**
 * The requests the agent writes on `TelemetryService.StreamReadings`. A spooled batch is
 * already an encoded ReadingBatch, so it is framed as the request's `batch` field without
 * being decoded again; hellos and setpoint outcomes go through protobuf-es.
 */
import { create, toBinary } from '@bufbuild/protobuf';
import { StreamReadingsRequestSchema, type SetpointOutcome } from '../../gen/powerplane/v1/telemetry_pb.ts';

/** The gRPC method path of StreamReadings. */
export const STREAM_READINGS_PATH = '/powerplane.v1.TelemetryService/StreamReadings';

/** One request of the stream: a spooled batch, a relayed setpoint's outcome, or the hello naming the site. */
export type Outgoing = { batch: Uint8Array } | { outcome: SetpointOutcome } | { hello: string };

/**
 * Encodes a request without decoding the spooled batch: field 1 (`batch`), wire type 2,
 * is the tag byte 0x0a, a varint length and the batch's bytes.
 */
export function encodeRequest(message: Outgoing): Buffer {
  if ('hello' in message) {
    return Buffer.from(
      toBinary(
        StreamReadingsRequestSchema,
        create(StreamReadingsRequestSchema, { message: { case: 'hello', value: { site: message.hello } } }),
      ),
    );
  }
  if ('outcome' in message) {
    return Buffer.from(
      toBinary(
        StreamReadingsRequestSchema,
        create(StreamReadingsRequestSchema, { message: { case: 'setpointOutcome', value: message.outcome } }),
      ),
    );
  }
  const len = message.batch.length;
  const header: number[] = [0x0a];
  let n = len;
  while (n > 0x7f) {
    header.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  header.push(n);
  const out = Buffer.allocUnsafe(header.length + len);
  out.set(header, 0);
  out.set(message.batch, header.length);
  return out;
}
