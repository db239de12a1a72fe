/**
 * Takes docs/images/console.png (`npm run docs:screenshot`): runs the demo in this process
 * on a free port, opens the console link it prints in Chromium (Debian's, at
 * /usr/bin/chromium, as the tests use) at 1920×1080, and saves the screen early in the
 * story's last step, when every site has some history, an instruction has run its course,
 * another was cancelled and the charts have been read again. The demo then stops as after
 * Ctrl-C.
 */
import { chromium } from 'playwright-core';
import { runDemo } from '../src/demo/demo.ts';
import { createLogger } from '../src/logger.ts';

const CHROMIUM = '/usr/bin/chromium';
const TARGET = new URL('../docs/images/console.png', import.meta.url);
/** The story step whose end the screenshot waits for (the demo prints `[5/6] …` then), and how long after. */
const AFTER_STEP = 5;
const AFTER_MS = 4_000;

const stop = new AbortController();
let link: string | undefined;
let stepsEnded = 0;
const demo = runDemo({
  quick: false,
  listen: '127.0.0.1:0',
  out: (text) => {
    link ??= /(http:\/\/\S+\/#token=[^\s)]+)/.exec(text)?.[1];
    stepsEnded = Math.max(stepsEnded, Number(/^\[(\d+)\//m.exec(text)?.[1] ?? 0));
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
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu'] });
  try {
    const page = await browser.newPage({ viewport: { width: 1920, height: 1080 } });
    await page.goto(link);
    await page.waitForSelector('section.site svg.chart-svg', { timeout: 30_000 });
    for (let i = 0; stepsEnded < AFTER_STEP; i++) {
      if (i > 1_200) throw new Error(`the demo did not end step ${AFTER_STEP} within two minutes`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await page.waitForTimeout(AFTER_MS);
    if ((await page.locator('#status').getAttribute('class')) === 'error') {
      throw new Error(`the console shows an error, so no screenshot: ${await page.locator('#status').textContent()}`);
    }
    await page.screenshot({ path: TARGET.pathname });
    console.log(`wrote ${TARGET.pathname}`);
  } finally {
    await browser.close();
  }
} finally {
  stop.abort();
  await demo;
}
