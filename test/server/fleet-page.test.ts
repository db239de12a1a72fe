import { existsSync } from 'node:fs';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { createClient, type Interceptor } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { sql } from 'kysely';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeviceRegistryService } from '../../gen/powerplane/v1/devices_pb.ts';
import { DispatchService } from '../../gen/powerplane/v1/dispatch_pb.ts';
import { bearer } from '../../src/auth/bearer.ts';
import { createTokenStore } from '../../src/auth/tokens.ts';
import { toConfig } from '../../src/config.ts';
import { startSimulator, type Simulator } from '../../src/simulator/simulator.ts';
import { registerBattery } from '../support/fleet.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

/** Debian's chromium package; .ci/run installs it. A missing browser fails the test, never skips it. */
const CHROMIUM = '/usr/bin/chromium';

/**
 * A new page that records every content security policy violation (the server's policy
 * allows no inline script or style). Playwright's init script runs outside the policy.
 */
async function watchedPage(browser: Browser): Promise<{ page: Page; violations: () => Promise<string[]> }> {
  const page = await browser.newPage();
  const console: string[] = [];
  page.on('console', (m) => {
    if (/Content Security Policy/i.test(m.text())) console.push(m.text());
  });
  // Strings, run in the browser (this project's TypeScript has no DOM types).
  await page.addInitScript({
    content:
      'window.violations = []; ' +
      "document.addEventListener('securitypolicyviolation', (e) => window.violations.push(e.violatedDirective + ' ' + e.blockedURI));",
  });
  return { page, violations: async () => [...console, ...(await page.evaluate<string[]>('window.violations'))] };
}

describe('the fleet page', () => {
  let sim: Simulator;
  let t: TestServer;
  let browser: Browser;
  let admin: Interceptor;
  let viewer: string;
  let twoSites: string;

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install Debian's chromium package (apt-get install chromium)`);
    sim = await startSimulator({ bess: 3 });
    const defaults = toConfig({ dataDir: 'memory://' });
    // Authentication on, as `serve` runs: the page needs a token with readings:read.
    t = await startTestServer('pglite', { dispatch: { ...defaults.dispatch, controlPeriodMs: 300 }, auth: defaults.auth });
    const tokens = createTokenStore({ db: t.server.database.db, cacheMs: 0 });
    const adminSecret = (await tokens.create({ name: 'test admin', scopes: ['registry:admin', 'dispatch:write'] }, 'test')).secret;
    viewer = (await tokens.create({ name: 'page viewer', scopes: ['readings:read'] }, 'test')).secret;
    twoSites = (await tokens.create({ name: 'two-site viewer', scopes: ['readings:read'], sites: ['page-site', 'page-site-2'] }, 'test'))
      .secret;
    admin = bearer(adminSecret);
    const registry = createClient(DeviceRegistryService, createGrpcTransport({ baseUrl: t.baseUrl, interceptors: [admin] }));
    for (const [i, device] of sim.bess.entries()) {
      // Two batteries at one site, the third at another.
      const id = await registerBattery(registry, i < 2 ? 'page-site' : 'page-site-2', `page-battery-${i}`, device.endpoint);
      await sql`insert into flux.mg_bess_readings (time, device_id, soe, available_inverter_blocks, command_source)
                values (now(), ${id}, ${55 + i}, 1, 1)`.execute(t.server.database.db);
    }
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  });
  afterAll(async () => {
    await browser?.close();
    await t?.stop();
    await sim?.stop();
  });

  it('shows the batteries of each site and a dispatch reaching them', async () => {
    const { page, violations } = await watchedPage(browser);
    await page.goto(`${t.baseUrl}/#token=${viewer}`);
    expect(page.url()).toBe(`${t.baseUrl}/`);
    const site = page.locator('section[data-site="page-site"]');
    await expect.poll(() => site.locator('tbody tr').count(), { timeout: 10_000 }).toBe(2);
    expect(await site.textContent()).toContain('page-battery-0');
    // Rows are ordered by device id (random UUIDs), so each battery is found by its name.
    expect(await site.locator('tbody tr', { hasText: 'page-battery-0' }).locator('td.soe').textContent()).toBe('55.0');
    expect(await site.locator('tbody tr', { hasText: 'page-battery-1' }).locator('td.soe').textContent()).toBe('56.0');

    const dispatch = createClient(DispatchService, createGrpcTransport({ baseUrl: t.baseUrl, interceptors: [admin] }));
    await dispatch.submitDispatch({
      requestId: 'page-dispatch',
      target: { case: 'site', value: 'page-site' },
      intervals: [
        {
          startTime: timestampFromMs(Date.now() - 1_000),
          endTime: timestampFromMs(Date.now() + 120_000),
          command: { case: 'powerKw', value: 80 },
        },
      ],
    });
    await expect.poll(() => site.locator('td.source.DISPATCH').count(), { timeout: 10_000 }).toBe(2);
    // 80 kW split by headroom weighted by room to the minimum SoE: battery 1 (56 %) has a
    // little more room than battery 0 (55 %), so it takes a little more.
    const target = async (name: string) => Number(await site.locator('tbody tr', { hasText: name }).locator('td.target').textContent());
    await expect
      .poll(async () => (await target('page-battery-0')) + (await target('page-battery-1')), { timeout: 10_000 })
      .toBeCloseTo(80, 1);
    const [first, second] = [await target('page-battery-0'), await target('page-battery-1')];
    expect(first).toBeGreaterThan(39);
    expect(second).toBeGreaterThan(first);
    expect(await site.locator('ul.events').textContent()).toMatch(new RegExp(`${second.toFixed(1).replace('.', '\\.')} kW DISPATCH`));
    expect(await page.locator('#status').getAttribute('class')).toBe('');
    // Each battery's line in the chart takes its colour from the style sheet.
    expect(
      await page.evaluate<string>(`getComputedStyle(document.querySelector('section[data-site="page-site"] .chart polyline')).stroke`),
    ).toMatch(/^rgb\(/);
    expect(await violations()).toEqual([]);
    await page.close();
  });

  it('shows every site of a token bound to several, and nothing of the others', async () => {
    const { page, violations } = await watchedPage(browser);
    await page.goto(`${t.baseUrl}/#token=${twoSites}`);
    await expect.poll(() => page.locator('section[data-site="page-site-2"] tbody tr').count(), { timeout: 10_000 }).toBe(1);
    await expect.poll(() => page.locator('section[data-site="page-site"] tbody tr').count(), { timeout: 10_000 }).toBe(2);
    expect(await page.locator('section.site').evaluateAll((sections) => sections.map((s) => s.getAttribute('data-site')))).toEqual([
      'page-site',
      'page-site-2',
    ]);
    expect(await page.locator('#status').getAttribute('class')).toBe('');
    expect(await violations()).toEqual([]);
    await page.close();
  });

  it('asks for a token when it has none and shows the fleet once one is given', async () => {
    const { page, violations } = await watchedPage(browser);
    await page.goto(t.baseUrl);
    await expect.poll(() => page.locator('#login').isVisible(), { timeout: 10_000 }).toBe(true);
    expect(await page.locator('#status').textContent()).toContain('credentials required');
    expect(await page.locator('section.site').count()).toBe(0);
    await page.fill('#token', viewer);
    await page.click('#login button');
    await expect.poll(() => page.locator('section[data-site="page-site"] tbody tr').count(), { timeout: 10_000 }).toBe(2);
    expect(await page.locator('#login').isVisible()).toBe(false);
    expect(await violations()).toEqual([]);
    await page.close();
  });
});
