import { describe, expect, it } from 'vitest';

// The console's modules are plain browser JavaScript served as they are (no build step), so
// they carry no TypeScript types: each is loaded here by path and described by the part of
// its interface a test uses. The modules below touch no DOM when loaded.
const load = async <T>(name: string): Promise<T> => (await import(`../../src/server/console/${name}`)) as T;

interface Period {
  date: string;
  period: number;
  periods: number;
  startMs: number;
  endMs: number;
}
interface Alert {
  kind: string;
  site: string;
  deviceId?: string;
  reason?: string;
}
interface History {
  open: Alert[];
  recent: (Alert & { clearedMs: number })[];
}
interface SeriesPoint {
  t: number;
  reportedKw?: number;
  setpointKw?: number;
  soePercent?: number;
}
interface Model {
  plot: { x: number; y: number; w: number; h: number };
  startMs: number;
  endMs: number;
  xTicks: { x: number; label: string }[];
  kwTicks: { y: number; value: number }[];
  lines: Record<'reported' | 'setpoint' | 'soe', [number, number][][]>;
}

const { settlementPeriod } = await load<{ settlementPeriod(t: number): Period }>('settlement.js');
const { trackAlerts, RECENT_MS } = await load<{ trackAlerts(h: History, a: Alert[], now: number): History; RECENT_MS: number }>(
  'alert-history.js',
);
const chart = await load<{
  holdMs(bucketMs: number, maxAgeMs: number): number;
  siteSeries(answer: unknown, holdForMs: number): { bucketMs: number; points: SeriesPoint[] };
  niceTicks(min: number, max: number, count?: number): number[];
  timeTicks(start: number, end: number, max: number, offset?: (t: number) => number): { step: number; ticks: number[] };
  chartModel(o: {
    series: { bucketMs: number; points: SeriesPoint[] };
    windowStartMs: number;
    nowMs: number;
    width: number;
    height: number;
    holdForMs: number;
    formatTime: (t: number, stepMs: number) => string;
  }): Model;
}>('chart-model.js');
const { latestPoints } = await load<{ latestPoints(p: unknown[], now: number): Map<string, { t: number; value: number }> }>('market.js');
const { commandText, timelineSpan } = await load<{
  commandText(i: unknown): string;
  timelineSpan(i: unknown[], now: number): { from: number; to: number };
}>('instructions.js');
const { batteryState } = await load<{ batteryState(c: unknown, now: number, maxAge: number): string }>('battery-rows.js');
const format = await load<{ num(n: unknown, d?: number): string; clock(ms: number): string; age(a: number, b: number): string }>(
  'format.js',
);

const at = (iso: string) => Date.parse(iso);

describe('the GB settlement period computed by the console', () => {
  it.each([
    ['a winter midnight', '2026-12-06T00:00:00Z', '2026-12-06', 1, 48, '2026-12-06T00:30:00Z'],
    ['a winter late morning', '2026-12-06T11:15:00Z', '2026-12-06', 23, 48, '2026-12-06T11:30:00Z'],
    ['a winter last period', '2026-12-06T23:59:59Z', '2026-12-06', 48, 48, '2026-12-07T00:00:00Z'],
    ['a summer day, counted from local midnight (23:00 UTC)', '2026-07-01T00:10:00Z', '2026-07-01', 3, 48, '2026-07-01T00:30:00Z'],
    ['the last hour of a summer UTC day, already the next London day', '2026-06-30T23:10:00Z', '2026-07-01', 1, 48, '2026-06-30T23:30:00Z'],
    ['the day the clocks go forward, after the change', '2026-03-29T01:00:00Z', '2026-03-29', 3, 46, '2026-03-29T01:30:00Z'],
    ['the day the clocks go back, before the change', '2026-10-25T00:30:00Z', '2026-10-25', 4, 50, '2026-10-25T01:00:00Z'],
    ['the day the clocks go back, after the change', '2026-10-25T01:30:00Z', '2026-10-25', 6, 50, '2026-10-25T02:00:00Z'],
  ])('numbers %s', (_, instant, date, period, periods, end) => {
    const p = settlementPeriod(at(instant));
    expect(p).toEqual({ date, period, periods, startMs: at(end) - 1_800_000, endMs: at(end) });
  });
});

describe('the recent alerts the console keeps', () => {
  const failed = { kind: 'ALERT_KIND_SETPOINT_FAILED', site: 'a', deviceId: 'd1', reason: 'timeout' };
  const stale = { kind: 'ALERT_KIND_TELEMETRY_STALE', site: 'a', deviceId: 'd1', reason: 'last reading 40 s ago' };

  it('moves an alert that cleared to the recent list with the time it cleared, newest first', () => {
    const first = trackAlerts({ open: [], recent: [] }, [failed, stale], 1_000);
    expect(first.recent).toEqual([]);
    const second = trackAlerts(first, [{ ...stale, reason: 'last reading 42 s ago' }], 3_000);
    expect(second.open.map((a) => a.kind)).toEqual(['ALERT_KIND_TELEMETRY_STALE']);
    expect(second.recent).toEqual([{ ...failed, clearedMs: 3_000 }]);
    const third = trackAlerts(second, [], 5_000);
    expect(third.recent.map((r) => [r.kind, r.clearedMs])).toEqual([
      ['ALERT_KIND_TELEMETRY_STALE', 5_000],
      ['ALERT_KIND_SETPOINT_FAILED', 3_000],
    ]);
  });

  it('keeps a cleared alert for an hour, then lets it go', () => {
    const cleared = trackAlerts({ open: [failed], recent: [] }, [], 0);
    expect(trackAlerts(cleared, [], RECENT_MS - 1).recent).toHaveLength(1);
    expect(trackAlerts(cleared, [], RECENT_MS).recent).toEqual([]);
  });
});

describe("a site's chart", () => {
  const bucket = (i: number) => new Date(at('2026-12-06T12:00:00Z') + i * 30_000).toISOString();
  const answer = {
    bucketSeconds: 30,
    series: [
      {
        deviceId: 'b1',
        points: [
          { time: bucket(0), soePercent: 50, reportedPowerKw: 10, setpointKw: 10 },
          { time: bucket(1), soePercent: 49, reportedPowerKw: 20, setpointKw: 20 },
          { time: bucket(2), soePercent: 48, reportedPowerKw: 20, setpointKw: 20 },
          { time: bucket(5), soePercent: 47, reportedPowerKw: 30, setpointKw: 30 },
        ],
      },
      { deviceId: 'b2', points: [{ time: bucket(1), soePercent: 70, reportedPowerKw: -5, setpointKw: -5 }] },
    ],
  };

  it('adds the batteries up per bucket, each counted with its latest reading while it is recent enough', () => {
    const series = chart.siteSeries(answer, 60_000);
    expect(series.bucketMs).toBe(30_000);
    expect(series.points).toEqual([
      { t: at(bucket(0)), reportedKw: 10, setpointKw: 10, soePercent: 50 },
      { t: at(bucket(1)), reportedKw: 15, setpointKw: 15, soePercent: 59.5 },
      // b2 has no reading in this bucket: its last one, 30 s old, still counts.
      { t: at(bucket(2)), reportedKw: 15, setpointKw: 15, soePercent: 59 },
      // Now its last reading is 2 min old and no longer counts; its setpoint still holds.
      { t: at(bucket(5)), reportedKw: 30, setpointKw: 25, soePercent: 47 },
    ]);
  });

  it('holds a reading for two buckets, or for the telemetry age limit when longer', () => {
    expect(chart.holdMs(500, 30_000)).toBe(30_000);
    expect(chart.holdMs(720_000, 30_000)).toBe(1_440_000);
  });

  it('starts the time axis at the first data when the window holds less, and draws every point inside the axes', () => {
    const nowMs = at(bucket(6));
    const model = chart.chartModel({
      series: chart.siteSeries(answer, 60_000),
      windowStartMs: nowMs - 3_600_000,
      nowMs,
      width: 600,
      height: 240,
      holdForMs: 60_000,
      formatTime: (t) => new Date(t).toISOString().slice(11, 16),
    });
    expect(model.startMs).toBe(at(bucket(0)));
    expect(model.endMs).toBe(nowMs);
    const { x, y, w, h } = model.plot;
    const all = Object.values(model.lines).flat(2);
    expect(all.length).toBeGreaterThan(8);
    for (const [px, py] of all) {
      expect(px).toBeGreaterThanOrEqual(x);
      expect(px).toBeLessThanOrEqual(x + w);
      expect(py).toBeGreaterThanOrEqual(y);
      expect(py).toBeLessThanOrEqual(y + h);
    }
    // Buckets 3 and 4 are missing, 90 s without a reading: power and SoE break there, the
    // setpoint holds across.
    expect(model.lines.reported).toHaveLength(2);
    expect(model.lines.soe).toHaveLength(2);
    expect(model.lines.setpoint).toHaveLength(1);
    // The power axis covers the data (the site's sums, 10 to 30 kW) and 0.
    const values = model.kwTicks.map((t) => t.value);
    expect(values[0]).toBe(0);
    expect(values.at(-1)).toBeGreaterThanOrEqual(30);
    expect(values.at(-1)).toBeLessThan(40);
    expect(model.xTicks.length).toBeGreaterThan(0);
    for (const tick of model.xTicks) expect(tick.label).toMatch(/^12:0\d$/);
  });

  it('puts round values on its axes', () => {
    expect(chart.niceTicks(-5, 30, 5)).toEqual([-10, 0, 10, 20, 30]);
    expect(chart.niceTicks(0, 0, 4)).toEqual([-1, -0.5, 0, 0.5, 1]);
    expect(chart.niceTicks(-150, 150, 6)).toEqual([-150, -100, -50, 0, 50, 100, 150]);
    // Ticks at round local times: here a zone one hour ahead of UTC, every 15 min.
    const start = at('2026-07-01T10:07:00Z');
    const hour = chart.timeTicks(start, start + 3_600_000, 5, () => 3_600_000);
    expect(hour.step).toBe(900_000);
    expect(hour.ticks.map((t) => new Date(t).toISOString().slice(11, 16))).toEqual(['10:15', '10:30', '10:45', '11:00']);
    // Under a minute of history: ticks every few seconds.
    const short = chart.timeTicks(start, start + 45_000, 5);
    expect(short.step).toBe(10_000);
    expect(short.ticks.map((t) => new Date(t).toISOString().slice(14, 19))).toEqual(['07:00', '07:10', '07:20', '07:30', '07:40']);
  });
});

describe('what the console reads from the API', () => {
  it('shows the latest market point of each type at or before now, not a forecast', () => {
    const now = at('2026-12-06T12:10:00Z');
    const latest = latestPoints(
      [
        { time: '2026-12-06T11:30:00Z', type: 'niv_estimate', value: 100 },
        { time: '2026-12-06T12:00:00Z', type: 'niv_estimate', value: -50 },
        { time: '2026-12-06T12:00:00Z', type: 'imbalance_price' },
        { time: '2026-12-06T12:30:00Z', type: 'niv_estimate', value: 300 },
      ],
      now,
    );
    expect(latest.get('niv_estimate')).toEqual({ t: at('2026-12-06T12:00:00Z'), value: -50 });
    // Connect JSON leaves out a zero value.
    expect(latest.get('imbalance_price')).toEqual({ t: at('2026-12-06T12:00:00Z'), value: 0 });
    expect(latest.has('wholesale_price')).toBe(false);
  });

  it('says what an instruction asks in words', () => {
    expect(commandText({ powerKw: 150 })).toBe('+150.0 kW discharge');
    expect(commandText({ powerKw: -1250.5 })).toBe('-1,250.5 kW charge');
    expect(commandText({})).toBe('0.0 kW hold');
    expect(commandText({ action: 'DISPATCH_ACTION_CHARGE_MAX' })).toBe('charge at full power');
  });

  it('spans the instruction timeline from the first start to the last end, within half an hour back and a day ahead', () => {
    const now = at('2026-12-06T12:00:00Z');
    const window = (start: string, end: string) => ({ interval: { startTime: start, endTime: end } });
    // Short instructions: a short axis, at least 10 min ahead, a minute of room either side.
    expect(timelineSpan([window('2026-12-06T11:59:00Z', '2026-12-06T12:01:00Z')], now)).toEqual({
      from: at('2026-12-06T11:58:00Z'),
      to: at('2026-12-06T12:11:00Z'),
    });
    // Long ago and far ahead: cut at 30 min back and 24 h ahead.
    expect(timelineSpan([window('2026-12-06T08:00:00Z', '2026-12-09T00:00:00Z')], now)).toEqual({
      from: at('2026-12-06T11:30:00Z'),
      to: at('2026-12-07T12:00:00Z'),
    });
    expect(timelineSpan([], now)).toEqual({ from: at('2026-12-06T11:59:00Z'), to: at('2026-12-06T12:11:00Z') });
  });

  it("tells a battery's state as the header counts it", () => {
    const now = at('2026-12-06T12:00:30Z');
    const recent = { lastTelemetryTime: '2026-12-06T12:00:25Z' };
    expect(batteryState(recent, now, 30_000)).toBe('online');
    expect(batteryState({ lastTelemetryTime: '2026-12-06T11:59:00Z' }, now, 30_000)).toBe('stale');
    expect(batteryState({}, now, 30_000)).toBe('stale');
    expect(batteryState({ ...recent, lastEvent: { phase: 'SETPOINT_PHASE_FAILED' } }, now, 30_000)).toBe('failed');
  });

  it('formats numbers and durations for people', () => {
    expect(format.num(1234.56)).toBe('1,234.6');
    expect(format.num(-0.04)).toBe('0.0');
    expect(format.num(undefined)).toBe('—');
    expect(format.clock(65_000)).toBe('1:05');
    expect(format.clock(3_725_000)).toBe('1:02:05');
    expect(format.age(0, 45_000)).toBe('45 s');
    expect(format.age(0, 600_000)).toBe('10 min');
  });
});
