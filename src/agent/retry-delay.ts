/**
 * The wait a refusal asks for. The control plane's ingest rate limit ends a stream with
 * RESOURCE_EXHAUSTED and says when to come back, as a `google.rpc.RetryInfo` detail and a
 * `retry-after` trailer; the stream client waits that long instead of its own backoff.
 */
import { fromBinary } from '@bufbuild/protobuf';
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';
import type * as grpc from '@grpc/grpc-js';
import { RetryInfoSchema } from '../../gen/google/rpc/error_details_pb.ts';

/** The longest retry delay the client honours, ms: a larger one (a bad server clock, a bug) is cut to this. */
export const MAX_RETRY_DELAY_MS = 5 * 60_000;

/**
 * The wait a gRPC status asks for, in ms: the `google.rpc.RetryInfo` in its
 * `grpc-status-details-bin` (a `google.rpc.Status`), else its `retry-after` in whole
 * seconds, at most {@link MAX_RETRY_DELAY_MS}; undefined when it says neither.
 */
export function retryDelayOf(metadata: grpc.Metadata): number | undefined {
  for (const value of metadata.get('grpc-status-details-bin')) {
    if (typeof value === 'string') continue;
    try {
      const info = retryInfoIn(value);
      if (info !== undefined) return Math.min(MAX_RETRY_DELAY_MS, info);
    } catch {
      // Malformed details: fall back to retry-after.
    }
  }
  const [header] = metadata.get('retry-after');
  const seconds = typeof header === 'string' && /^\d+$/.test(header.trim()) ? Number(header.trim()) : NaN;
  return Number.isFinite(seconds) ? Math.min(MAX_RETRY_DELAY_MS, seconds * 1000) : undefined;
}

/** The RetryInfo delay among the details of an encoded google.rpc.Status, ms. */
function retryInfoIn(status: Uint8Array): number | undefined {
  const reader = new BinaryReader(status);
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    // Status.details (3) holds google.protobuf.Any messages: type_url (1), value (2).
    if (field !== 3 || wireType !== WireType.LengthDelimited) {
      reader.skip(wireType, field);
      continue;
    }
    const any = new BinaryReader(reader.bytes());
    let typeUrl = '';
    let value: Uint8Array | undefined;
    while (any.pos < any.len) {
      const [f, w] = any.tag();
      if (f === 1 && w === WireType.LengthDelimited) typeUrl = any.string();
      else if (f === 2 && w === WireType.LengthDelimited) value = any.bytes();
      else any.skip(w, f);
    }
    if (value && typeUrl.endsWith('/google.rpc.RetryInfo')) {
      const delay = fromBinary(RetryInfoSchema, value).retryDelay;
      return Math.max(0, Number(delay?.seconds ?? 0n) * 1000 + Math.ceil((delay?.nanos ?? 0) / 1e6));
    }
  }
  return undefined;
}
