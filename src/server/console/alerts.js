// The alerts panel: the summary's open alerts, newest first, and the ones that cleared in
// the last hour.
import { alertKey, trackAlerts } from './alert-history.js';
import { h, setAttr, setText, syncKeyed } from './dom.js';
import { age, fullTime, hhmmss, ms } from './format.js';

const HISTORY_KEY = 'powerplane-alerts';
/** The most open alerts listed (the count says how many there are), and the most cleared ones. */
const SHOWN_OPEN = 50;
const SHOWN_RECENT = 20;

/** What each alert kind is called, and whether it means a battery or site is not under control. */
export const ALERT_KINDS = {
  ALERT_KIND_SETPOINT_FAILED: { label: 'Setpoint failed', severe: true },
  ALERT_KIND_SOURCE_MISMATCH: { label: 'Source mismatch', severe: false },
  ALERT_KIND_TELEMETRY_STALE: { label: 'Telemetry stale', severe: false },
  ALERT_KIND_UNDELIVERED_POWER: { label: 'Undelivered power', severe: false },
  ALERT_KIND_BATTERY_UNREACHABLE: { label: 'Battery unreachable', severe: true },
  ALERT_KIND_AGENT_DISCONNECTED: { label: 'Agent disconnected', severe: true },
};

/** The alert history this tab kept (sessionStorage); empty when none or unreadable. */
export function loadAlertHistory() {
  try {
    const stored = JSON.parse(sessionStorage.getItem(HISTORY_KEY) || '{}');
    return { open: Array.isArray(stored.open) ? stored.open : [], recent: Array.isArray(stored.recent) ? stored.recent : [] };
  } catch {
    return { open: [], recent: [] };
  }
}

function alertItem() {
  const kind = h('span', { class: 'alert-kind' });
  const where = h('span', { class: 'alert-where' });
  const when = h('time', { class: 'alert-time' });
  const reason = h('p', { class: 'alert-reason' });
  const li = h('li', { class: 'alert' }, h('p', { class: 'alert-head' }, kind, ' ', where, ' ', when), reason);
  li.parts = { kind, where, when, reason };
  return li;
}

function fillAlert(li, alert, nowMs, cleared) {
  const info = ALERT_KINDS[alert.kind] || { label: alert.kind, severe: true };
  const { kind, where, when, reason } = li.parts;
  setAttr(li, 'class', `alert ${info.severe ? 'severe' : 'warning'}${cleared ? ' cleared' : ''}`);
  setAttr(li, 'data-kind', alert.kind);
  setAttr(li, 'data-site', alert.site);
  setAttr(li, 'data-device', alert.deviceId || undefined);
  setText(kind, info.label);
  setText(where, alert.deviceName ? `${alert.site} · ${alert.deviceName}` : alert.site);
  const since = ms(alert.since);
  if (cleared) {
    setAttr(when, 'datetime', new Date(alert.clearedMs).toISOString());
    setAttr(when, 'title', `since ${since ? fullTime(since) : 'unknown'}, cleared ${fullTime(alert.clearedMs)}`);
    setText(when, `cleared ${hhmmss(alert.clearedMs)}`);
  } else {
    setAttr(when, 'datetime', since ? new Date(since).toISOString() : undefined);
    setAttr(when, 'title', since ? fullTime(since) : undefined);
    setText(when, since ? `since ${hhmmss(since)} (${age(since, nowMs)})` : '');
  }
  setText(reason, alert.reason || '');
  // One line; the whole reason is its title (hover) and shows in full on focus.
  setAttr(reason, 'title', alert.reason || undefined);
  setAttr(reason, 'tabindex', alert.reason ? '0' : undefined);
}

/** Shows `alerts` (open now, per the summary at `nowMs`) and the recent list; returns the new history to keep. */
export function renderAlerts(history, alerts, nowMs) {
  const next = trackAlerts(history, alerts, nowMs);
  sessionStorage.setItem(HISTORY_KEY, JSON.stringify(next));
  const list = document.getElementById('alerts');
  syncKeyed(list, alerts.slice(0, SHOWN_OPEN), alertKey, alertItem, (li, a) => fillAlert(li, a, nowMs, false));
  const more = document.getElementById('more-alerts');
  setText(more, `and ${alerts.length - SHOWN_OPEN} more, older`);
  more.hidden = alerts.length <= SHOWN_OPEN;
  const severe = alerts.filter((a) => (ALERT_KINDS[a.kind] || { severe: true }).severe).length;
  setText(document.getElementById('alert-count'), String(alerts.length));
  setAttr(document.getElementById('alert-count'), 'class', `count${severe ? ' severe' : alerts.length ? ' warning' : ''}`);
  setText(
    document.getElementById('alert-summary'),
    alerts.length ? `${alerts.length} open alert${alerts.length === 1 ? '' : 's'}, ${severe} severe` : 'No open alerts.',
  );
  const recent = document.getElementById('recent');
  syncKeyed(
    recent,
    next.recent.slice(0, SHOWN_RECENT),
    (r) => `${alertKey(r)}|${r.clearedMs}`,
    alertItem,
    (li, r) => fillAlert(li, r, nowMs, true),
  );
  document.getElementById('no-recent').hidden = next.recent.length > 0;
  return next;
}
