import { describe, expect, it } from 'vitest';
import { msLeftInSettlementPeriod, proposeNivChase } from './niv-chase.ts';
import type { ReadyBattery } from './planner-envelope.ts';
import { battery, NOW } from './planner.fixtures.ts';
import type { NivChaseInput } from './planner.types.ts';

const ready = [battery('b1'), battery('b2', { soePercent: 30 })] as ReadyBattery[];
const niv = (over: Partial<NivChaseInput>): NivChaseInput => ({
  enabled: true,
  nivThresholdMw: 100,
  shortPriceThreshold: 150,
  longPriceThreshold: 20,
  imbalancePrice: 200,
  nivEstimateMw: 500,
  ...over,
});

describe('msLeftInSettlementPeriod', () => {
  it.each([
    ['2025-03-01T12:00:00Z', 1_800_000],
    ['2025-03-01T12:10:00Z', 1_200_000],
    ['2025-03-01T12:29:59.500Z', 500],
    ['2025-03-01T12:30:00Z', 1_800_000],
    ['2025-03-01T12:59:00Z', 60_000],
  ])('counts the time from %s to the end of its half hour', (iso, ms) => {
    expect(msLeftInSettlementPeriod(new Date(iso))).toBe(ms);
  });
});

describe('proposeNivChase', () => {
  // b1 holds 200 kWh × 40 % above min and b2 200 kWh × 20 %: 120 kWh over 1/3 h = 360 kW.
  it('sizes a short-system discharge to empty the batteries to min SoE by the period end', () => {
    expect(proposeNivChase(niv({}), ready, NOW, 4000)).toEqual({ active: true, side: 'short', requestKw: 360, energyKwh: 120 });
  });

  // b1 has 200 kWh × 40 % of room below max and b2 200 kWh × 60 %: 200 kWh over 1/3 h = 600 kW.
  it('sizes a long-system charge to fill the batteries to max SoE by the period end', () => {
    const proposal = proposeNivChase(niv({ nivEstimateMw: -500, imbalancePrice: 20 }), ready, NOW, 4000);
    expect(proposal).toEqual({ active: true, side: 'long', requestKw: -600, energyKwh: 200 });
  });

  // Only b1 is above 40 %: 200 kWh × 10 % = 20 kWh over 1/3 h = 60 kW.
  it('moves only the energy above the short target SoE', () => {
    const proposal = proposeNivChase(niv({ targetSoePercent: { short: 40, long: 60 } }), ready, NOW, 4000);
    expect(proposal).toMatchObject({ requestKw: 60 });
  });

  // 20 kWh within one 4 s control period rather than the 0.5 s left = 18 000 kW.
  it('spreads the energy over at least one control period near the end of the period', () => {
    const proposal = proposeNivChase(niv({ targetSoePercent: { short: 40, long: 60 } }), ready, new Date('2025-03-01T12:29:59.500Z'), 4000);
    expect(proposal).toMatchObject({ requestKw: 18_000 });
  });

  it.each([
    ['the system is short by no more than the threshold', niv({ nivEstimateMw: 100 })],
    ['the system is long but the price is above the long threshold', niv({ nivEstimateMw: -500, imbalancePrice: 21 })],
    ['the imbalance price is unknown', niv({ imbalancePrice: undefined })],
    ['the NIV estimate is unknown', niv({ nivEstimateMw: undefined })],
    ['the site has not opted in', niv({ enabled: false })],
  ])('stays inactive when %s', (_when, input) => {
    expect(proposeNivChase(input, ready, NOW, 4000).active).toBe(false);
  });
});
