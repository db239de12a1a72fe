// Numbers, times and enum names as the console shows them. Pure functions: no DOM.

const formats = new Map();

/** `n` with `digits` decimals and thousands separators; an em dash for a missing value. */
export function num(n, digits = 1) {
  if (n === undefined || n === null || Number.isNaN(Number(n))) return '—';
  let f = formats.get(digits);
  if (!f) {
    f = new Intl.NumberFormat('en-GB', { minimumFractionDigits: digits, maximumFractionDigits: digits });
    formats.set(digits, f);
  }
  // -0.0 reads as a charge of nothing: show it as 0.
  const text = f.format(Number(n));
  return /^-0(\.0*)?$/.test(text) ? text.slice(1) : text;
}

/** The name of a `COMMAND_SOURCE_*` value without its prefix; `—` when not reported. */
export function sourceName(source) {
  const name = (source || 'COMMAND_SOURCE_UNSPECIFIED').replace('COMMAND_SOURCE_', '');
  return name === 'UNSPECIFIED' ? '—' : name;
}

/** The name of a `SETPOINT_PHASE_*` value in lower case, without its prefix. */
export function phaseName(phase) {
  return (phase || '').replace('SETPOINT_PHASE_', '').toLowerCase();
}

/** The name of a `DISPATCH_STATE_*` value in lower case, without its prefix. */
export function stateName(state) {
  return (state || '').replace('DISPATCH_STATE_', '').toLowerCase();
}

/** How long ago `thenMs` was at `nowMs`, in the largest whole unit: `12 s`, `3 min`, `2 h`, `4 d`. */
export function age(thenMs, nowMs) {
  const s = Math.max(0, Math.round((nowMs - thenMs) / 1000));
  if (s < 90) return `${s} s`;
  if (s < 90 * 60) return `${Math.round(s / 60)} min`;
  if (s < 36 * 3600) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} d`;
}

/** A length of time as `m:ss` or `h:mm:ss`. */
export function clock(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const sec = String(total % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}

// Made on first use rather than when the page loads: making one takes milliseconds, which
// the page spends better while its first requests are on their way (see warmFormats).
const dateFormats = {
  timeOfDay: { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' },
  timeOfDaySeconds: { hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' },
  dateAndTime: { dateStyle: 'medium', timeStyle: 'medium' },
};
const made = new Map();
function dateFormat(key) {
  let f = made.get(key);
  if (!f) {
    f = new Intl.DateTimeFormat('en-GB', dateFormats[key]);
    made.set(key, f);
  }
  return f;
}

/** Makes every format now, e.g. while the page waits for its first answers. */
export function warmFormats() {
  for (const key of Object.keys(dateFormats)) dateFormat(key);
  num(0);
}

/** `HH:MM` in the browser's time zone. */
export const hhmm = (ms) => dateFormat('timeOfDay').format(ms);
/** `HH:MM:SS` in the browser's time zone. */
export const hhmmss = (ms) => dateFormat('timeOfDaySeconds').format(ms);
/** Date and time in the browser's time zone, for titles. */
export const fullTime = (ms) => dateFormat('dateAndTime').format(ms);

/** Milliseconds since the epoch of a JSON timestamp; undefined when absent. */
export function ms(timestamp) {
  if (!timestamp) return undefined;
  const t = Date.parse(timestamp);
  return Number.isNaN(t) ? undefined : t;
}
