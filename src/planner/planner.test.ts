import { describe, expect, it } from 'vitest';
import { planSite } from './planner.ts';
import { ago, battery, kwById, NOW, site, sitePower } from './planner.fixtures.ts';
import type { NivChaseInput, PlanComponent, SitePlanInput } from './planner.types.ts';

const niv = (over: Partial<NivChaseInput>): NivChaseInput => ({
  enabled: true,
  nivThresholdMw: 100,
  shortPriceThreshold: 150,
  longPriceThreshold: 20,
  ...over,
});
const later = new Date(NOW.getTime() + 60_000);

interface Case {
  name: string;
  input: SitePlanInput;
  kw: Record<string, number>;
  component: PlanComponent;
  sources: string;
}

// Each battery is 100 kW with two blocks at 50 % of 200 kWh; 20 min are left in the period.
const cases: Case[] = [
  {
    name: 'leaves every battery to local control at 0 kW when no component is active',
    input: site(),
    kw: { b1: 0, b2: 0 },
    component: 'idle',
    sources: 'LOCAL LOCAL',
  },
  {
    name: 'splits a site instruction equally across batteries with equal headroom',
    input: site({ instruction: sitePower(150) }),
    kw: { b1: 75, b2: 75 },
    component: 'dispatch',
    sources: 'DISPATCH DISPATCH',
  },
  {
    name: 'splits a site instruction in proportion to available inverter blocks',
    input: site({ instruction: sitePower(90), batteries: [battery('b1'), battery('b2', { availableInverterBlocks: 1 })] }),
    kw: { b1: 60, b2: 30 },
    component: 'dispatch',
    sources: 'DISPATCH DISPATCH',
  },
  {
    name: 'charges every battery at its rated power on CHARGE_MAX',
    input: site({ instruction: { id: 'i1', target: { site: 's1' }, command: { action: 'CHARGE_MAX' } } }),
    kw: { b1: -100, b2: -100 },
    component: 'dispatch',
    sources: 'DISPATCH DISPATCH',
  },
  {
    name: 'discharges every battery at its available power on DISCHARGE_MAX',
    input: site({
      instruction: { id: 'i1', target: { site: 's1' }, command: { action: 'DISCHARGE_MAX' } },
      batteries: [battery('b1'), battery('b2', { availableInverterBlocks: 1 })],
    }),
    kw: { b1: 100, b2: 50 },
    component: 'dispatch',
    sources: 'DISPATCH DISPATCH',
  },
  {
    name: 'applies a battery-level instruction to that battery only',
    input: site({ instruction: { id: 'i1', target: { deviceId: 'b2' }, command: { powerKw: 40 } } }),
    kw: { b1: 0, b2: 40 },
    component: 'dispatch',
    sources: 'LOCAL DISPATCH',
  },
  {
    name: 'gives a manual override precedence and splits the site instruction over the other batteries',
    input: site({
      instruction: sitePower(150),
      batteries: [battery('b1', { manual: { powerKw: -30, expireTime: later } }), battery('b2')],
    }),
    kw: { b1: -30, b2: 100 },
    component: 'manual',
    sources: 'MANUAL DISPATCH',
  },
  {
    name: 'ignores a manual override that has expired',
    input: site({ instruction: sitePower(150), batteries: [battery('b1', { manual: { powerKw: -30, expireTime: NOW } }), battery('b2')] }),
    kw: { b1: 75, b2: 75 },
    component: 'dispatch',
    sources: 'DISPATCH DISPATCH',
  },
  {
    name: 'discharges just enough to cancel the site import on AVOID_IMPORT',
    input: site({
      sitePowerKw: 60,
      sitePowerTime: ago(2),
      instruction: { id: 'i1', target: { site: 's1' }, command: { action: 'AVOID_IMPORT' } },
    }),
    kw: { b1: 30, b2: 30 },
    component: 'dispatch',
    sources: 'DISPATCH DISPATCH',
  },
  {
    name: 'counts the previous setpoints as part of the site load on AVOID_IMPORT',
    input: site({
      sitePowerKw: 20,
      sitePowerTime: ago(2),
      instruction: { id: 'i1', target: { site: 's1' }, command: { action: 'AVOID_IMPORT' } },
      batteries: [battery('b1', { previousSetpointKw: 40 }), battery('b2')],
    }),
    kw: { b1: 30, b2: 30 },
    component: 'dispatch',
    sources: 'DISPATCH DISPATCH',
  },
  {
    name: 'charges just enough to cancel the site export on AVOID_EXPORT',
    input: site({
      sitePowerKw: -40,
      sitePowerTime: ago(2),
      instruction: { id: 'i1', target: { site: 's1' }, command: { action: 'AVOID_EXPORT' } },
    }),
    kw: { b1: -20, b2: -20 },
    component: 'dispatch',
    sources: 'DISPATCH DISPATCH',
  },
  {
    name: 'does nothing on AVOID_IMPORT when the site meter reading is stale',
    input: site({
      sitePowerKw: 60,
      sitePowerTime: ago(31),
      instruction: { id: 'i1', target: { site: 's1' }, command: { action: 'AVOID_IMPORT' } },
    }),
    kw: { b1: 0, b2: 0 },
    component: 'dispatch',
    sources: 'DISPATCH DISPATCH',
  },
  // 2 × 200 kWh × (50 − 45) % = 20 kWh over the 1/3 h left = 60 kW.
  {
    name: 'discharges toward the short target SoE by the end of the settlement period when the system is short',
    input: site({ nivChase: niv({ nivEstimateMw: 500, imbalancePrice: 200, targetSoePercent: { short: 45, long: 55 } }) }),
    kw: { b1: 30, b2: 30 },
    component: 'niv_chase',
    sources: 'DISPATCH DISPATCH',
  },
  {
    name: 'charges toward the long target SoE by the end of the settlement period when the system is long',
    input: site({ nivChase: niv({ nivEstimateMw: -500, imbalancePrice: 10, targetSoePercent: { short: 45, long: 55 } }) }),
    kw: { b1: -30, b2: -30 },
    component: 'niv_chase',
    sources: 'DISPATCH DISPATCH',
  },
  {
    name: 'does not chase NIV when the imbalance price is below the short threshold',
    input: site({ nivChase: niv({ nivEstimateMw: 500, imbalancePrice: 100 }) }),
    kw: { b1: 0, b2: 0 },
    component: 'idle',
    sources: 'LOCAL LOCAL',
  },
  {
    name: 'does not chase NIV when the site has not opted in',
    input: site({ nivChase: niv({ enabled: false, nivEstimateMw: 500, imbalancePrice: 200 }) }),
    kw: { b1: 0, b2: 0 },
    component: 'idle',
    sources: 'LOCAL LOCAL',
  },
  {
    name: 'follows an instruction rather than NIV chase',
    input: site({ instruction: sitePower(-20), nivChase: niv({ nivEstimateMw: 500, imbalancePrice: 200 }) }),
    kw: { b1: -10, b2: -10 },
    component: 'dispatch',
    sources: 'DISPATCH DISPATCH',
  },
  // 2 × 200 kWh × 0.1 % = 0.4 kWh within 4 s would be 360 kW; the target caps it at 50 kW.
  {
    name: 'moves toward the SoE target at no more than its power cap',
    input: site({ soeTarget: { percent: 49.9, maxPowerKw: 50 } }),
    kw: { b1: 25, b2: 25 },
    component: 'soe_target',
    sources: 'LOCAL LOCAL',
  },
  {
    name: 'stays idle once the SoE target is reached',
    input: site({ soeTarget: { percent: 50, maxPowerKw: 50 } }),
    kw: { b1: 0, b2: 0 },
    component: 'idle',
    sources: 'LOCAL LOCAL',
  },
  {
    name: 'chases NIV rather than the SoE target',
    input: site({
      soeTarget: { percent: 80, maxPowerKw: 50 },
      nivChase: niv({ nivEstimateMw: 500, imbalancePrice: 200, targetSoePercent: { short: 45, long: 55 } }),
    }),
    kw: { b1: 30, b2: 30 },
    component: 'niv_chase',
    sources: 'DISPATCH DISPATCH',
  },
  {
    name: 'discharges to cancel import when the site avoids import',
    input: site({ sitePowerKw: 30, sitePowerTime: ago(2), avoidance: { avoidImport: true, avoidExport: true } }),
    kw: { b1: 15, b2: 15 },
    component: 'avoid_import',
    sources: 'LOCAL LOCAL',
  },
  {
    name: 'charges to cancel export when the site avoids export',
    input: site({ sitePowerKw: -30, sitePowerTime: ago(2), avoidance: { avoidImport: true, avoidExport: true } }),
    kw: { b1: -15, b2: -15 },
    component: 'avoid_export',
    sources: 'LOCAL LOCAL',
  },
  {
    name: 'does not charge to cancel export when only import is avoided',
    input: site({ sitePowerKw: -30, sitePowerTime: ago(2), avoidance: { avoidImport: true, avoidExport: false } }),
    kw: { b1: 0, b2: 0 },
    component: 'idle',
    sources: 'LOCAL LOCAL',
  },
];

describe('planSite components', () => {
  it.each(cases)('$name', ({ input, kw, component, sources }) => {
    const plan = planSite(input);
    expect(kwById(plan)).toEqual(kw);
    expect(plan.component).toBe(component);
    expect(plan.setpoints.map((s) => s.source).join(' ')).toBe(sources);
  });

  it('carries the instruction id into the setpoints it drives and reports the request', () => {
    const plan = planSite(site({ instruction: sitePower(150) }));
    expect(plan.setpoints.map((s) => s.instructionId)).toEqual(['i1', 'i1']);
    expect(plan).toMatchObject({ requestedKw: 150, deliveredKw: 150, undeliveredKw: 0, undeliveredReasons: [] });
  });

  it('reports no request when idle', () => {
    expect(planSite(site()).requestedKw).toBeUndefined();
  });

  it('notes a battery-level instruction that a manual override beats', () => {
    const plan = planSite(
      site({
        instruction: { id: 'i1', target: { deviceId: 'b1' }, command: { powerKw: 40 } },
        batteries: [battery('b1', { manual: { powerKw: 5, expireTime: later } }), battery('b2')],
      }),
    );
    expect(kwById(plan)).toEqual({ b1: 5, b2: 0 });
    expect(plan.notes).toContain('dispatch i1: b1 is under manual override');
  });

  it('notes why a configured NIV chase did not act', () => {
    const plan = planSite(site({ nivChase: niv({ nivEstimateMw: 500 }) }));
    expect(plan.notes).toEqual(['niv chase: no imbalance price']);
  });

  it('reports the manual override and the site target separately', () => {
    const plan = planSite(
      site({ instruction: sitePower(150), batteries: [battery('b1', { manual: { powerKw: -30, expireTime: later } }), battery('b2')] }),
    );
    expect(plan.targets.map((t) => [t.component, t.scope, t.requestedKw, t.deliveredKw])).toEqual([
      ['manual', 'battery', -30, -30],
      ['dispatch', 'site', 150, 100],
    ]);
    expect(plan.undeliveredReasons).toEqual(['dispatch request beyond rated power: 50 kW']);
    expect(plan.setpoints[0]!.reasons).toEqual([`manual override until ${later.toISOString()}`]);
  });
});

// NIV chase (short, target 45 %) wants 60 kW; long (target 55 %) wants −60 kW.
const avoiding = (action: 'AVOID_IMPORT' | 'AVOID_EXPORT', sitePowerKw: number, side: 'short' | 'long', meterAgeS = 2) =>
  site({
    instruction: { id: 'i1', target: { site: 's1' }, command: { action } },
    sitePowerKw,
    sitePowerTime: ago(meterAgeS),
    nivChase: niv({
      nivEstimateMw: side === 'short' ? 500 : -500,
      imbalancePrice: side === 'short' ? 200 : 10,
      targetSoePercent: { short: 45, long: 55 },
    }),
  });

const bounded: Array<Case & { notes: string[] }> = [
  {
    name: 'bounds a NIV chase discharge so the site does not export under AVOID_EXPORT',
    input: avoiding('AVOID_EXPORT', 40, 'short'),
    kw: { b1: 20, b2: 20 },
    component: 'dispatch',
    sources: 'DISPATCH DISPATCH',
    notes: ['niv chase: 60 kW bounded to 40 kW by dispatch i1 (avoid export)'],
  },
  {
    name: 'charges away an export under AVOID_EXPORT although NIV chase wants to discharge',
    input: avoiding('AVOID_EXPORT', -30, 'short'),
    kw: { b1: -15, b2: -15 },
    component: 'dispatch',
    sources: 'DISPATCH DISPATCH',
    notes: ['niv chase: 60 kW bounded to -30 kW by dispatch i1 (avoid export)'],
  },
  {
    name: 'lets NIV chase charge freely under AVOID_EXPORT',
    input: avoiding('AVOID_EXPORT', 40, 'long'),
    kw: { b1: -30, b2: -30 },
    component: 'niv_chase',
    sources: 'DISPATCH DISPATCH',
    notes: [],
  },
  {
    name: 'lets NIV chase discharge past zero import under AVOID_IMPORT',
    input: avoiding('AVOID_IMPORT', 20, 'short'),
    kw: { b1: 30, b2: 30 },
    component: 'niv_chase',
    sources: 'DISPATCH DISPATCH',
    notes: [],
  },
  {
    name: 'discharges away an import under AVOID_IMPORT although NIV chase wants to charge',
    input: avoiding('AVOID_IMPORT', 20, 'long'),
    kw: { b1: 10, b2: 10 },
    component: 'dispatch',
    sources: 'DISPATCH DISPATCH',
    notes: ['niv chase: -60 kW bounded to 20 kW by dispatch i1 (avoid import)'],
  },
  {
    name: 'blocks a NIV chase discharge under AVOID_EXPORT when the meter reading is stale',
    input: avoiding('AVOID_EXPORT', 0, 'short', 60),
    kw: { b1: 0, b2: 0 },
    component: 'dispatch',
    sources: 'DISPATCH DISPATCH',
    notes: ['dispatch i1: cannot avoid export (site meter stale 60 s)', 'niv chase: 60 kW bounded to 0 kW by dispatch i1 (avoid export)'],
  },
  {
    name: 'lets NIV chase charge under AVOID_EXPORT when the meter reading is stale',
    input: avoiding('AVOID_EXPORT', 0, 'long', 60),
    kw: { b1: -30, b2: -30 },
    component: 'niv_chase',
    sources: 'DISPATCH DISPATCH',
    notes: ['dispatch i1: cannot avoid export (site meter stale 60 s)'],
  },
  // 2 × 200 kWh × 0.1 % in 4 s is 360 kW; the target caps it at 50 kW, the bound at 10 kW.
  {
    name: 'bounds the SoE target as well under AVOID_EXPORT',
    input: site({
      instruction: { id: 'i1', target: { site: 's1' }, command: { action: 'AVOID_EXPORT' } },
      sitePowerKw: 10,
      sitePowerTime: ago(2),
      soeTarget: { percent: 49.9, maxPowerKw: 50 },
    }),
    kw: { b1: 5, b2: 5 },
    component: 'dispatch',
    sources: 'DISPATCH DISPATCH',
    notes: ['soe target: 50 kW bounded to 10 kW by dispatch i1 (avoid export)'],
  },
];

describe('planSite bounds: a site instruction that avoids a flow bounds the components below it', () => {
  it.each(bounded)('$name', ({ input, kw, component, sources, notes }) => {
    const plan = planSite(input);
    expect(kwById(plan)).toEqual(kw);
    expect(plan.component).toBe(component);
    expect(plan.setpoints.map((s) => s.source).join(' ')).toBe(sources);
    expect(plan.setpoints.map((s) => s.instructionId)).toEqual(['i1', 'i1']);
    expect(plan.notes).toEqual(notes);
  });

  it('does not bound the components below an instruction with a power: the instruction decides alone', () => {
    const plan = planSite({ ...avoiding('AVOID_EXPORT', 40, 'short'), instruction: sitePower(-20) });
    expect(kwById(plan)).toEqual({ b1: -10, b2: -10 });
    expect(plan.notes).toEqual([]);
  });
});
