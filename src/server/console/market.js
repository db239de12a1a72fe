// The market panel: the latest NIV estimate, imbalance price and wholesale price, each with
// the settlement period it applies to.
import { setAttr, setText } from './dom.js';
import { fullTime, num } from './format.js';
import { settlementPeriod } from './settlement.js';

/** The market data types shown, with their units (as `flux.market_data_types` has them). */
export const MARKET_TYPES = [
  { type: 'niv_estimate', unit: 'MW' },
  { type: 'imbalance_price', unit: '£/MWh' },
  { type: 'wholesale_price', unit: '£/MWh' },
];

/** How far back the panel looks for the latest point, ms. */
export const MARKET_LOOKBACK_MS = 6 * 3_600_000;

/**
 * The latest point of each type at or before `nowMs` among `points` (ListMarketData, in
 * time order); points ahead of `nowMs` are forecasts for later periods and are left out.
 */
export function latestPoints(points, nowMs) {
  const latest = new Map();
  for (const p of points) {
    const t = Date.parse(p.time);
    if (t <= nowMs && (!latest.has(p.type) || latest.get(p.type).t <= t)) latest.set(p.type, { t, value: p.value || 0 });
  }
  return latest;
}

/** Shows the latest `points` at `nowMs`. */
export function renderMarket(points, nowMs) {
  const latest = latestPoints(points, nowMs);
  for (const { type } of MARKET_TYPES) {
    const value = document.querySelector(`[data-market="${type}"]`);
    const period = document.querySelector(`[data-market-period="${type}"]`);
    const point = latest.get(type);
    if (!point) {
      setText(value, '—');
      setText(period, 'none in the last 6 h');
      setAttr(period, 'title', undefined);
      continue;
    }
    const sp = settlementPeriod(point.t);
    setText(value, num(point.value, type === 'niv_estimate' ? 0 : 2));
    setText(period, `SP ${sp.period}, ${sp.date}`);
    setAttr(period, 'title', `published for ${fullTime(point.t)}`);
  }
  document.getElementById('market-note').hidden = true;
}

/** Shows why market data could not be read. */
export function marketFailed(message) {
  const note = document.getElementById('market-note');
  setText(note, `Market data unavailable: ${message}`);
  note.hidden = false;
}
