// The geometry of a site's chart: reported power and setpoint (kW, left axis) with state of
// energy (%, right axis) over time. Pure functions, no DOM, so the arithmetic is tested on
// its own; chart.js draws the result as SVG.

/** The chart windows an operator can choose. */
export const WINDOWS = [
  { key: '15m', label: '15 min', ms: 15 * 60_000 },
  { key: '1h', label: '1 h', ms: 3_600_000 },
  { key: '6h', label: '6 h', ms: 6 * 3_600_000 },
  { key: '24h', label: '24 h', ms: 24 * 3_600_000 },
];

/** Buckets per chart asked of ListBatterySeries. */
export const CHART_POINTS = 120;

/**
 * How long a battery's last reading stands for it in a site's sums when a bucket has none
 * of its readings, ms: two buckets, or the telemetry age limit when longer. Buckets can be
 * shorter than the time between readings (a window holding less history is cut into
 * buckets from its first data), and batteries report at their own instants.
 */
export function holdMs(bucketMs, maxTelemetryAgeMs) {
  return Math.max(2 * bucketMs, maxTelemetryAgeMs || 0);
}

/**
 * One series for a site out of a ListBatterySeries answer: per bucket, the batteries'
 * reported power summed and their state of energy averaged, each battery counted with its
 * latest reading up to `holdForMs` old; and their setpoints summed (a setpoint holds until
 * the next one). A bucket where no battery counts has no power or SoE.
 */
export function siteSeries(answer, holdForMs) {
  const bucketMs = Number(answer.bucketSeconds || 0) * 1000;
  const buckets = new Map();
  for (const series of answer.series || []) {
    for (const p of series.points || []) {
      const t = Date.parse(p.time);
      if (Number.isNaN(t)) continue;
      if (!buckets.has(t)) buckets.set(t, []);
      buckets.get(t).push({ device: series.deviceId, ...p });
    }
  }
  const reported = new Map(); // device → { t, kw }
  const soe = new Map(); // device → { t, percent }
  const setpoints = new Map(); // device → kW
  const points = [];
  for (const t of [...buckets.keys()].sort((a, b) => a - b)) {
    for (const p of buckets.get(t)) {
      if (p.reportedPowerKw !== undefined) reported.set(p.device, { t, value: p.reportedPowerKw });
      if (p.soePercent !== undefined) soe.set(p.device, { t, value: p.soePercent });
      if (p.setpointKw !== undefined) setpoints.set(p.device, p.setpointKw);
    }
    const held = (m) => [...m.values()].filter((v) => t - v.t <= holdForMs).map((v) => v.value);
    const power = held(reported);
    const energy = held(soe);
    points.push({
      t,
      reportedKw: power.length ? sum(power) : undefined,
      soePercent: energy.length ? sum(energy) / energy.length : undefined,
      setpointKw: setpoints.size ? sum(setpoints.values()) : undefined,
    });
  }
  return { bucketMs, points };
}

function sum(values) {
  let total = 0;
  for (const v of values) total += v;
  return total;
}

/** About `count` round values spanning [min, max] (0 inside when asked), ascending. */
export function niceTicks(min, max, count = 5) {
  const flat = !(max > min);
  const lo = flat ? min - 1 : min;
  const hi = flat ? max + 1 : max;
  const raw = (hi - lo) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((candidate) => candidate >= raw * 0.999);
  const first = Math.floor(lo / step + 1e-9) * step;
  const last = Math.ceil(hi / step - 1e-9) * step;
  const ticks = [];
  for (let i = 0; first + i * step <= last + step / 2 && i < 50; i++) ticks.push(Number((first + i * step).toFixed(10)));
  return ticks;
}

const SECOND = 1_000;
const MINUTE = 60_000;
const TIME_STEPS = [10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200].map((s) => s * SECOND);

/**
 * Tick instants between `startMs` and `endMs`, at most `maxTicks`, on round local times
 * (`offsetMs(t)` is the local time zone's offset from UTC at `t`).
 */
export function timeTicks(startMs, endMs, maxTicks, offsetMs = (t) => -new Date(t).getTimezoneOffset() * MINUTE) {
  const span = endMs - startMs;
  const step = TIME_STEPS.find((candidate) => span / candidate <= maxTicks) || TIME_STEPS[TIME_STEPS.length - 1];
  const offset = offsetMs(startMs);
  const ticks = [];
  for (let t = Math.ceil((startMs + offset) / step) * step - offset; t <= endMs && ticks.length < 100; t += step) ticks.push(t);
  return { step, ticks };
}

/** Space around the plot for the axes' labels and titles, in px. */
const MARGIN = { left: 60, right: 56, top: 12, bottom: 38 };

/**
 * Everything the chart draws, in px: the plot area, ticks of the three axes, and the lines
 * (lists of segments, each a list of [x, y]; reported power and SoE break where the site
 * has no reading for longer than `holdForMs`, the setpoint is a step line). The x axis runs
 * from the first bucket (or the window's start, if later) to `nowMs`, so a short history
 * fills the width; `formatTime(t, stepMs)` labels its ticks.
 */
export function chartModel({ series, windowStartMs, nowMs, width, height, holdForMs, formatTime }) {
  const plot = {
    x: MARGIN.left,
    y: MARGIN.top,
    w: Math.max(10, width - MARGIN.left - MARGIN.right),
    h: Math.max(10, height - MARGIN.top - MARGIN.bottom),
  };
  const { points, bucketMs } = series;
  const first = points.length ? points[0].t : nowMs - bucketMs;
  const startMs = Math.max(windowStartMs, Math.min(first, nowMs - Math.max(bucketMs, MINUTE)));
  const endMs = nowMs;
  const kwValues = points.flatMap((p) => [p.reportedKw, p.setpointKw]).filter((v) => v !== undefined);
  const kwTicks = niceTicks(Math.min(0, ...kwValues), Math.max(0, ...kwValues), Math.max(2, Math.round(plot.h / 45)));
  const kwLo = kwTicks[0];
  const kwHi = kwTicks[kwTicks.length - 1];
  const clampX = (t) => Math.min(endMs, Math.max(startMs, t));
  const x = (t) => plot.x + ((clampX(t) - startMs) / (endMs - startMs)) * plot.w;
  const yKw = (v) => plot.y + plot.h - ((v - kwLo) / (kwHi - kwLo)) * plot.h;
  const ySoe = (v) => plot.y + plot.h - (Math.min(100, Math.max(0, v)) / 100) * plot.h;
  const mid = (p) => p.t + bucketMs / 2;

  const broken = (value, y) => {
    const segments = [];
    let segment = [];
    let previous;
    for (const p of points) {
      const v = value(p);
      if (v === undefined || (previous !== undefined && p.t - previous > holdForMs)) {
        if (segment.length) segments.push(segment);
        segment = [];
      }
      if (v === undefined) continue;
      segment.push([x(mid(p)), y(v)]);
      previous = p.t;
    }
    if (segment.length) segments.push(segment);
    return segments;
  };
  const step = [];
  for (const [i, p] of points.entries()) {
    if (p.setpointKw === undefined) continue;
    const next = points[i + 1];
    const y = yKw(p.setpointKw);
    step.push([x(p.t), y], [x(next ? next.t : p.t + bucketMs), y]);
  }

  const time = timeTicks(startMs, endMs, Math.max(2, Math.floor(plot.w / 90)));
  return {
    width,
    height,
    plot,
    startMs,
    endMs,
    xTicks: time.ticks.map((t) => ({ x: x(t), label: formatTime(t, time.step) })),
    kwTicks: kwTicks.map((v) => ({ y: yKw(v), value: v })),
    soeTicks: [0, 25, 50, 75, 100].map((v) => ({ y: ySoe(v), value: v })),
    zeroY: yKw(0),
    lines: {
      reported: broken((p) => p.reportedKw, yKw),
      setpoint: step.length ? [step] : [],
      soe: broken((p) => p.soePercent, ySoe),
    },
  };
}
