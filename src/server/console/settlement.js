// GB settlement periods: each day in Europe/London time is cut into half hours numbered from
// 1 at local midnight, so a day has 48 periods, 46 when the clocks go forward and 50 when they
// go back. Computed in the page from the browser's time zone data (Intl), whatever the
// browser's own time zone. Pure functions: no DOM.

const HALF_HOUR_MS = 30 * 60_000;

const london = new Intl.DateTimeFormat('en-GB', {
  timeZone: 'Europe/London',
  year: 'numeric',
  month: '2-digit',
  day: '2-digit',
  hour: '2-digit',
  minute: '2-digit',
  second: '2-digit',
  hourCycle: 'h23',
});

/** The Europe/London calendar fields of the instant `t` (ms since the epoch). */
function londonFields(t) {
  const f = {};
  for (const part of london.formatToParts(t)) if (part.type !== 'literal') f[part.type] = Number(part.value);
  return f;
}

/** How far Europe/London is ahead of UTC at the instant `t`, in ms (0 or one hour). */
function londonOffsetMs(t) {
  const f = londonFields(t);
  const wall = Date.UTC(f.year, f.month - 1, f.day, f.hour, f.minute, f.second);
  return wall - Math.floor(t / 1000) * 1000;
}

/**
 * The instant of local midnight starting the London day dated `year`-`month`-`day` (month
 * 1–12; a day past the month's end rolls over). The clocks change at 01:00 UTC, so the
 * offset at 00:00 UTC of that date is the one in force at local midnight.
 */
function londonMidnight(year, month, day) {
  const utcMidnight = Date.UTC(year, month - 1, day);
  return utcMidnight - londonOffsetMs(utcMidnight);
}

/**
 * The settlement period holding the instant `t`: its date (`YYYY-MM-DD`, the London
 * day), number (1-based), the number of periods that day, and its start and end (ms).
 */
export function settlementPeriod(t) {
  const f = londonFields(t);
  const dayStart = londonMidnight(f.year, f.month, f.day);
  const dayEnd = londonMidnight(f.year, f.month, f.day + 1);
  const index = Math.floor((t - dayStart) / HALF_HOUR_MS);
  const pad = (n) => String(n).padStart(2, '0');
  return {
    date: `${f.year}-${pad(f.month)}-${pad(f.day)}`,
    period: index + 1,
    periods: Math.round((dayEnd - dayStart) / HALF_HOUR_MS),
    startMs: dayStart + index * HALF_HOUR_MS,
    endMs: dayStart + (index + 1) * HALF_HOUR_MS,
  };
}
