/**
 * GB settlement periods: the day (Europe/London) is cut into half hours from local
 * midnight, numbered from 1. A spring clock-change day has 46, an autumn one 50.
 */

const PERIOD_MS = 30 * 60_000;

const londonParts = new Intl.DateTimeFormat('en-CA', {
  timeZone: 'Europe/London',
  year: 'numeric',
  month: '2-digit',
  day: '2-digit',
  hour: '2-digit',
  hourCycle: 'h23',
});

function partsOf(ms: number): { date: string; hour: number } {
  const parts = Object.fromEntries(londonParts.formatToParts(ms).map((p) => [p.type, p.value]));
  return { date: `${parts.year}-${parts.month}-${parts.day}`, hour: Number(parts.hour) };
}

/** The instant local midnight of a London date (`YYYY-MM-DD`) falls on, ms since the epoch. */
export function londonMidnight(date: string): number {
  const [y, m, d] = date.split('-').map(Number) as [number, number, number];
  const utcMidnight = Date.UTC(y, m - 1, d);
  // Midnight is never inside a transition (they happen at 01:00 UTC), so the offset
  // shown at 00:00 UTC is the offset at local midnight.
  return utcMidnight - partsOf(utcMidnight).hour * 3_600_000;
}

/** The settlement date and period of the half hour starting at `startMs` (aligned to 30 minutes). */
export function settlementPeriodOf(startMs: number): { date: string; period: number } {
  const { date } = partsOf(startMs);
  return { date, period: Math.floor((startMs - londonMidnight(date)) / PERIOD_MS) + 1 };
}

/** How many settlement periods a London date has: 48, or 46 / 50 on clock-change days. */
export function periodsInDay(date: string): number {
  const start = londonMidnight(date);
  const nextDate = partsOf(start + 36 * 3_600_000).date;
  return Math.round((londonMidnight(nextDate) - start) / PERIOD_MS);
}
