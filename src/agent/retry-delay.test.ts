import { create, toBinary } from '@bufbuild/protobuf';
import { BinaryWriter } from '@bufbuild/protobuf/wire';
import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { RetryInfoSchema } from '../../gen/google/rpc/error_details_pb.ts';
import { MAX_RETRY_DELAY_MS, retryDelayOf } from './retry-delay.ts';

/** An encoded google.rpc.Status (code 8) whose details are `details` as Any messages. */
function status(details: { typeUrl: string; value: Uint8Array }[]): Buffer {
  const writer = new BinaryWriter().tag(1, 0).int32(8).tag(2, 2).string('rate limit exceeded');
  for (const d of details) writer.tag(3, 2).bytes(new BinaryWriter().tag(1, 2).string(d.typeUrl).tag(2, 2).bytes(d.value).finish());
  return Buffer.from(writer.finish());
}

function retryInfo(seconds: number, nanos: number): { typeUrl: string; value: Uint8Array } {
  return {
    typeUrl: 'type.googleapis.com/google.rpc.RetryInfo',
    value: toBinary(RetryInfoSchema, create(RetryInfoSchema, { retryDelay: { seconds: BigInt(seconds), nanos } })),
  };
}

function metadata(entries: { details?: Buffer; retryAfter?: string }): grpc.Metadata {
  const md = new grpc.Metadata();
  if (entries.details) md.set('grpc-status-details-bin', entries.details);
  if (entries.retryAfter !== undefined) md.set('retry-after', entries.retryAfter);
  return md;
}

describe('the retry delay of a refusal', () => {
  it.each([
    ['RetryInfo, to the millisecond', { details: status([retryInfo(1, 250_000_000)]), retryAfter: '2' }, 1_250],
    [
      'RetryInfo among other details',
      {
        details: status([
          { typeUrl: 'type.googleapis.com/google.rpc.ErrorInfo', value: new Uint8Array([10, 1, 120]) },
          retryInfo(0, 60_000_000),
        ]),
      },
      60,
    ],
    ['retry-after in whole seconds, without RetryInfo', { retryAfter: '3' }, 3_000],
    ['retry-after, when the details cannot be read', { details: Buffer.from([0xff, 0xff, 0xff]), retryAfter: '1' }, 1_000],
    ['a delay beyond the most honoured, cut to it', { details: status([retryInfo(86_400, 0)]) }, MAX_RETRY_DELAY_MS],
    ['nothing, without either', { retryAfter: 'soon' }, undefined],
  ])('is read from %s', (_, entries, expected) => {
    expect(retryDelayOf(metadata(entries))).toBe(expected);
  });
});
