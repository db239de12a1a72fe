// A site's dispatch instructions as a timeline: one row per instruction from half an hour
// ago to a day ahead, with its window drawn against a shared time axis, what it asks, its
// priority, who submitted it and its state. Cancelled ones are struck through.
import { h, s, setAttr, setText, syncKeyed } from './dom.js';
import { fullTime, hhmm, ms, num, stateName } from './format.js';

/** How far back and ahead instructions are listed, ms. */
export const TIMELINE_BEFORE_MS = 30 * 60_000;
export const TIMELINE_AHEAD_MS = 24 * 3_600_000;
/** The timeline reaches at least this far ahead, ms, so a short instruction is not a full-width bar. */
const TIMELINE_MIN_AHEAD_MS = 10 * 60_000;
/** Room on the timeline before the first start and after the last end, ms. */
const TIMELINE_PAD_MS = 60_000;

/**
 * The span of a site's timeline at `nowMs`: from the first start to the last end of its
 * instructions, with a little room, at least 10 min ahead, within the listed range.
 */
export function timelineSpan(instructions, nowMs) {
  const starts = instructions.map((i) => ms(i.interval && i.interval.startTime)).filter((t) => t !== undefined);
  const ends = instructions.map((i) => ms(i.interval && i.interval.endTime)).filter((t) => t !== undefined);
  return {
    from: Math.max(nowMs - TIMELINE_BEFORE_MS, Math.min(nowMs, ...starts) - TIMELINE_PAD_MS),
    to: Math.min(nowMs + TIMELINE_AHEAD_MS, Math.max(nowMs + TIMELINE_MIN_AHEAD_MS, ...ends) + TIMELINE_PAD_MS),
  };
}

const ACTIONS = {
  DISPATCH_ACTION_CHARGE_MAX: 'charge at full power',
  DISPATCH_ACTION_DISCHARGE_MAX: 'discharge at full power',
  DISPATCH_ACTION_AVOID_IMPORT: 'avoid import',
  DISPATCH_ACTION_AVOID_EXPORT: 'avoid export',
};

/** What an interval asks for, in words. */
export function commandText(interval) {
  if (interval.action) return ACTIONS[interval.action] || interval.action;
  const kw = interval.powerKw || 0;
  return `${kw > 0 ? '+' : ''}${num(kw)} kW ${kw > 0 ? 'discharge' : kw < 0 ? 'charge' : 'hold'}`;
}

function row() {
  const bar = s('rect', { class: 'bar', y: '2', height: '12' });
  const now = s('line', { class: 'now', y1: '0', y2: '16' });
  const timeline = s('svg', { class: 'timeline', viewBox: '0 0 1000 16', preserveAspectRatio: 'none', 'aria-hidden': 'true' }, bar, now);
  const cells = ['window', 'bar-cell', 'target', 'command', 'num priority', 'by', 'state'].map((cls) => h('td', { class: cls }));
  cells[1].append(timeline);
  const tr = h('tr', {}, cells);
  tr.parts = { cells, bar, now };
  return tr;
}

/** The instructions part of a site's section. */
export function createInstructionsView(site, index) {
  const titleId = `site-${index}-instructions`;
  const tbody = h('tbody');
  const horizon = h('span', { class: 'horizon' });
  const table = h(
    'table',
    { class: 'instructions', 'aria-labelledby': titleId, hidden: true },
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        ['Window', h('span', {}, 'Timeline ', horizon), 'Target', 'Command', 'Priority', 'Submitted by', 'State'].map((c) =>
          h('th', { scope: 'col' }, c),
        ),
      ),
    ),
    tbody,
  );
  const empty = h('p', { class: 'empty' }, 'Loading instructions…');
  const note = h('p', { class: 'note', hidden: true });
  const el = h('div', { class: 'instructions-part' }, h('h3', { id: titleId }, `Instructions at ${site}`), table, empty, note);

  return {
    el,
    /** Shows `instructions` (ListDispatches) at `nowMs`; `names` maps battery ids to names. */
    update(instructions, nowMs, names) {
      note.hidden = true;
      const { from, to } = timelineSpan(instructions, nowMs);
      const x = (t) => ((Math.min(to, Math.max(from, t)) - from) / (to - from)) * 1000;
      setText(horizon, `(${hhmm(from)}–${hhmm(to)})`);
      const sorted = [...instructions].sort(
        (a, b) => (ms(a.interval.startTime) || 0) - (ms(b.interval.startTime) || 0) || (b.priority || 0) - (a.priority || 0),
      );
      syncKeyed(
        tbody,
        sorted,
        (i) => i.id,
        row,
        (tr, i) => {
          const [windowCell, , target, command, priority, by, state] = tr.parts.cells;
          const start = ms(i.interval.startTime) || nowMs;
          const end = ms(i.interval.endTime) || nowMs;
          const st = stateName(i.state);
          setAttr(tr, 'class', st);
          setAttr(tr, 'data-instruction', i.id);
          setText(windowCell, `${hhmm(start)}–${hhmm(end)}`);
          setAttr(windowCell, 'title', `${fullTime(start)} to ${fullTime(end)}`);
          setText(target, i.deviceId ? names.get(i.deviceId) || i.deviceId : 'whole site');
          setText(command, commandText(i.interval));
          setText(priority, String(i.priority || 0));
          setText(by, i.principalName || i.principal || '—');
          setAttr(by, 'title', i.principal || undefined);
          setText(state, st);
          setAttr(state, 'title', i.cancelReason ? `cancelled: ${i.cancelReason}` : undefined);
          setAttr(tr.parts.bar, 'x', x(start).toFixed(1));
          setAttr(tr.parts.bar, 'width', Math.max(2, x(end) - x(start)).toFixed(1));
          const nowX = x(nowMs).toFixed(1);
          setAttr(tr.parts.now, 'x1', nowX);
          setAttr(tr.parts.now, 'x2', nowX);
        },
      );
      table.hidden = sorted.length === 0;
      setText(empty, 'No instructions from 30 min ago to 24 h ahead.');
      empty.hidden = sorted.length > 0;
    },
    /** Shows why the instructions could not be read. */
    fail(message) {
      setText(note, `Instructions unavailable: ${message}`);
      note.hidden = false;
    },
  };
}
