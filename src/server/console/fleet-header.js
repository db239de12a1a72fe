// The header: the fleet's totals from GetFleetSummary and the current GB settlement period.
import { setAttr, setText } from './dom.js';
import { clock, fullTime, ms, num } from './format.js';
import { settlementPeriod } from './settlement.js';

const total = (name) => document.querySelector(`[data-total="${name}"]`);

/** Shows the totals of `summary` (a GetFleetSummary answer) in the header. */
export function renderFleet(summary) {
  const t = summary.totals || {};
  const header = document.getElementById('fleet');
  setAttr(header, 'data-as-of', summary.asOf || '');
  setText(total('sites'), String((summary.sites || []).length));
  setText(total('batteries'), String(t.batteryCount || 0));
  setText(total('online'), String(t.onlineCount || 0));
  setText(total('stale'), String(t.staleCount || 0));
  setText(total('failed'), String(t.failedCount || 0));
  setAttr(total('stale').parentElement, 'class', t.staleCount ? 'warning' : undefined);
  setAttr(total('failed').parentElement, 'class', t.failedCount ? 'severe' : undefined);
  setText(total('discharge'), num(t.availableDischargeKw || 0));
  setText(total('charge'), num(t.availableChargeKw || 0));
  setText(total('energy'), num(t.energyStoredKwh || 0));
  setText(total('energy-min'), num(t.energyMinKwh || 0));
  setText(total('energy-max'), num(t.energyMaxKwh || 0));
  const meter = document.getElementById('energy-meter');
  setAttr(meter, 'min', String(t.energyMinKwh || 0));
  setAttr(meter, 'max', String(Math.max(t.energyMaxKwh || 0, (t.energyMinKwh || 0) + 1e-9)));
  meter.value = t.energyStoredKwh || 0;
  setText(total('reported'), num(t.reportedPowerKw || 0));
  setText(total('setpoint'), num(t.setpointPowerKw || 0));
  const asOf = ms(summary.asOf);
  setAttr(header, 'title', asOf ? `as of ${fullTime(asOf)}` : undefined);
}

/** Shows the GB settlement period at `nowMs` and the time left in it. */
export function renderPeriod(nowMs) {
  const p = settlementPeriod(nowMs);
  setText(total('period'), `SP ${p.period}`);
  setText(total('period-day'), `of ${p.periods}, ${p.date}`);
  setText(total('period-left'), `${clock(p.endMs - nowMs)} left`);
}
