// One row per battery of a site: state, SoE, setpoint, reported power, command source
// (intended against reported), the last setpoint and why the battery is where it is.
import { h, setAttr, setText } from './dom.js';
import { age, fullTime, ms, num, phaseName, sourceName } from './format.js';

/** The columns, with their units. */
export const BATTERY_COLUMNS = ['Battery', 'State', 'SoE (%)', 'Setpoint (kW)', 'Reported (kW)', 'Source', 'Last setpoint', 'Why'];

/**
 * A battery's state as the header counts it: `failed` when its last setpoint failed,
 * `stale` when its latest reading is older than `maxAgeMs` at `nowMs` (or it never
 * reported), `online` otherwise.
 */
export function batteryState(control, nowMs, maxAgeMs) {
  if (control && control.lastEvent && control.lastEvent.phase === 'SETPOINT_PHASE_FAILED') return 'failed';
  const last = ms(control && control.lastTelemetryTime);
  if (last === undefined || nowMs - last > maxAgeMs) return 'stale';
  return 'online';
}

/** A new, empty row; {@link fillBatteryRow} fills it. */
export function batteryRow() {
  const cell = (cls) => h('td', { class: cls });
  const name = h('th', { scope: 'row', class: 'name' });
  const state = cell('state');
  const meter = h('meter', { min: '0', max: '100', 'aria-hidden': 'true' });
  const soeValue = h('span', { class: 'soe-value' });
  const soe = h('td', { class: 'num soe' }, meter, soeValue);
  const target = cell('num target');
  const reported = cell('num reported');
  const source = cell('source');
  const last = cell('last');
  const why = h('span', { class: 'why-text' });
  const reason = h('td', { class: 'why' }, why);
  const tr = h('tr', {}, name, state, soe, target, reported, source, last, reason);
  tr.parts = { name, state, meter, soeValue, target, reported, source, last, why };
  return tr;
}

/** Brings `tr` up to date for `device` (registry), `control` (GetControlState) and `reading` (latest). */
export function fillBatteryRow(tr, { device, control, reading, nowMs, maxAgeMs }) {
  const p = tr.parts;
  const c = control || {};
  const spec = device.bess || {};
  setAttr(tr, 'data-device', device.id);
  setText(p.name, device.name);
  setAttr(p.name, 'title', device.id);

  const state = batteryState(control, nowMs, maxAgeMs);
  setText(p.state, state);
  setAttr(p.state, 'class', `state ${state}`);
  const lastReading = ms(c.lastTelemetryTime);
  setAttr(p.state, 'title', lastReading ? `last reading ${fullTime(lastReading)} (${age(lastReading, nowMs)} ago)` : 'no reading yet');

  const soe = reading && reading.soePercent;
  setText(p.soeValue, num(soe));
  if (soe === undefined) p.meter.removeAttribute('value');
  else p.meter.value = soe;
  // The meter's colours mark the battery's own SoE limits.
  const max = spec.maxSoePercent || 100;
  setAttr(p.meter, 'low', String(spec.minSoePercent || 0));
  setAttr(p.meter, 'high', String(max));
  setAttr(p.meter, 'optimum', String(((spec.minSoePercent || 0) + max) / 2));

  setText(p.target, num(c.targetPowerKw || 0));
  setText(p.reported, num(reading && reading.targetPowerKw));

  const intended = sourceName(c.intendedSource);
  const reported = sourceName(c.reportedSource);
  setText(p.source, c.sourceMismatch ? `${intended} ≠ ${reported}` : intended);
  setAttr(p.source, 'class', `source ${intended}${c.sourceMismatch ? ' mismatch' : ''}`);
  setAttr(p.source, 'title', `intended ${intended}, reported ${reported}`);

  const e = c.lastEvent;
  const when = e && ms(e.time);
  setText(p.last, e ? `${phaseName(e.phase)} ${num(e.targetPowerKw || 0)} kW${when ? ` · ${age(when, nowMs)} ago` : ''}` : '—');
  setAttr(p.last, 'class', `last ${e ? phaseName(e.phase) : ''}`);
  setAttr(p.last, 'title', e && e.reason ? e.reason : undefined);

  const reason = c.reason || '';
  setText(p.why, reason);
  // The cell shows one line; the whole reason is its title (hover) and shows in full on focus.
  setAttr(p.why, 'title', reason || undefined);
  setAttr(p.why, 'tabindex', reason ? '0' : undefined);
}
