// Draws a chart model (chart-model.js) as plain SVG: no library, no build step. Colours and
// dashes come from console.css through classes.
import { h, s } from './dom.js';
import { num } from './format.js';

/** The series drawn, in legend order: its class, its name and its axis. */
export const SERIES = [
  { key: 'reported', label: 'Reported power', unit: 'kW, left axis' },
  { key: 'setpoint', label: 'Setpoint', unit: 'kW, left axis' },
  { key: 'soe', label: 'Mean state of energy', unit: '%, right axis' },
];

const points = (segment) => segment.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(' ');

/** An SVG element for `model`, described by `title` for assistive technology. */
export function drawChart(model, title) {
  const { plot, width, height } = model;
  const right = plot.x + plot.w;
  const bottom = plot.y + plot.h;
  const kwDigits = model.kwTicks.some((t) => !Number.isInteger(t.value)) ? 1 : 0;
  return s(
    'svg',
    { class: 'chart-svg', width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': title },
    s('title', {}, title),
    s('rect', { class: 'plot-area', x: plot.x, y: plot.y, width: plot.w, height: plot.h }),
    model.kwTicks.map((t) => s('line', { class: 'grid', x1: plot.x, x2: right, y1: t.y, y2: t.y })),
    s('line', { class: 'zero', x1: plot.x, x2: right, y1: model.zeroY, y2: model.zeroY }),
    model.xTicks.map((t) => s('line', { class: 'grid', x1: t.x, x2: t.x, y1: plot.y, y2: bottom })),
    s('line', { class: 'axis', x1: plot.x, x2: plot.x, y1: plot.y, y2: bottom }),
    s('line', { class: 'axis', x1: right, x2: right, y1: plot.y, y2: bottom }),
    s('line', { class: 'axis', x1: plot.x, x2: right, y1: bottom, y2: bottom }),
    model.kwTicks.map((t) =>
      s('text', { class: 'tick', x: plot.x - 6, y: t.y, 'text-anchor': 'end', 'dominant-baseline': 'middle' }, num(t.value, kwDigits)),
    ),
    model.soeTicks.map((t) => s('text', { class: 'tick', x: right + 6, y: t.y, 'dominant-baseline': 'middle' }, String(t.value))),
    model.xTicks.map((t) => s('text', { class: 'tick', x: t.x, y: bottom + 14, 'text-anchor': 'middle' }, t.label)),
    s(
      'text',
      { class: 'axis-title', transform: `translate(14 ${plot.y + plot.h / 2}) rotate(-90)`, 'text-anchor': 'middle' },
      'Power (kW)',
    ),
    s(
      'text',
      { class: 'axis-title', transform: `translate(${width - 8} ${plot.y + plot.h / 2}) rotate(90)`, 'text-anchor': 'middle' },
      'SoE (%)',
    ),
    s('text', { class: 'axis-title', x: plot.x + plot.w / 2, y: height - 4, 'text-anchor': 'middle' }, 'Time'),
    SERIES.flatMap(({ key }) =>
      model.lines[key].map((segment) =>
        segment.length === 1
          ? s('circle', { class: `dot ${key}`, 'data-series': key, cx: segment[0][0], cy: segment[0][1], r: 2.5 })
          : s('polyline', { class: `line ${key}`, 'data-series': key, points: points(segment) }),
      ),
    ),
  );
}

/** The legend of a chart: one entry per series with its unit and axis. */
export function legend() {
  return h(
    'ul',
    { class: 'legend' },
    SERIES.map(({ key, label, unit }) => h('li', {}, h('span', { class: `swatch ${key}`, 'aria-hidden': 'true' }), `${label} (${unit})`)),
  );
}
