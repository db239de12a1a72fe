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
 * One series for a site out of a ListBatterySeries answer: per bucket, the batteries'
 * reported power summed, their setpoints summed (a battery's setpoint holds until its next
 * one) and their state of energy averaged. Buckets without readings have no power or SoE.
 */
export function siteSeries(answer) {
  const bucketMs = Number(answer.bucketSeconds || 0) * 1000;
  const buckets = new Map();
  for (const series of answer.series || []) {
    for (const p of series.points || []) {
      const t = Date.parse(p.time);
      if (Number.isNaN(t)) continue;
      let b = buckets.get(t);
      if (!b) buckets.set(t, (b = { reported: 0, reportedN: 0, soe: 0, soeN: 0, setpoints: new Map() }));
      if (p.reportedPowerKw !== undefined) {
        b.reported += p.reportedPowerKw;
        b.reportedN++;
      }
      if (p.soePercent !== undefined) {
        b.soe += p.soePercent;
        b.soeN++;
      }
      if (p.setpointKw !== undefined) b.setpoints.set(series.deviceId, p.setpointKw);
    }
  }
  const held = new Map();
  const points = [...buckets.keys()]
    .sort((a, b) => a - b)
    .map((t) => {
      const b = buckets.get(t);
      for (const [device, kw] of b.setpoints) held.set(device, kw);
      let setpoint = 0;
      for (const kw of held.values()) setpoint += kw;
      return {
        t,
        reportedKw: b.reportedN ? b.reported : undefined,
        soePercent: b.soeN ? b.soe / b.soeN : undefined,
        setpointKw: held.size ? setpoint : undefined,
      };
    });
  return { bucketMs, points };
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

const MINUTE = 60_000;
const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720].map((m) => m * MINUTE);

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
  return ticks;
}

/** Space around the plot for the axes' labels and titles, in px. */
const MARGIN = { left: 60, right: 56, top: 12, bottom: 38 };

/**
 * Everything the chart draws, in px: the plot area, ticks of the three axes, and the lines
 * (lists of segments, each a list of [x, y]; reported power and SoE break where buckets
 * are missing, the setpoint is a step line). The x axis runs from the first bucket (or the
 * window's start, if later) to `nowMs`, so a short history fills the width.
 */
export function chartModel({ series, windowStartMs, nowMs, width, height, formatTime }) {
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
      if (v === undefined || (previous !== undefined && p.t - previous > 2 * bucketMs)) {
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

  return {
    width,
    height,
    plot,
    startMs,
    endMs,
    xTicks: timeTicks(startMs, endMs, Math.max(2, Math.floor(plot.w / 90))).map((t) => ({ x: x(t), label: formatTime(t) })),
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
