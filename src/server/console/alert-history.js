// Which alerts are open and which cleared within the last hour. Pure functions over plain
// data, so the rules are tested on their own; the page keeps the result in sessionStorage
// (alerts.js), so a reload keeps the recent list.

/** How long a cleared alert stays in the recent list, ms. */
export const RECENT_MS = 3_600_000;
/** The most cleared alerts kept. */
export const RECENT_MAX = 100;

/** What an alert is about: its kind, site and battery. Its time and reason may change while it stays open. */
export function alertKey(alert) {
  return `${alert.kind}|${alert.site}|${alert.deviceId || ''}`;
}

/**
 * The next history after a summary listed `alerts` as open at `nowMs`: an alert open before
 * and absent now moves to `recent` with `clearedMs`, newest first; entries older than an
 * hour drop off. An alert that opens again stays in `recent` too (it did clear).
 */
export function trackAlerts(history, alerts, nowMs) {
  const open = new Set(alerts.map(alertKey));
  const cleared = (history.open || []).filter((a) => !open.has(alertKey(a))).map((a) => ({ ...a, clearedMs: nowMs }));
  const kept = (history.recent || []).filter((r) => nowMs - r.clearedMs < RECENT_MS);
  return { open: alerts, recent: [...cleared, ...kept].slice(0, RECENT_MAX) };
}
