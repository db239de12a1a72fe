import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../errors.ts';
import { planSite } from './planner.ts';
import { battery, kwById, site, sitePower } from './planner.fixtures.ts';

describe('planSite input checks', () => {
  it.each([
    ['a NaN instruction power', site({ instruction: sitePower(Number.NaN) }), 'instruction.command.powerKw'],
    [
      'an instruction for another site',
      site({ instruction: { id: 'i1', target: { site: 's9' }, command: { powerKw: 1 } } }),
      'instruction.target.site',
    ],
    [
      'an instruction for an unknown battery',
      site({ instruction: { id: 'i1', target: { deviceId: 'b9' }, command: { powerKw: 1 } } }),
      'instruction.target.deviceId',
    ],
    ['a duplicate battery', site({ batteries: [battery('b1'), battery('b1')] }), 'batteries[1].deviceId'],
    ['reversed SoE limits', site({ batteries: [battery('b1', { minSoePercent: 60, maxSoePercent: 40 })] }), 'batteries[0].maxSoePercent'],
    ['a zero control period', site({ controlPeriodMs: 0 }), 'controlPeriodMs'],
  ])('rejects %s naming the field', (_what, input, field) => {
    expect(() => planSite(input)).toThrow(InvalidArgumentError);
    expect(() => planSite(input)).toThrow(field);
  });

  it('lets a battery-level instruction govern its battery while the site instruction governs the rest', () => {
    const plan = planSite(
      site({
        instruction: sitePower(60),
        batteryInstructions: [{ id: 'd1', target: { deviceId: 'b1' }, command: { powerKw: -20 } }],
      }),
    );
    expect(kwById(plan)).toEqual({ b1: -20, b2: 60 });
    expect(plan.setpoints.map((s) => s.instructionId)).toEqual(['d1', 'i1']);
  });

  it('refuses two instructions for one battery and a site instruction among battery ones', () => {
    const one = { id: 'd1', target: { deviceId: 'b1' }, command: { powerKw: 5 } };
    expect(() => planSite(site({ batteryInstructions: [one, { ...one, id: 'd2' }] }))).toThrow(/batteryInstructions\[1\].target.deviceId/);
    expect(() => planSite(site({ batteryInstructions: [sitePower(5)!] }))).toThrow(/batteryInstructions\[0\].target/);
  });
});
