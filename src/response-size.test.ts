import { create, toBinary, toJsonString } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { DeviceSchema } from '../gen/powerplane/v1/devices_pb.ts';
import { MeterAggregateSchema } from '../gen/powerplane/v1/readings_pb.ts';
import { BessReadingSchema, CommandSource, MeterReadingSchema } from '../gen/powerplane/v1/telemetry_pb.ts';
import { largestSize, responseSizer } from './response-size.ts';

const call = (contentType?: string) => ({ requestHeader: new Headers(contentType ? { 'content-type': contentType } : {}) });
const UUID = '0b5e4a9c-1f7e-4c5a-9a7e-3d1c2b4a5f60';

describe('responseSizer', () => {
  const device = create(DeviceSchema, {
    id: UUID,
    name: 'bess-1',
    site: 'alpha',
    metadata: { numbers: [1, 2, 3, 4, 5, 6, 7, 8], location: 'WLCE' },
  });

  it.each([
    ['application/grpc', 'protobuf'],
    ['application/grpc+proto', 'protobuf'],
    ['application/proto', 'protobuf'],
    ['application/json', 'json'],
    ['application/connect+json', 'json'],
    ['application/grpc-web+json', 'json'],
  ])('measures a call of %s in %s', (contentType, encoding) => {
    const expected = encoding === 'json' ? Buffer.byteLength(toJsonString(DeviceSchema, device)) : toBinary(DeviceSchema, device).length;
    expect(responseSizer(call(contentType), DeviceSchema)(device)).toBe(expected);
  });

  it('measures the larger encoding when the request names none', () => {
    expect(responseSizer(call(), DeviceSchema)(device)).toBe(
      Math.max(Buffer.byteLength(toJsonString(DeviceSchema, device)), toBinary(DeviceSchema, device).length),
    );
  });
});

describe('largestSize', () => {
  const every = (schema: typeof MeterReadingSchema | typeof MeterAggregateSchema, value: number) =>
    Object.fromEntries(
      schema.fields
        .filter((f) => f.fieldKind === 'scalar' && f.localName !== 'deviceId')
        .map((f) => [f.localName, f.scalar === 13 ? 4_000_000_000 : value]),
    );
  const rows = [
    [
      'a meter reading',
      MeterReadingSchema,
      create(MeterReadingSchema, {
        deviceId: UUID,
        time: { seconds: 1_765_000_000n, nanos: 123_456_789 },
        ...every(MeterReadingSchema, -0.12345679104328156),
      }),
    ],
    [
      'a battery reading',
      BessReadingSchema,
      create(BessReadingSchema, {
        deviceId: UUID,
        time: { seconds: 1_765_000_000n, nanos: 1 },
        soePercent: 55.12345,
        targetPowerKw: -123.456789,
        availableInverterBlocks: 32_767,
        commandSource: CommandSource.DISPATCH,
      }),
    ],
    [
      'an aggregate',
      MeterAggregateSchema,
      create(MeterAggregateSchema, {
        deviceId: UUID,
        bucketStartTime: { seconds: 1_765_000_000n },
        readingCount: 4_000_000,
        ...every(MeterAggregateSchema, 1.7976931348623157e308),
      }),
    ],
  ] as const;

  it.each(rows)('bounds %s with every field at a long value, in both encodings', (_, schema, row) => {
    const strings = { deviceId: UUID };
    expect(largestSize(call('application/grpc'), schema, strings)).toBeGreaterThanOrEqual(toBinary(schema as never, row as never).length);
    expect(largestSize(call('application/json'), schema, strings)).toBeGreaterThanOrEqual(
      Buffer.byteLength(toJsonString(schema as never, row as never)),
    );
  });

  it('refuses a schema with fields that have no largest value', () => {
    expect(() => largestSize(call('application/grpc'), DeviceSchema, {})).toThrow('has no largest value');
  });
});
