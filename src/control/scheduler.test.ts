import { describe, expect, it } from 'vitest';
import { createLogger } from '../logger.ts';
import { createFakeClock, settle, type FakeClock } from '../clock.fixtures.ts';
import { BOUNDARY_MARGIN_MS, MAX_BOUNDARY_DELAY_MS, startScheduler, type Scheduler } from './scheduler.ts';

interface Run {
  site: string;
  done(): void;
  fail(err: Error): void;
}

/** A scheduler on a fake clock whose plans end when the test says. */
function setUp(options: { sites?: () => Promise<Iterable<string>>; periodMs?: number } = {}) {
  const clock: FakeClock = createFakeClock();
  const runs: Run[] = [];
  const logged: Array<{ msg: string; site?: string; err?: string }> = [];
  let periods = 0;
  let listings = 0;
  const log = createLogger('info', { write: (line: string) => void logged.push(JSON.parse(line) as { msg: string }) });
  const scheduler: Scheduler = startScheduler({
    plan: (site) => new Promise<void>((resolve, reject) => runs.push({ site, done: resolve, fail: reject })),
    sites:
      options.sites ??
      (() => {
        listings++;
        return Promise.resolve(['a', 'b']);
      }),
    onPeriod: () => void periods++,
    periodMs: options.periodMs ?? 4_000,
    clock,
    now: () => new Date(clock.now()),
    log,
  });
  return {
    clock,
    runs,
    logged,
    scheduler,
    periods: () => periods,
    listings: () => listings,
    /** Ends every run in flight. */
    finishAll: async () => {
      for (const run of runs.splice(0)) run.done();
      await settle();
    },
  };
}

describe('scheduler', () => {
  it('plans every listed site at once, then again every period after the period hook', async () => {
    const t = setUp();
    await settle();
    expect(t.runs.map((r) => r.site)).toEqual(['a', 'b']);
    expect(t.periods()).toBe(0);
    await t.finishAll();
    await t.clock.advance(3_999);
    expect(t.runs).toHaveLength(0);
    await t.clock.advance(1);
    expect(t.periods()).toBe(1);
    expect(t.runs.map((r) => r.site)).toEqual(['a', 'b']);
    await t.finishAll();
    t.scheduler.stop();
  });

  it('runs the period hook on time while planning hangs, and starts the next period only after it', async () => {
    const t = setUp();
    await settle();
    await t.clock.advance(8_000);
    expect(t.periods()).toBe(2);
    expect(t.listings()).toBe(1);
    expect(t.runs).toHaveLength(2);
    await t.finishAll();
    // Both periods that waited now run, one after the other.
    expect(t.listings()).toBe(2);
    await t.finishAll();
    expect(t.listings()).toBe(3);
    await t.finishAll();
    t.scheduler.stop();
  });

  it('plans a site poked during its planning once more afterwards, however many pokes came', async () => {
    const t = setUp({ sites: () => Promise.resolve([]) });
    const first = t.scheduler.schedule('a');
    const second = t.scheduler.schedule('a');
    void t.scheduler.schedule('a');
    expect(second).toBe(first);
    expect(t.runs).toHaveLength(1);
    t.runs.shift()!.done();
    await first;
    await settle();
    expect(t.runs.map((r) => r.site)).toEqual(['a']);
    await t.finishAll();
    expect(t.runs).toHaveLength(0);
    t.scheduler.stop();
  });

  it('logs a failed planning with its site and goes on', async () => {
    const t = setUp({ sites: () => Promise.resolve([]) });
    const run = t.scheduler.schedule('a');
    t.runs.shift()!.fail(new Error('database down'));
    await run;
    expect(t.logged).toContainEqual(expect.objectContaining({ msg: 'planning failed', site: 'a', err: 'database down' }));
    void t.scheduler.schedule('a');
    expect(t.runs).toHaveLength(1);
    await t.finishAll();
    t.scheduler.stop();
  });

  it('logs a period whose site listing failed and plans at the next period', async () => {
    let calls = 0;
    const t = setUp({ sites: () => (++calls === 1 ? Promise.reject(new Error('registry down')) : Promise.resolve(['a'])) });
    await settle();
    expect(t.logged).toContainEqual(expect.objectContaining({ msg: 'control period failed', err: 'registry down' }));
    expect(t.runs).toHaveLength(0);
    await t.clock.advance(4_000);
    expect(t.runs.map((r) => r.site)).toEqual(['a']);
    await t.finishAll();
    t.scheduler.stop();
  });

  it('plans a site just after its next boundary, and only at the latest boundary given', async () => {
    const t = setUp({ sites: () => Promise.resolve([]), periodMs: 60_000 });
    await settle();
    const at = (ms: number) => new Date(t.clock.now() + ms);
    t.scheduler.boundary('a', at(1_000));
    t.scheduler.boundary('a', at(2_000));
    await t.clock.advance(2_000 + BOUNDARY_MARGIN_MS - 1);
    expect(t.runs).toHaveLength(0);
    await t.clock.advance(1);
    expect(t.runs.map((r) => r.site)).toEqual(['a']);
    await t.finishAll();
    // A boundary already past plans at once; none, or one beyond a day, leaves no timer.
    t.scheduler.boundary('b', at(-500));
    await t.clock.advance(BOUNDARY_MARGIN_MS);
    expect(t.runs.map((r) => r.site)).toEqual(['b']);
    await t.finishAll();
    const periodTimerOnly = t.clock.pending();
    t.scheduler.boundary('c', at(1_000));
    expect(t.clock.pending()).toBe(periodTimerOnly + 1);
    t.scheduler.boundary('c', undefined);
    expect(t.clock.pending()).toBe(periodTimerOnly);
    t.scheduler.boundary('c', at(MAX_BOUNDARY_DELAY_MS));
    expect(t.clock.pending()).toBe(periodTimerOnly);
    t.scheduler.stop();
  });

  it(
    'stops: no more periods, boundaries or pokes; a poke that came during planning is not run; ' + 'idle waits for planning in flight',
    async () => {
      const t = setUp();
      await settle();
      t.scheduler.boundary('a', new Date(t.clock.now() + 1_000));
      void t.scheduler.schedule('a');
      t.scheduler.stop();
      expect(t.clock.pending()).toBe(0);
      void t.scheduler.schedule('c');
      let idle = false;
      const idled = t.scheduler.idle().then(() => (idle = true));
      await settle();
      expect(idle).toBe(false);
      await t.finishAll();
      await idled;
      await t.clock.advance(10_000);
      expect(t.runs).toHaveLength(0);
      expect(t.periods()).toBe(0);
    },
  );
});
