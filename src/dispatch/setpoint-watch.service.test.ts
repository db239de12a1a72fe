import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { DurationSchema, TimestampSchema } from '@bufbuild/protobuf/wkt';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  SetpointEventSchema,
  SetpointPhase,
  WatchSetpointsResponseSchema,
  type SetpointEvent,
} from '../../gen/powerplane/v1/dispatch_pb.ts';
import { CommandSource } from '../../gen/powerplane/v1/telemetry_pb.ts';
import { DispatchWireService, encodeSetpointEvent } from './setpoint-watch.service.ts';

/** Seconds and nanos as both messages take them: sign-matched, the nanos within a second. */
const secondsNanos = fc.oneof(
  fc.record({ seconds: fc.bigInt({ min: 0n, max: 253_402_300_799n }), nanos: fc.integer({ min: 0, max: 999_999_999 }) }),
  fc.record({ seconds: fc.bigInt({ min: -315_576_000_000n, max: 0n }), nanos: fc.integer({ min: -999_999_999, max: 0 }) }),
  fc.constant({ seconds: 0n, nanos: 0 }),
);
const text = fc.oneof(fc.constant(''), fc.uuid(), fc.string({ maxLength: 300, unit: 'grapheme' }));
const events: fc.Arbitrary<SetpointEvent> = fc
  .record({
    setpointId: text,
    deviceId: text,
    site: text,
    phase: fc.constantFrom(...Object.values(SetpointPhase).filter((v): v is number => typeof v === 'number')),
    targetPowerKw: fc.oneof(fc.double(), fc.constant(0), fc.constant(-0), fc.integer({ min: -5000, max: 5000 })),
    commandSource: fc.constantFrom(...Object.values(CommandSource).filter((v): v is number => typeof v === 'number')),
    instructionId: text,
    time: fc.option(secondsNanos, { nil: undefined }),
    elapsed: fc.option(secondsNanos, { nil: undefined }),
    reason: text,
  })
  .map(({ time, elapsed, ...fields }) =>
    create(SetpointEventSchema, {
      ...fields,
      ...(time ? { time: create(TimestampSchema, time) } : {}),
      ...(elapsed ? { elapsed: create(DurationSchema, elapsed) } : {}),
    }),
  );

describe('WatchSetpoints events encoded by hand', () => {
  it('are byte for byte what protobuf-es writes, on random events', () => {
    fc.assert(
      fc.property(events, (event) => {
        expect(Buffer.from(encodeSetpointEvent(event)).toString('hex')).toBe(
          Buffer.from(toBinary(SetpointEventSchema, event)).toString('hex'),
        );
      }),
      { numRuns: 2_000 },
    );
  });

  it('make a response the generated schema reads back event for event', () => {
    const sample = fc.sample(events, 50);
    const wire = create(DispatchWireService.method.watchSetpoints.output, { events: sample.map(encodeSetpointEvent) });
    const bytes = toBinary(DispatchWireService.method.watchSetpoints.output, wire);
    expect(fromBinary(WatchSetpointsResponseSchema, bytes).events).toEqual(sample);
  });
});
