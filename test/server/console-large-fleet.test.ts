import net from 'node:net';
import { createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeviceRegistryService } from '../../gen/powerplane/v1/devices_pb.ts';
import { FleetService } from '../../gen/powerplane/v1/fleet_pb.ts';
import { MAX_SUMMARY_BATTERIES } from '../../src/fleet/fleet.service.ts';
import { battery } from '../../src/registry/registry.service.fixtures.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

/** Debian's chromium package; .ci/run installs it. A missing browser fails the test, never skips it. */
const CHROMIUM = '/usr/bin/chromium';
const SITES = 3;
/** One battery more than a summary lists: the page must read the fleet the way it did before summaries had rows. */
const BATTERIES = MAX_SUMMARY_BATTERIES + 1;

describe('the operator console in Chromium with more batteries than one summary lists', () => {
  let t: TestServer;
  let browser: Browser;
  /** Where every battery's Modbus endpoint points: a port on this machine that closes each connection. */
  let nowhere: net.Server;

  beforeAll(async () => {
    nowhere = net.createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => nowhere.listen(0, '127.0.0.1', resolve));
    const port = (nowhere.address() as net.AddressInfo).port;
    t = await startTestServer('pglite');
    const registry = createClient(DeviceRegistryService, createGrpcTransport({ baseUrl: t.baseUrl }));
    const devices = Array.from({ length: BATTERIES }, (_, i) =>
      battery({ site: `site-${i % SITES}`, name: `bess-${i}`, metadata: {} }, {}, { host: '127.0.0.1', port, unitId: 1 + (i % 247) }),
    );
    expect((await registry.batchUpsertDevices({ devices })).createdCount).toBe(BATTERIES);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run'] });
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await t?.stop();
    await new Promise((resolve) => nowhere?.close(resolve));
  });

  it('draws a row for every battery from the calls it made before summaries had rows, asking for rows only once', async () => {
    const fleet = createClient(FleetService, createGrpcTransport({ baseUrl: t.baseUrl }));
    const refused = await fleet.getFleetSummary({ includeBatteries: true }).then(
      () => undefined,
      (err: Error) => err.message,
    );
    expect(refused).toContain('include_batteries');

    const page = await browser.newPage({ viewport: { width: 1920, height: 1080 } });
    const problems: string[] = [];
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    const calls: string[] = [];
    const summaryBodies: string[] = [];
    page.on('request', (req) => {
      const { pathname } = new URL(req.url());
      if (!pathname.startsWith('/powerplane.v1.')) return;
      const method = pathname.split('/').pop()!;
      calls.push(method);
      if (method === 'GetFleetSummary') summaryBodies.push(req.postData() ?? '');
    });
    try {
      await page.goto(`${t.baseUrl}/`);
      const rows = () => page.locator('#sites tr[data-device]').count();
      await expect.poll(rows, { timeout: 60_000, interval: 250 }).toBe(BATTERIES);
      expect(await page.locator('section.site').count()).toBe(SITES);
      const shown = await page.locator('[data-total="batteries"]').textContent();
      expect(shown?.replace(/\D/g, '')).toBe(String(BATTERIES));
      // Two more refreshes: the rows are not asked of the summary again.
      const refreshes = () => summaryBodies.length;
      const after = refreshes();
      await expect.poll(refreshes, { timeout: 15_000, interval: 250 }).toBeGreaterThanOrEqual(after + 2);
      expect(summaryBodies.filter((b) => b.includes('includeBatteries')).length).toBe(1);
      for (const method of ['ListDevices', 'GetControlState', 'GetLatestBessState']) expect(calls, method).toContain(method);
      expect(await rows()).toBe(BATTERIES);
      expect(problems).toEqual([]);
    } finally {
      await page.close();
    }
  }, 120_000);
});
