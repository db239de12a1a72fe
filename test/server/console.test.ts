import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeviceRegistryService } from '../../gen/powerplane/v1/devices_pb.ts';
import { DispatchService } from '../../gen/powerplane/v1/dispatch_pb.ts';
import { FleetService } from '../../gen/powerplane/v1/fleet_pb.ts';
import { createAgent, type Agent } from '../../src/agent/agent.ts';
import { parseSiteConfig } from '../../src/agent/agent-config.ts';
import { bearer } from '../../src/auth/bearer.ts';
import { createTokenStore } from '../../src/auth/tokens.ts';
import { toConfig } from '../../src/config.ts';
import { startSimulator, type Simulator } from '../../src/simulator/simulator.ts';
import { silentLog } from '../support/databases.ts';
import { registerBattery } from '../support/fleet.ts';
import { startTestServer, type TestServer } from '../support/server.ts';
import { sleep, waitFor } from '../support/wait.ts';

/** Debian's chromium package; .ci/run installs it. A missing browser fails the test, never skips it. */
const CHROMIUM = '/usr/bin/chromium';
/** Where the screenshots for a reviewer go (not committed). */
const SHOTS = path.resolve(import.meta.dirname, '../../.tmp');

const NORTH = 'north';
const SOUTH = 'south';
/** A site and a battery whose names are markup: the console must show them as text. */
const MARKUP_SITE = '<img src=x data-markup>east';
const MARKUP_BATTERY = '<b data-markup>bold</b> battery';
const TRADER_NAME = 'Trading desk <i data-markup>A</i>';

/** The fleet: two batteries at north, one at south, one at the site named in markup. */
const FLEET = [
  { site: NORTH, name: 'north-1' },
  { site: NORTH, name: 'north-2' },
  { site: SOUTH, name: 'south-1' },
  { site: MARKUP_SITE, name: MARKUP_BATTERY },
];

/** The console's numbers as it prints them (en-GB, one decimal). */
const kw = (n: number | undefined) => new Intl.NumberFormat('en-GB', { minimumFractionDigits: 1, maximumFractionDigits: 1 }).format(n ?? 0);

interface SummaryJson {
  asOf: string;
  totals?: Record<string, number>;
  sites?: { site: string }[];
  alerts?: { kind: string; deviceId?: string; site: string }[];
}

/** What the header showed at one instant, with the summary it was drawn from. */
interface HeaderSnapshot {
  asOf: string;
  totals: Record<string, string>;
  openAlertDevices: string[];
  recentAlertDevices: string[];
}

const SNAPSHOT = `(() => ({
  asOf: document.getElementById('fleet').getAttribute('data-as-of') || '',
  totals: Object.fromEntries([...document.querySelectorAll('[data-total]')].map((e) => [e.getAttribute('data-total'), e.textContent])),
  openAlertDevices: [...document.querySelectorAll('#alerts li[data-device]')].map((e) => e.getAttribute('data-device')),
  recentAlertDevices: [...document.querySelectorAll('#recent li[data-device]')].map((e) => e.getAttribute('data-device')),
}))()`;

/**
 * A page that records the GetFleetSummary answers it receives (by `asOf`) and every content
 * security policy violation (the policy allows no inline script or style).
 */
async function openConsole(browser: Browser, url: string, viewport = { width: 1920, height: 1080 }) {
  const page = await browser.newPage({ viewport });
  const summaries = new Map<string, SummaryJson>();
  const problems: string[] = [];
  page.on('console', (m) => {
    if (/Content Security Policy/i.test(m.text())) problems.push(m.text());
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  const methods = new Set<string>();
  page.on('request', (req) => {
    const { pathname } = new URL(req.url());
    if (pathname.startsWith('/powerplane.v1.')) methods.add(pathname.split('/').pop()!);
  });
  page.on('response', (res) => {
    if (!res.url().endsWith('/powerplane.v1.FleetService/GetFleetSummary') || !res.ok()) return;
    res.json().then(
      (body: SummaryJson) => summaries.set(body.asOf, body),
      () => undefined,
    );
  });
  // Strings, run in the browser (this project's TypeScript has no DOM types).
  await page.addInitScript({
    content:
      'window.violations = []; ' +
      "document.addEventListener('securitypolicyviolation', (e) => window.violations.push(e.violatedDirective + ' ' + e.blockedURI));",
  });
  await page.goto(url);
  return {
    page,
    summaries,
    /** The RPC methods the page has called. */
    methods,
    snapshot: () => page.evaluate<HeaderSnapshot>(SNAPSHOT),
    problems: async () => [...problems, ...(await page.evaluate<string[]>('window.violations'))],
  };
}

/** A site's chart as drawn: its plot area [x, y, width, height], its points per series, its texts. */
interface ChartShape {
  box: number[];
  points: Record<string, number[][]>;
  text: string[];
}

/** A script, run in the browser, returning the {@link ChartShape} of `site`'s chart. */
const chartShape = (site: string) => `(() => {
  const svg = document.querySelector('section[data-site="${site}"] svg.chart-svg');
  if (!svg) return { box: [], points: {}, text: [] };
  const area = svg.querySelector('rect.plot-area');
  const points = {};
  for (const line of svg.querySelectorAll('[data-series]')) {
    const key = line.getAttribute('data-series');
    const xy = line.tagName === 'circle'
      ? [[Number(line.getAttribute('cx')), Number(line.getAttribute('cy'))]]
      : line.getAttribute('points').split(' ').map((p) => p.split(',').map(Number));
    (points[key] = points[key] || []).push(...xy);
  }
  return {
    box: ['x', 'y', 'width', 'height'].map((a) => Number(area.getAttribute(a))),
    points,
    text: [...svg.querySelectorAll('text')].map((e) => e.textContent),
  };
})()`;

const sectionSites = (page: Page) => page.locator('section.site').evaluateAll((all) => all.map((s) => s.getAttribute('data-site')));

describe('the operator console in Chromium, against a control plane with simulated batteries and their agents', () => {
  let sim: Simulator;
  let t: TestServer;
  let browser: Browser;
  let spool: string;
  const agents: Agent[] = [];
  const ids: string[] = [];
  const tokens: Record<'viewer' | 'twoSites' | 'oneSite' | 'noRead' | 'trader', string> = {
    viewer: '',
    twoSites: '',
    oneSite: '',
    noRead: '',
    trader: '',
  };
  let agentsStartedAt = 0;
  let fleet: ReturnType<typeof createClient<typeof FleetService>>;

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install Debian's chromium package (apt-get install chromium)`);
    await mkdir(SHOTS, { recursive: true });
    spool = await mkdtemp(path.join(os.tmpdir(), 'powerplane-console-'));
    sim = await startSimulator({ bess: FLEET.length });
    const defaults = toConfig({ dataDir: 'memory://' });
    // Authentication on, as `serve` runs it. Short telemetry age and Modbus timeout, so a
    // battery that stops answering shows within seconds.
    t = await startTestServer('pglite', {
      dispatch: { ...defaults.dispatch, controlPeriodMs: 500, maxTelemetryAgeMs: 3_000, modbusTimeoutMs: 300 },
      auth: { ...defaults.auth, adminTokenFile: undefined },
    });
    const store = createTokenStore({ db: t.server.database.db, cacheMs: 0 });
    const create = async (name: string, scopes: string[], sites: string[] = []) =>
      (await store.create({ name, scopes, sites }, 'test')).secret;
    const admin = await create('test admin', ['registry:admin']);
    tokens.trader = await create(TRADER_NAME, ['dispatch:write', 'marketdata:write']);
    tokens.viewer = await create('wall screen', ['readings:read']);
    tokens.twoSites = await create('north and south', ['readings:read'], [NORTH, SOUTH]);
    tokens.oneSite = await create('south only', ['readings:read'], [SOUTH]);
    tokens.noRead = await create('scraper', ['metrics:read']);

    const registry = createClient(DeviceRegistryService, createGrpcTransport({ baseUrl: t.baseUrl, interceptors: [bearer(admin)] }));
    for (const [i, b] of FLEET.entries()) ids.push(await registerBattery(registry, b.site, b.name, sim.bess[i]!.endpoint));
    for (const site of [NORTH, SOUTH, MARKUP_SITE]) {
      const devices = FLEET.flatMap((b, i) =>
        b.site === site
          ? [{ deviceId: ids[i]!, kind: 'bess', endpoint: sim.bess[i]!.endpoint, profile: 'sunspec', pollingIntervalMs: 250 }]
          : [],
      );
      const config = parseSiteConfig({
        site,
        server: { url: t.baseUrl, token: await create(`agent ${site}`, ['telemetry:write'], [site]) },
        devices,
        spool: { dir: path.join(spool, String(agents.length)) },
        batch: { maxReadings: 100, maxDelayMs: 250 },
      });
      const agent = createAgent(config, { log: silentLog, modbusTimeoutMs: 300 });
      await agent.start();
      agents.push(agent);
    }
    agentsStartedAt = Date.now();

    const trader = createClient(DispatchService, createGrpcTransport({ baseUrl: t.baseUrl, interceptors: [bearer(tokens.trader)] }));
    const now = Date.now();
    await trader.submitDispatch({
      requestId: 'console-north',
      target: { case: 'site', value: NORTH },
      intervals: [
        { startTime: timestampFromMs(now - 1_000), endTime: timestampFromMs(now + 20 * 60_000), command: { case: 'powerKw', value: 40 } },
      ],
    });
    const later = await trader.submitDispatch({
      requestId: 'console-north-later',
      target: { case: 'site', value: NORTH },
      priority: 5,
      intervals: [
        {
          startTime: timestampFromMs(now + 30 * 60_000),
          endTime: timestampFromMs(now + 60 * 60_000),
          command: { case: 'powerKw', value: -60 },
        },
      ],
    });
    await trader.cancelDispatch({ id: later.instructions[0]!.id, reason: 'position closed' });
    await trader.publishMarketData({
      points: [
        { time: timestampFromMs(now - 60_000), type: 'niv_estimate', value: 321 },
        { time: timestampFromMs(now - 60_000), type: 'imbalance_price', value: 87.5 },
        { time: timestampFromMs(now - 60_000), type: 'wholesale_price', value: 64.25 },
      ],
    });
    fleet = createClient(FleetService, createGrpcTransport({ baseUrl: t.baseUrl, interceptors: [bearer(tokens.viewer)] }));
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
  });
  afterAll(async () => {
    await browser?.close();
    await Promise.allSettled(agents.map((a) => a.stop({ drainMs: 500 })));
    await t?.stop();
    await sim?.stop();
    if (spool) await rm(spool, { recursive: true, force: true });
  });

  it('shows in its header the totals the API reports, and takes the token out of the address', async () => {
    const c = await openConsole(browser, `${t.baseUrl}/#token=${tokens.viewer}`);
    expect(c.page.url()).toBe(`${t.baseUrl}/`);
    await expect.poll(() => sectionSites(c.page), { timeout: 15_000 }).toEqual([MARKUP_SITE, NORTH, SOUTH]);
    // Every battery reports before the totals are compared, so they are not all zero.
    await waitFor('every battery online', async () => (await fleet.getFleetSummary({})).totals?.onlineCount === FLEET.length, 30_000, 250);
    let compared = 0;
    await waitFor(
      'a header drawn from a summary with every battery online',
      async () => {
        const shown = await c.snapshot();
        const summary = c.summaries.get(shown.asOf);
        if (!summary || summary.totals?.onlineCount !== FLEET.length) return false;
        const tot = summary.totals;
        expect(shown.totals).toMatchObject({
          sites: String(summary.sites?.length),
          batteries: String(tot.batteryCount),
          online: String(tot.onlineCount),
          stale: String(tot.staleCount ?? 0),
          failed: String(tot.failedCount ?? 0),
          discharge: kw(tot.availableDischargeKw),
          charge: kw(tot.availableChargeKw),
          energy: kw(tot.energyStoredKwh),
          'energy-min': kw(tot.energyMinKwh),
          'energy-max': kw(tot.energyMaxKwh),
          reported: kw(tot.reportedPowerKw),
          setpoint: kw(tot.setpointPowerKw),
        });
        compared++;
        return true;
      },
      30_000,
      100,
    );
    expect(compared).toBe(1);
    // The API's own numbers for this fleet: four batteries of 100 kW each way, three sites.
    const api = await fleet.getFleetSummary({});
    expect(api.sites.map((s) => s.site)).toEqual([MARKUP_SITE, NORTH, SOUTH]);
    expect(api.totals?.batteryCount).toBe(4);

    const north = c.page.locator(`section[data-site="${NORTH}"]`);
    await expect.poll(() => north.locator('tbody tr[data-device]').count(), { timeout: 10_000 }).toBe(2);
    expect(await north.locator('th', { hasText: 'north-1' }).count()).toBe(1);
    // The rows come with the summary: no call lists devices or reads their state besides it.
    expect([...c.methods].filter((m) => ['ListDevices', 'GetControlState', 'GetLatestBessState'].includes(m))).toEqual([]);
    // The instructions: who submitted them by name, the cancelled one struck through.
    const instructions = north.locator('table.instructions tbody tr');
    await expect.poll(() => instructions.count(), { timeout: 15_000 }).toBe(2);
    expect(await instructions.nth(0).locator('td.by').textContent()).toBe(TRADER_NAME);
    expect(await instructions.nth(0).locator('td.command').textContent()).toBe('+40.0 kW discharge');
    expect(await instructions.nth(0).locator('td.state').textContent()).toBe('active');
    expect(await instructions.nth(1).locator('td.state').textContent()).toBe('cancelled');
    const struck = `getComputedStyle(document.querySelector('section[data-site="${NORTH}"] tr.cancelled td.command')).textDecorationLine`;
    expect(await c.page.evaluate<string>(struck)).toBe('line-through');
    // Market data with its settlement period, and the period now.
    await expect.poll(() => c.page.locator('[data-market="niv_estimate"]').textContent(), { timeout: 10_000 }).toBe('321');
    expect(await c.page.locator('[data-market="imbalance_price"]').textContent()).toBe('87.50');
    expect(await c.page.locator('[data-market-period="niv_estimate"]').textContent()).toMatch(/^SP \d{1,2}, \d{4}-\d\d-\d\d$/);
    expect(await c.page.locator('[data-total="period"]').textContent()).toMatch(/^SP \d{1,2}$/);
    expect(await c.page.locator('[data-total="period-left"]').textContent()).toMatch(/^\d{1,2}:\d\d left$/);
    expect(await c.page.locator('#status').getAttribute('class')).toBe('');
    expect(await c.problems()).toEqual([]);
    await c.page.close();
  });

  it('shows a token bound to two sites both of them, and one bound to one site only its own', async () => {
    const two = await openConsole(browser, `${t.baseUrl}/#token=${tokens.twoSites}`);
    await expect.poll(() => sectionSites(two.page), { timeout: 15_000 }).toEqual([NORTH, SOUTH]);
    await expect.poll(() => two.page.locator('section.site tbody tr[data-device]').count(), { timeout: 10_000 }).toBe(3);
    await expect.poll(async () => (await two.snapshot()).totals.batteries, { timeout: 10_000 }).toBe('3');
    expect(await two.page.locator('#caller').textContent()).toBe(`Sites: ${NORTH}, ${SOUTH}`);
    expect(await two.problems()).toEqual([]);
    await two.page.close();

    const one = await openConsole(browser, `${t.baseUrl}/#token=${tokens.oneSite}`);
    await expect.poll(() => sectionSites(one.page), { timeout: 15_000 }).toEqual([SOUTH]);
    await expect.poll(() => one.page.locator('section.site tbody tr[data-device]').count(), { timeout: 10_000 }).toBe(1);
    await expect.poll(async () => (await one.snapshot()).totals, { timeout: 10_000 }).toMatchObject({ sites: '1', batteries: '1' });
    expect(await one.page.locator('body').textContent()).not.toContain('north-1');
    expect(await one.problems()).toEqual([]);
    await one.page.close();
  });

  it('keeps markup in site, battery and token names as text', async () => {
    const c = await openConsole(browser, `${t.baseUrl}/#token=${tokens.viewer}`);
    const section = c.page.locator('section.site').filter({ has: c.page.locator('h2', { hasText: 'east' }) });
    await expect.poll(() => section.locator('h2').textContent(), { timeout: 15_000 }).toBe(MARKUP_SITE);
    expect(await section.getAttribute('data-site')).toBe(MARKUP_SITE);
    await expect.poll(() => section.locator('tbody th').first().textContent(), { timeout: 10_000 }).toBe(MARKUP_BATTERY);
    await expect.poll(() => c.page.locator('td.by').first().textContent(), { timeout: 15_000 }).toBe(TRADER_NAME);
    expect(await c.page.locator('[data-markup]').count()).toBe(0);
    expect(await c.problems()).toEqual([]);
    await c.page.close();
  });

  it('asks for a token when it has none, says so for one that cannot read, and shows the fleet once given one that can', async () => {
    const c = await openConsole(browser, t.baseUrl);
    await expect.poll(() => c.page.locator('#status').textContent(), { timeout: 10_000 }).toBe('credentials required');
    expect(await c.page.locator('#login').isVisible()).toBe(true);
    expect(await c.page.locator('section.site').count()).toBe(0);

    await c.page.fill('#token', tokens.noRead);
    await c.page.click('#login button[type=submit]');
    await expect.poll(() => c.page.locator('#notice').textContent(), { timeout: 10_000 }).toContain('cannot read the fleet');
    expect(await c.page.locator('#notice').textContent()).toContain('readings:read');
    expect(await c.page.locator('#notice').isVisible()).toBe(true);
    expect(await c.page.locator('section.site').count()).toBe(0);

    await c.page.fill('#token', tokens.viewer);
    await c.page.click('#login button[type=submit]');
    await expect.poll(() => sectionSites(c.page), { timeout: 15_000 }).toEqual([MARKUP_SITE, NORTH, SOUTH]);
    expect(await c.page.locator('#notice').isVisible()).toBe(false);
    expect(await c.page.locator('#login').isVisible()).toBe(false);
    expect(await c.problems()).toEqual([]);
    await c.page.close();
  });

  it('shows an alert at the first refresh after a battery stops answering, and lists it as cleared when it answers again', async () => {
    const c = await openConsole(browser, `${t.baseUrl}/#token=${tokens.viewer}`);
    const southIndex = FLEET.findIndex((b) => b.site === SOUTH);
    const south = ids[southIndex]!;
    await expect.poll(() => sectionSites(c.page), { timeout: 15_000 }).toEqual([MARKUP_SITE, NORTH, SOUTH]);
    sim.bess[southIndex]!.faults.silent = true;
    try {
      // The first header drawn from a summary with an alert about the battery shows that alert.
      let shownWithAlert: HeaderSnapshot | undefined;
      await waitFor(
        'a summary with an alert about the silent battery, drawn',
        async () => {
          const shown = await c.snapshot();
          const summary = c.summaries.get(shown.asOf);
          if (!summary?.alerts?.some((a) => a.deviceId === south)) return false;
          shownWithAlert = shown;
          return true;
        },
        60_000,
        100,
      );
      expect(shownWithAlert!.openAlertDevices).toContain(south);
      const alert = c.page.locator(`#alerts li[data-device="${south}"]`).first();
      expect(await alert.locator('.alert-where').textContent()).toBe(`${SOUTH} · south-1`);
      expect(await alert.locator('.alert-reason').textContent()).not.toBe('');
      expect(await alert.locator('time').getAttribute('datetime')).toMatch(/^\d{4}-\d\d-\d\dT/);
      await c.page.screenshot({ path: path.join(SHOTS, 'console-alert-1920x1080.png') });
    } finally {
      sim.bess[southIndex]!.faults.silent = false;
    }
    // And the first header drawn from a summary without one shows none, and lists it as cleared.
    let shownClear: HeaderSnapshot | undefined;
    await waitFor(
      'a summary without alerts about the battery, drawn',
      async () => {
        const shown = await c.snapshot();
        const summary = c.summaries.get(shown.asOf);
        if (!summary || summary.alerts?.some((a) => a.deviceId === south)) return false;
        shownClear = shown;
        return true;
      },
      60_000,
      100,
    );
    expect(shownClear!.openAlertDevices).not.toContain(south);
    expect(shownClear!.recentAlertDevices).toContain(south);
    expect(await c.page.locator(`#recent li[data-device="${south}"] .alert-time`).first().textContent()).toMatch(
      /^cleared \d\d:\d\d:\d\d$/,
    );
    // The recent list is kept for the tab: a reload still shows it.
    await c.page.reload();
    await expect.poll(() => c.page.locator(`#recent li[data-device="${south}"]`).count(), { timeout: 10_000 }).toBeGreaterThan(0);
    expect(await c.problems()).toEqual([]);
    await c.page.close();
  }, 150_000);

  it('draws a chart with its data inside labelled axes after a minute, from the first data on, at 1920×1080 and 1280×720', async () => {
    await sleep(Math.max(0, agentsStartedAt + 60_000 - Date.now()));
    const c = await openConsole(browser, `${t.baseUrl}/#token=${tokens.viewer}`);
    const north = c.page.locator(`section[data-site="${NORTH}"]`);
    await north.scrollIntoViewIfNeeded();
    await north.locator('label', { hasText: '15 min' }).click();
    expect(await north.locator('input[value="15m"]').isChecked()).toBe(true);
    await expect
      .poll(() => north.locator('.chart-title').textContent(), { timeout: 15_000 })
      .toBe('Power and state of energy, last 15 min');
    const chart = () => c.page.evaluate<ChartShape>(chartShape(NORTH));
    await expect.poll(async () => (await chart()).points.soe?.length ?? 0, { timeout: 30_000 }).toBeGreaterThanOrEqual(5);
    const { box, points, text } = await chart();
    const [x, y, w, h] = box as [number, number, number, number];
    for (const key of ['reported', 'setpoint', 'soe']) {
      expect(points[key]?.length, key).toBeGreaterThanOrEqual(2);
      for (const [px, py] of points[key]!) {
        expect(px).toBeGreaterThanOrEqual(x);
        expect(px).toBeLessThanOrEqual(x + w);
        expect(py).toBeGreaterThanOrEqual(y);
        expect(py).toBeLessThanOrEqual(y + h);
      }
    }
    // About a minute of data in a 15-minute window: the axis starts at the first data, so
    // the line begins near the left edge instead of in the last fifteenth of the width.
    expect(Math.min(...points.soe!.map(([px]) => px!))).toBeLessThan(x + w / 4);
    expect(text).toEqual(expect.arrayContaining(['Power (kW)', 'SoE (%)', 'Time']));
    expect(await north.locator('.legend').textContent()).toContain('Reported power (kW, left axis)');
    await c.page.screenshot({ path: path.join(SHOTS, 'console-1920x1080.png') });

    await c.page.setViewportSize({ width: 1280, height: 720 });
    await c.page.evaluate('window.scrollTo(0, 0)');
    // The chart is drawn again to the new width.
    const fitted = `(() => {
      const plot = document.querySelector('section[data-site="${NORTH}"] .plot');
      const svg = plot && plot.querySelector('svg');
      return !!svg && Number(svg.getAttribute('width')) === Math.floor(plot.clientWidth);
    })()`;
    await expect.poll(() => c.page.evaluate<boolean>(fitted), { timeout: 10_000 }).toBe(true);
    expect(await c.page.evaluate<boolean>('document.documentElement.scrollWidth <= document.documentElement.clientWidth')).toBe(true);
    await c.page.screenshot({ path: path.join(SHOTS, 'console-1280x720.png') });
    expect(await c.problems()).toEqual([]);
    await c.page.close();
  }, 150_000);
});
