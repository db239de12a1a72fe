import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { ReadingBatchSchema, StreamReadingsRequestSchema } from '../../gen/powerplane/v1/telemetry_pb.ts';
import { encodeRequest } from './stream-request.ts';

describe('stream request encoding', () => {
  it.each([0, 1, 120, 5_000, 300_000])('wraps a spooled batch of %i readings as a StreamReadingsRequest without decoding it', (n) => {
    const batch = create(ReadingBatchSchema, {
      sequence: 42n,
      meterReadings: Array.from({ length: Math.min(n, 2000) }, (_, i) => ({ deviceId: `d${i}`, powerTotalActiveKw: i })),
      datumReadings: n > 2000 ? [{ deviceId: 'x', sourceId: 'y'.repeat(n) }] : [],
    });
    const decoded = fromBinary(StreamReadingsRequestSchema, encodeRequest({ batch: toBinary(ReadingBatchSchema, batch) }));
    expect(decoded.message.case).toBe('batch');
    expect(decoded.message.value).toEqual(batch);
  });

  it('encodes a setpoint outcome as the other case of the oneof', () => {
    const decoded = fromBinary(
      StreamReadingsRequestSchema,
      encodeRequest({ outcome: { $typeName: 'powerplane.v1.SetpointOutcome', setpointId: 'sp', verified: true, reason: '' } }),
    );
    expect(decoded.message).toMatchObject({ case: 'setpointOutcome', value: { setpointId: 'sp', verified: true } });
  });
});
