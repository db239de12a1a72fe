// The operator console: what runs when the page loads. It reads the public API (api.js)
// on a few clocks and draws each part with its own module:
//   every 2 s   GetFleetSummary with a row per battery (header, alerts, site totals, the
//               batteries' rows; fleet-data.js says how a larger fleet is read);
//   every 10 s  ListBatterySeries per site whose chart is on screen, ListDispatches
//               (one call, or one per site for a token bound to several);
//   every 30 s  ListMarketData;
//   every 1 s   the settlement period clock, computed here.
// Never a request per battery.
import { renderAlerts, loadAlertHistory } from './alerts.js';
import { allPages, call, RpcError, tokenStore } from './api.js';
import { CHART_POINTS, WINDOWS } from './chart-model.js';
import { setText, syncKeyed } from './dom.js';
import { hhmmss, ms, warmFormats } from './format.js';
import { readFleet, summaryWithBatteries } from './fleet-data.js';
import { renderFleet, renderPeriod } from './fleet-header.js';
import { TIMELINE_AHEAD_MS, TIMELINE_BEFORE_MS } from './instructions.js';
import { MARKET_LOOKBACK_MS, MARKET_TYPES, marketFailed, renderMarket } from './market.js';
import { createSiteView } from './site-view.js';
import { createSites, FIRST_PAINT_MARK } from './sites.js';

const REFRESH_MS = 2_000;
const SERIES_MS = 10_000;
const INSTRUCTIONS_MS = 10_000;
const MARKET_MS = 30_000;
const READ_SCOPE = 'readings:read';
const WINDOWS_KEY = 'powerplane-chart-windows';

const sitesEl = document.getElementById('sites');
const statusEl = document.getElementById('status');
const noticeEl = document.getElementById('notice');
const tokenPanel = document.getElementById('token-panel');

let generation = 0;
let state;
let nextIndex = 0;

const visibility = new IntersectionObserver((entries) => {
  for (const e of entries) {
    const site = e.target.getAttribute('data-site');
    if (e.isIntersecting) state.visible.add(site);
    else state.visible.delete(site);
  }
});

/** The chart window chosen per site in this tab. */
function storedWindows() {
  try {
    return JSON.parse(sessionStorage.getItem(WINDOWS_KEY) || '{}');
  } catch {
    return {};
  }
}

function freshState() {
  const windows = storedWindows();
  return {
    caller: undefined,
    early: undefined, // the first summary, asked for with GetCaller
    large: false, // a fleet larger than one summary lists: rows read as fleet-data.js says
    firstRefresh: Promise.resolve(), // settles when the first refresh has drawn or failed
    settleFirstRefresh: () => undefined,
    devices: new Map(),
    devicesAt: 0,
    summary: undefined,
    control: new Map(),
    latest: new Map(),
    sites: createSites(sitesEl, createView, (view) => visibility.unobserve(view.el)),
    visible: new Set(),
    charts: new Map(), // site → { windowKey, at, retryAt }
    instructions: undefined, // { bySite: Map(site → instructions), at } from the last listing
    windows,
    alerts: loadAlertHistory(),
  };
}

function status(text, error) {
  setText(statusEl, text);
  statusEl.className = error ? 'error' : '';
}

function notice(text) {
  setText(noticeEl, text || '');
  noticeEl.hidden = !text;
}

/**
 * Runs `task` now and then `everyMs` after each run ends, until the token changes. A token
 * refused (UNAUTHENTICATED; PERMISSION_DENIED too where `essential`) stops every loop;
 * other errors go to `onError` and the loop goes on.
 */
function repeat(everyMs, task, onError, essential) {
  const g = generation;
  const run = async () => {
    if (g !== generation) return;
    try {
      await task();
    } catch (err) {
      if (g !== generation) return;
      const code = err instanceof RpcError ? err.code : '';
      if (code === 'unauthenticated' || (essential && code === 'permission_denied')) return refused(err);
      onError(err);
    }
    if (g === generation) setTimeout(run, everyMs);
  };
  run();
}

/** Stops every loop and says why the token does not do. */
function refused(err) {
  generation++;
  tokenPanel.open = true;
  if (err.code === 'unauthenticated') {
    status('credentials required', true);
    notice(`This control plane needs a token with the ${READ_SCOPE} scope (${err.detail}). Paste one below.`);
  } else {
    status('this token cannot read the fleet', true);
    notice(`This token cannot read the fleet: ${err.detail}`);
  }
}

/** The sites the caller may read: those it is bound to, or for an unbound caller those with batteries. */
function siteNames() {
  if (state.caller.sites && state.caller.sites.length) return [...state.caller.sites].sort();
  const names = new Set((state.summary && state.summary.sites ? state.summary.sites : []).map((s) => s.site));
  for (const d of state.devices.values()) names.add(d.site);
  return [...names].sort();
}

/** Several sites must be named one by one in list calls; one site or every site is one call. */
function listSites() {
  const bound = state.caller.sites || [];
  return bound.length > 1 ? [...bound].sort() : [''];
}

async function refresh() {
  const early = state.early;
  state.early = undefined;
  await readFleet(state, early, listSites);
  const sitesDrawn = render();
  if (!performance.getEntriesByName(FIRST_PAINT_MARK).length) performance.mark(FIRST_PAINT_MARK, { detail: { sitesDrawn } });
  status(`updated ${hhmmss(Date.now())}`, false);
  notice('');
}

/** Draws the summary, the alerts and the sites; returns how many sites' rows are drawn now. */
function render() {
  const summary = state.summary;
  const nowMs = ms(summary.asOf) || Date.now();
  const maxAgeMs = (summary.maxTelemetryAgeSeconds || 0) * 1000;
  renderFleet(summary);
  state.alerts = renderAlerts(state.alerts, summary.alerts || [], nowMs);
  const bySite = new Map((summary.sites || []).map((s) => [s.site, s]));
  const devicesBySite = new Map();
  for (const d of state.devices.values()) {
    if (!devicesBySite.has(d.site)) devicesBySite.set(d.site, []);
    devicesBySite.get(d.site).push(d);
  }
  const { control, latest } = state;
  const names = siteNames();
  document.getElementById('no-sites').hidden = names.length > 0;
  return state.sites.render({
    names,
    totalsOf: (site) => bySite.get(site),
    rowsOf: (site) =>
      (devicesBySite.get(site) || []).map((device) => ({ device, control: control.get(device.id), reading: latest.get(device.id) })),
    nowMs,
    maxAgeMs,
  });
}

/** A new site's view, watched for whether it is on screen (its chart is drawn only then). */
function createView(site) {
  const view = createSiteView(site, nextIndex++, state.windows[site] || '1h', chooseWindow);
  visibility.observe(view.el);
  if (state.instructions) showInstructions(site, view);
  return view;
}

function chooseWindow(site, key) {
  state.windows[site] = key;
  sessionStorage.setItem(WINDOWS_KEY, JSON.stringify(state.windows));
  state.charts.delete(site);
  refreshCharts().catch(() => undefined);
}

let chartsRunning = false;

/** Fetches the series of each site on screen whose chart is older than {@link SERIES_MS} or shows another window. */
async function refreshCharts() {
  if (chartsRunning || !state.caller) return;
  chartsRunning = true;
  const g = generation;
  try {
    for (const site of [...state.visible].sort()) {
      const view = state.sites.views.get(site);
      if (!view || g !== generation) continue;
      const windowKey = state.windows[site] || '1h';
      const last = state.charts.get(site);
      const now = Date.now();
      if (last && last.windowKey === windowKey && now < (last.retryAt || last.at + SERIES_MS)) continue;
      const w = WINDOWS.find((x) => x.key === windowKey) || WINDOWS[1];
      try {
        const answer = await call('ReadingsService', 'ListBatterySeries', {
          site,
          range: { startTime: new Date(now - w.ms).toISOString(), endTime: new Date(now).toISOString() },
          points: CHART_POINTS,
        });
        if (g !== generation) return;
        view.chart(answer, windowKey, now, ((state.summary && state.summary.maxTelemetryAgeSeconds) || 0) * 1000);
        state.charts.set(site, { windowKey, at: now });
      } catch (err) {
        if (g !== generation) return;
        if (err instanceof RpcError && err.code === 'unauthenticated') return refused(err);
        view.chartFailed(err.detail || err.message);
        // A server without the call, or a refusal, does not change in seconds.
        state.charts.set(site, { windowKey, at: now, retryAt: now + 6 * SERIES_MS });
      }
    }
  } finally {
    chartsRunning = false;
  }
}

async function refreshInstructions() {
  const now = Date.now();
  const bySite = new Map();
  const range = { startTime: new Date(now - TIMELINE_BEFORE_MS).toISOString(), endTime: new Date(now + TIMELINE_AHEAD_MS).toISOString() };
  for (const site of listSites()) {
    const list = await allPages(
      (pageToken) => call('DispatchService', 'ListDispatches', { site, ...range, pageSize: 1000, pageToken }),
      (r) => r.instructions,
      5,
    );
    for (const i of list) {
      const at = i.site || (state.devices.get(i.deviceId) || {}).site;
      if (!at) continue;
      if (!bySite.has(at)) bySite.set(at, []);
      bySite.get(at).push(i);
    }
  }
  state.instructions = { bySite, at: now };
  for (const [site, view] of state.sites.views) showInstructions(site, view);
}

/** Shows `site`'s instructions from the last listing in `view`. */
function showInstructions(site, view) {
  const names = new Map([...state.devices.values()].map((d) => [d.id, d.name]));
  view.instructions.update(state.instructions.bySite.get(site) || [], state.instructions.at, names);
}

async function refreshMarket() {
  const now = Date.now();
  const points = await allPages(
    (pageToken) =>
      call('DispatchService', 'ListMarketData', {
        types: MARKET_TYPES.map((m) => m.type),
        startTime: new Date(now - MARKET_LOOKBACK_MS).toISOString(),
        endTime: new Date(now + 60_000).toISOString(),
        pageSize: 10000,
        pageToken,
      }),
    (r) => r.points,
    5,
  );
  renderMarket(points, now);
}

async function start() {
  const g = ++generation;
  state = freshState();
  visibility.disconnect();
  syncKeyed(
    sitesEl,
    [],
    String,
    () => undefined,
    () => undefined,
  );
  status('loading…', false);
  notice('');
  // The first refresh's call goes out with GetCaller rather than after it: one round trip less.
  const early = summaryWithBatteries();
  early.catch(() => undefined);
  setTimeout(warmFormats, 0);
  try {
    state.caller = await call('TokenService', 'GetCaller', {});
  } catch (err) {
    if (err instanceof RpcError && (err.code === 'unauthenticated' || err.code === 'permission_denied')) return refused(err);
    status(`cannot reach the control plane: ${err.message}`, true);
    setTimeout(() => g === generation && start(), REFRESH_MS);
    return;
  }
  if (g !== generation) return;
  const scopes = state.caller.scopes || [];
  if (!scopes.includes(READ_SCOPE)) {
    generation++;
    tokenPanel.open = true;
    status('this token cannot read the fleet', true);
    notice(
      `This token (${state.caller.principal}) cannot read the fleet: the console needs the scope ${READ_SCOPE}, ` +
        `and it holds ${scopes.length ? scopes.join(', ') : 'none'}. Paste another token below.`,
    );
    return;
  }
  const bound = state.caller.sites || [];
  setText(document.getElementById('caller'), bound.length ? `Sites: ${bound.join(', ')}` : 'All sites');
  tokenPanel.open = false;
  state.early = early;
  let settle;
  state.firstRefresh = new Promise((resolve) => (settle = resolve));
  state.settleFirstRefresh = settle;
  repeat(
    REFRESH_MS,
    () => refresh().finally(() => state.settleFirstRefresh()),
    (err) => status(`${err.code === 'unavailable' ? 'cannot reach the control plane' : 'refresh failed'}: ${err.message}`, true),
    true,
  );
  // Charts, instructions and market data wait for the first refresh (or its failure): the
  // header and the battery rows come first, not behind them on the browser's connections.
  const others = () => {
    if (g !== generation) return;
    repeat(REFRESH_MS, refreshCharts, () => undefined);
    repeat(INSTRUCTIONS_MS, refreshInstructions, (err) => {
      for (const view of state.sites.views.values()) view.instructions.fail(err.detail || err.message);
    });
    repeat(MARKET_MS, refreshMarket, (err) => marketFailed(err.detail || err.message));
  };
  state.firstRefresh.then(others, others);
}

document.getElementById('login').addEventListener('submit', (e) => {
  e.preventDefault();
  const input = document.getElementById('token');
  tokenStore.set(input.value);
  input.value = '';
  start();
});
document.getElementById('forget').addEventListener('click', () => {
  tokenStore.clear();
  start();
});

tokenStore.takeFromFragment();
start(); // first: its requests go out before anything else is drawn
renderPeriod(Date.now());
setInterval(() => renderPeriod(Date.now()), 1_000);
