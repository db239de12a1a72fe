/**
 * Takes docs/images/console.png (`npm run docs:screenshot`): runs the demo in this process
 * on a free port, opens the console link it prints in Chromium (Debian's, at
 * /usr/bin/chromium, as the tests use) at 1920×1080, and saves the screen 45 s into the
 * story, when every site has some history, an instruction has run its course and another
 * was cancelled. The demo then stops as after Ctrl-C.
 */
import { chromium } from 'playwright-core';
import { runDemo } from '../src/demo/demo.ts';
import { createLogger } from '../src/logger.ts';

const CHROMIUM = '/usr/bin/chromium';
const TARGET = new URL('../docs/images/console.png', import.meta.url);
const AFTER_MS = 45_000;

const stop = new AbortController();
let link: string | undefined;
const demo = runDemo({
  quick: false,
  listen: '127.0.0.1:0',
  out: (text) => {
    link ??= /(http:\/\/\S+\/#token=[^\s)]+)/.exec(text)?.[1];
  },
  redraw: false,
  log: createLogger('warn'),
  signal: stop.signal,
});
try {
  for (let i = 0; !link; i++) {
    if (i > 600) throw new Error('the demo printed no console link within a minute');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const started = Date.now();
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu'] });
  try {
    const page = await browser.newPage({ viewport: { width: 1920, height: 1080 } });
    await page.goto(link);
    await page.waitForSelector('section.site svg.chart-svg', { timeout: 30_000 });
    await page.waitForTimeout(Math.max(0, started + AFTER_MS - Date.now()));
    await page.screenshot({ path: TARGET.pathname });
    console.log(`wrote ${TARGET.pathname}`);
  } finally {
    await browser.close();
  }
} finally {
  stop.abort();
  await demo;
}
