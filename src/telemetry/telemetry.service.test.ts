import { create } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { MeterReadingSchema } from '../../gen/powerplane/v1/telemetry_pb.ts';
import { METER_QUANTITIES } from '../storage/reading-columns.ts';
import { METER_FIELDS, meterValues } from './telemetry.service.ts';

describe('meterValues', () => {
  it('reads every quantity in METER_FIELDS order, undefined when absent', () => {
    expect(METER_FIELDS.length).toBe(METER_QUANTITIES.length);
    const init: Record<string, number> = {};
    METER_FIELDS.forEach((f, i) => (init[f] = i + 0.5));
    expect(meterValues(create(MeterReadingSchema, init))).toEqual(METER_FIELDS.map((_, i) => i + 0.5));
    expect(meterValues(create(MeterReadingSchema, {}))).toEqual(METER_FIELDS.map(() => undefined));
  });
});
