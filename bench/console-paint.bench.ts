/**
 * `npm run bench:console-paint [-- --quick]`: the operator console in Chromium against a
 * warm server with 50 sites × 20 batteries (the fleet `bench:console` stores), and against
 * one with 1 site × 20 batteries (the baseline page), each a Powerplane server in its own
 * process on a throwaway PostgreSQL (fsync off), authentication off.
 *
 * Measured, after one load of the page to warm each server, each load closed once its
 * requests are answered (so the next does not share the server with its charts):
 *  - first paint, N times (quick 3, full 10), each in a fresh browser context at
 *    1920×1080: navigation start → the page's `console:first-paint` mark, set once its first
 *    refresh has drawn the fleet header totals, every site's section with its totals, and
 *    the battery rows of every site whose section begins on screen (the page draws the
 *    other sites' rows in the tasks after); p50/p99; and → `console:all-rows`, set once
 *    every site's rows are drawn;
 *  - requests per refresh: every request the page makes over 10 s after its first paint,
 *    divided by the refreshes in that window (its GetFleetSummary calls), and per battery;
 *  - the bare GetFleetSummary round trip with battery rows from Node, p50/p99 (the API's
 *    share of a refresh).
 * Debian's Chromium (`/usr/bin/chromium`) through playwright-core. Asserts nothing; binds
 * 127.0.0.1 only and stops everything it starts. The last line is one JSON object.
 */
import { chromium, type Browser, type Page } from 'playwright-core';
import { startPostgresCluster } from '../test/support/postgres-cluster.ts';
import { createConsoleFleet, type ConsoleFleet } from './support/console-fleet.ts';
import { startServerProcess, stopServerProcess } from './support/server-process.ts';
import { percentile } from './support/stats.ts';

const quick = process.argv.includes('--quick');
const CHROMIUM = '/usr/bin/chromium';
const LOADS = quick ? 3 : 10;
const WINDOW_MS = 10_000;
const REFRESH_MS = 2_000;
const MARK = 'console:first-paint';
const ALL_ROWS = 'console:all-rows';
const FLEET: ConsoleFleet = { sites: 50, batteriesPerSite: 20, readingEveryS: quick ? 10 : 2 };
const BASELINE: ConsoleFleet = { ...FLEET, sites: 1 };

const fmt = (n: number) => n.toFixed(1);

interface PageFigures {
  paintP50: number;
  paintP99: number;
  allRowsP50: number;
  allRowsP99: number;
  /** Sites whose rows the last load had drawn at its first paint, of all its sites. */
  sitesAtPaint: string;
  rows: number;
  /** The last load's steps before its first paint: ms from navigation start to each one's end. */
  steps: Record<string, number>;
  lastMs: number;
  lastAllRowsMs: number;
  requestsPerRefresh: number;
  refreshes: number;
  byMethod: Record<string, number>;
}

// Strings, run in the browser (this project's TypeScript has no DOM types).
/** Whether the page has set its first-paint mark and drawn `rows` battery rows. */
const marked = (rows: number) =>
  `performance.getEntriesByName(${JSON.stringify(MARK)}).length > 0 &&
    document.querySelectorAll('#sites tr[data-device]').length >= ${rows}`;
const PAINTED = `(() => ({
  ms: performance.getEntriesByName(${JSON.stringify(MARK)})[0].startTime,
  allRowsMs: (performance.getEntriesByName(${JSON.stringify(ALL_ROWS)})[0] ||
    performance.getEntriesByName(${JSON.stringify(MARK)})[0]).startTime,
  sitesDrawn: (performance.getEntriesByName(${JSON.stringify(MARK)})[0].detail || {}).sitesDrawn,
  sites: document.querySelectorAll('#sites section.site').length,
  rows: document.querySelectorAll('#sites tr[data-device]').length,
  asOf: document.getElementById('fleet').getAttribute('data-as-of') || '',
  steps: Object.fromEntries([
    ['domContentLoaded', performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd],
    ...performance.getEntriesByType('resource').filter((e) => e.name.includes('/powerplane.v1.')).reverse()
      .map((e) => [e.name.split('/').pop(), e.responseEnd]),
  ].map(([k, v]) => [k, Math.round(v)])),
}))()`;

/**
 * Waits until the page has set its first-paint mark and drawn `rows` battery rows (a page
 * that draws every row before its first paint sets no {@link ALL_ROWS} mark). Polled from
 * here: the page's content security policy refuses `waitForFunction`'s eval. The marks
 * hold their own times, so the poll does not change the figures.
 */
async function untilPainted(page: Page, rows: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!(await page.evaluate<boolean>(marked(rows)))) {
    if (Date.now() > deadline) throw new Error(`no ${MARK} mark and ${rows} rows within 30 s`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * Counts `page`'s requests in flight; `settled()` waits (at most 10 s) until none is, so
 * the next load does not find the server still answering this page's charts and lists.
 */
function inFlight(page: Page): { settled(): Promise<void> } {
  let open = 0;
  page.on('request', () => open++);
  page.on('requestfinished', () => open--);
  page.on('requestfailed', () => open--);
  return {
    async settled() {
      const deadline = Date.now() + 10_000;
      while (open > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    },
  };
}

/** What one load drew by its first paint, and when (ms from navigation start). */
interface Painted {
  ms: number;
  allRowsMs: number;
  sitesDrawn: number;
  sites: number;
  rows: number;
  asOf: string;
  steps: Record<string, number>;
}

/**
 * One load of the console in a fresh context: ms from navigation start to its first paint
 * and to every row drawn. The page is closed once its requests are answered.
 */
async function load(browser: Browser, url: string, rows: number): Promise<Painted> {
  const page = await browser.newPage({ viewport: { width: 1920, height: 1080 } });
  const requests = inFlight(page);
  try {
    await page.goto(url);
    await untilPainted(page, rows);
    const painted = await page.evaluate<Painted>(PAINTED);
    if (!painted.asOf) throw new Error('first paint marked before the fleet header was drawn');
    await requests.settled();
    return painted;
  } finally {
    await page.close();
  }
}

/** The requests of one page over {@link WINDOW_MS} after its first paint, by RPC method. */
async function requests(browser: Browser, url: string, rows: number): Promise<{ byMethod: Record<string, number>; total: number }> {
  const page = await browser.newPage({ viewport: { width: 1920, height: 1080 } });
  try {
    let counting = false;
    const byMethod: Record<string, number> = {};
    page.on('request', (r) => {
      if (!counting) return;
      const method = new URL(r.url()).pathname.split('/').pop() ?? r.url();
      byMethod[method] = (byMethod[method] ?? 0) + 1;
    });
    await page.goto(url);
    await untilPainted(page, rows);
    counting = true;
    await new Promise((resolve) => setTimeout(resolve, WINDOW_MS));
    counting = false;
    return { byMethod, total: Object.values(byMethod).reduce((a, b) => a + b, 0) };
  } finally {
    await page.close();
  }
}

async function measurePage(browser: Browser, url: string, rows: number): Promise<PageFigures> {
  await load(browser, url, rows); // warm-up: the server's caches, plans and connections
  const times: number[] = [];
  const allRows: number[] = [];
  let last: Painted | undefined;
  for (let i = 0; i < LOADS; i++) {
    const painted = await load(browser, url, rows);
    times.push(painted.ms);
    allRows.push(painted.allRowsMs);
    last = painted;
  }
  times.sort((a, b) => a - b);
  allRows.sort((a, b) => a - b);
  const counted = await requests(browser, url, rows);
  const refreshes = counted.byMethod.GetFleetSummary ?? WINDOW_MS / REFRESH_MS;
  return {
    paintP50: percentile(times, 50),
    paintP99: percentile(times, 99),
    allRowsP50: percentile(allRows, 50),
    allRowsP99: percentile(allRows, 99),
    sitesAtPaint: `${last?.sitesDrawn ?? '?'} of ${last?.sites ?? '?'}`,
    rows: last?.rows ?? 0,
    steps: last?.steps ?? {},
    lastMs: last?.ms ?? Number.NaN,
    lastAllRowsMs: last?.allRowsMs ?? Number.NaN,
    requestsPerRefresh: counted.total / refreshes,
    refreshes,
    byMethod: counted.byMethod,
  };
}

/**
 * The bare GetFleetSummary round trip with a row per battery, as the page's `fetch` makes
 * it: p50/p99 over {@link LOADS} × 3 calls.
 */
async function summaryRoundTrip(baseUrl: string): Promise<{ p50: number; p99: number }> {
  const times: number[] = [];
  for (let i = 0; i < LOADS * 3 + 1; i++) {
    const started = performance.now();
    const res = await fetch(`${baseUrl}/powerplane.v1.FleetService/GetFleetSummary`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ includeBatteries: true }),
    });
    await res.text();
    if (!res.ok) throw new Error(`GetFleetSummary: HTTP ${res.status}`);
    if (i > 0) times.push(performance.now() - started); // the first warms
  }
  times.sort((a, b) => a - b);
  return { p50: percentile(times, 50), p99: percentile(times, 99) };
}

async function main(): Promise<void> {
  const batteries = FLEET.sites * FLEET.batteriesPerSite;
  console.log(
    `bench:console-paint ${quick ? '(quick)' : ''}: ${FLEET.sites} sites × ${FLEET.batteriesPerSite} batteries, ` +
      `against ${BASELINE.sites} × ${BASELINE.batteriesPerSite}; ${LOADS} loads each`,
  );
  const cluster = await startPostgresCluster();
  const servers: Awaited<ReturnType<typeof startServerProcess>>[] = [];
  let browser: Browser | undefined;
  try {
    const seeding = performance.now();
    const fleetUrl = await createConsoleFleet(cluster.adminUrl, 'fleet', FLEET);
    const baselineUrl = await createConsoleFleet(cluster.adminUrl, 'baseline', BASELINE);
    console.log(`seeded in ${fmt((performance.now() - seeding) / 1000)} s`);
    const serve = async (url: string) => {
      const server = await startServerProcess({ DATABASE_URL: url, POWERPLANE_AUTH: 'off', POWERPLANE_LOG_LEVEL: 'error' });
      servers.push(server);
      return `http://127.0.0.1:${server.port}`;
    };
    const fleetBase = await serve(fleetUrl);
    const baselineBase = await serve(baselineUrl);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-sync',
      ],
    });
    const baseline = await measurePage(browser, `${baselineBase}/`, BASELINE.sites * BASELINE.batteriesPerSite);
    const fleet = await measurePage(browser, `${fleetBase}/`, batteries);
    const api = await summaryRoundTrip(fleetBase);
    const line = (name: string, f: PageFigures, count: number) =>
      console.log(
        `${name} first paint p50 ${fmt(f.paintP50)} ms, p99 ${fmt(f.paintP99)} ms (rows of ${f.sitesAtPaint} sites); ` +
          `every row p50 ${fmt(f.allRowsP50)} ms, p99 ${fmt(f.allRowsP99)} ms (${f.rows} rows); ` +
          `${fmt(f.requestsPerRefresh)} requests per refresh (${f.refreshes} refreshes in ${WINDOW_MS / 1000} s), ` +
          `${(f.requestsPerRefresh / count).toFixed(4)} per battery; ${JSON.stringify(f.byMethod)}\n` +
          `  last load, ms from navigation start to each first end: ${Object.entries(f.steps)
            .sort((a, b) => a[1] - b[1])
            .map(([k, v]) => `${k} ${v}`)
            .join(', ')}, first paint ${fmt(f.lastMs)}, every row ${fmt(f.lastAllRowsMs)}`,
      );
    line(`console, ${FLEET.sites} × ${FLEET.batteriesPerSite}:`, fleet, batteries);
    line(`console, ${BASELINE.sites} × ${BASELINE.batteriesPerSite} (baseline):`, baseline, BASELINE.sites * BASELINE.batteriesPerSite);
    console.log(
      `GetFleetSummary with battery rows from Node, ${FLEET.sites} × ${FLEET.batteriesPerSite} (baseline): ` +
        `p50 ${fmt(api.p50)} ms, p99 ${fmt(api.p99)} ms`,
    );
    console.log(
      JSON.stringify({
        bench: 'console-paint',
        quick,
        loads: LOADS,
        sites: FLEET.sites,
        batteriesPerSite: FLEET.batteriesPerSite,
        paintP50Ms: Number(fmt(fleet.paintP50)),
        paintP99Ms: Number(fmt(fleet.paintP99)),
        allRowsP50Ms: Number(fmt(fleet.allRowsP50)),
        allRowsP99Ms: Number(fmt(fleet.allRowsP99)),
        rows: fleet.rows,
        requestsPerRefresh: Number(fmt(fleet.requestsPerRefresh)),
        requestsPerRefreshPerBattery: Number((fleet.requestsPerRefresh / batteries).toFixed(4)),
        baselinePaintP50Ms: Number(fmt(baseline.paintP50)),
        baselinePaintP99Ms: Number(fmt(baseline.paintP99)),
        baselineRequestsPerRefresh: Number(fmt(baseline.requestsPerRefresh)),
        summaryP50Ms: Number(fmt(api.p50)),
        summaryP99Ms: Number(fmt(api.p99)),
      }),
    );
  } finally {
    await browser?.close();
    for (const server of servers) await stopServerProcess(server.child);
    await cluster.stop();
  }
}

await main();
