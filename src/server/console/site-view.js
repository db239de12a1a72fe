// One site's section: its totals, a row per battery, a chart with its window selector, and
// its instructions.
import { BATTERY_COLUMNS, batteryRow, fillBatteryRow } from './battery-rows.js';
import { drawChart, legend } from './chart.js';
import { chartModel, holdMs, siteSeries, WINDOWS } from './chart-model.js';
import { h, setAttr, setText, syncKeyed } from './dom.js';
import { age, hhmm, hhmmss, ms, num } from './format.js';
import { createInstructionsView } from './instructions.js';

const CHART_HEIGHT = 240;

/**
 * Creates the section of `site` (the `index`-th made, for element ids). `windowKey` is the
 * chart window shown first; `onWindow(site, key)` is called when the operator picks another.
 */
export function createSiteView(site, index, windowKey, onWindow) {
  const titleId = `site-${index}-title`;
  const stats = h('p', { class: 'site-stats' });
  const tbody = h('tbody');
  const table = h(
    'table',
    { class: 'batteries' },
    h('caption', { class: 'sr-only' }, `Batteries of ${site}`),
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        BATTERY_COLUMNS.map((c) => h('th', { scope: 'col' }, c)),
      ),
    ),
    tbody,
  );
  const radios = WINDOWS.map((w) =>
    h('input', { type: 'radio', name: `window-${index}`, value: w.key, id: `window-${index}-${w.key}`, checked: w.key === windowKey }),
  );
  const windows = h(
    'fieldset',
    { class: 'windows' },
    h('legend', { class: 'sr-only' }, `Chart window for ${site}`),
    WINDOWS.map((w, i) => [radios[i], h('label', { for: radios[i].id }, w.label)]),
  );
  windows.addEventListener('change', (e) => onWindow(site, e.target.value));
  const plot = h('div', { class: 'plot' });
  const chartNote = h('p', { class: 'chart-note' }, 'Loading the chart…');
  const chartTitle = h('span', { class: 'chart-title' }, 'Power and state of energy');
  const figure = h('figure', { class: 'chart' }, h('figcaption', {}, chartTitle, windows), plot, chartNote, legend());
  const instructions = createInstructionsView(site, index);
  const el = h(
    'section',
    { class: 'site', 'data-site': site, 'aria-labelledby': titleId },
    h('header', { class: 'site-head' }, h('h2', { id: titleId }, site), stats),
    h('div', { class: 'site-body' }, h('div', { class: 'table-wrap' }, table), figure),
    instructions.el,
  );

  let drawn; // the series last drawn, to draw again at another width

  function draw() {
    if (!drawn) return;
    const width = Math.floor(plot.clientWidth);
    if (width < 50) return;
    const { answer, windowStartMs, nowMs, label, maxAgeMs } = drawn;
    const holdForMs = holdMs(Number(answer.bucketSeconds || 0) * 1000, maxAgeMs);
    const series = siteSeries(answer, holdForMs);
    const title = `${site}: reported power, setpoint and state of energy over the last ${label}`;
    setText(chartTitle, `Power and state of energy, last ${label}`);
    if (!series.points.length) {
      plot.replaceChildren();
      setText(chartNote, `No readings in the last ${label}.`);
      chartNote.hidden = false;
      return;
    }
    chartNote.hidden = true;
    const formatTime = (t, stepMs) => (stepMs < 60_000 ? hhmmss(t) : hhmm(t));
    const model = chartModel({ series, windowStartMs, nowMs, width, height: CHART_HEIGHT, holdForMs, formatTime });
    plot.replaceChildren(drawChart(model, title));
    drawn.width = width;
  }
  new ResizeObserver(() => {
    if (drawn && Math.floor(plot.clientWidth) !== drawn.width) draw();
  }).observe(plot);

  return {
    el,
    site,
    /** Shows the site's totals (`summary`, a SiteSummary) at `nowMs`. */
    updateTotals(summary, nowMs) {
      const t = (summary && summary.totals) || {};
      const undelivered = (summary && summary.undeliveredPowerKw) || 0;
      const last = ms(summary && summary.lastReadingTime);
      setText(
        stats,
        [
          `${t.batteryCount || 0} ${t.batteryCount === 1 ? 'battery' : 'batteries'}: ` +
            `${t.onlineCount || 0} online, ${t.staleCount || 0} stale, ${t.failedCount || 0} failed`,
          `power ${num(t.reportedPowerKw || 0)} kW of setpoint ${num(t.setpointPowerKw || 0)} kW`,
          `undelivered ${num(undelivered)} kW`,
          last ? `last reading ${age(last, nowMs)} ago` : 'no reading yet',
        ].join(' · '),
      );
      setAttr(stats, 'class', `site-stats${undelivered > 0 ? ' undelivered' : ''}`);
    },
    /** Shows one row per battery in `rows` ({ device, control, reading }) at `nowMs`. */
    updateRows(rows, nowMs, maxAgeMs) {
      syncKeyed(
        tbody,
        rows,
        (r) => r.device.id,
        batteryRow,
        (tr, r) => fillBatteryRow(tr, { ...r, nowMs, maxAgeMs }),
      );
    },
    /**
     * Draws `answer` (ListBatterySeries) for the window `windowKey` ending at `nowMs`; gaps
     * in a site's readings up to `maxAgeMs` (the telemetry age limit) are not breaks.
     */
    chart(answer, windowKey, nowMs, maxAgeMs) {
      const w = WINDOWS.find((x) => x.key === windowKey) || WINDOWS[1];
      drawn = { answer, windowStartMs: nowMs - w.ms, nowMs, label: w.label, maxAgeMs };
      draw();
    },
    /** Shows why the chart could not be read. */
    chartFailed(message) {
      setText(chartNote, `Chart unavailable: ${message}`);
      chartNote.hidden = false;
    },
    instructions,
  };
}
