import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAgent } from '../../src/agent/agent.ts';
import { toConfig } from '../../src/config.ts';
import { silentLog } from '../support/databases.ts';
import { startSite, storedRows, waitFor, type Site } from './helpers.ts';

const base = toConfig({ listen: '127.0.0.1:0' });

describe('an edge agent under a tight ingest rate limit', () => {
  let site: Site;

  beforeAll(async () => {
    // 100 readings a second against a site that makes about 50 (a meter and two batteries
    // polled every 100 ms, each battery poll also a datum reading), so the agent can keep
    // up; bursts of 12, two of its batches, so a replayed backlog is refused at once (the
    // server reads four batches of a stream ahead).
    site = await startSite({ telemetry: { ...base.telemetry, ingestReadingsPerS: 100, ingestBurst: 12, maxBatchReadings: 12 } });
  });
  afterAll(async () => {
    await site?.close();
  });

  // Bounded: each wait has its own limit, and the whole test two minutes (a loaded machine polls slowly).
  it('backs off for the retry delay it is given, keeps spooling, and delivers every reading once', { timeout: 120_000 }, async () => {
    const before = await storedRows(site);
    const agent = createAgent(site.config(path.join(site.dir, 'spool-limited')), {
      log: silentLog,
      stream: { backoff: { initialMs: 50, maxMs: 400 }, ackTimeoutMs: 10_000 },
      modbusTimeoutMs: 500,
    });
    try {
      // A backlog from an outage, more than the burst: the replay must be refused.
      site.proxy.cut();
      await agent.start();
      await waitFor('a backlog of 20 batches in the spool', () => agent.stats().spool.pendingBatches >= 20);
      site.proxy.restore();
      await waitFor('a refusal of the replay', () => agent.stats().stream.throttled >= 1);
      const atRefusal = agent.stats().readings;

      // The agent goes on polling while it waits to be admitted.
      await waitFor('new readings polled after the refusal', () => agent.stats().readings >= atRefusal + 30);
      // Then the site goes quiet, so the spool can empty for good.
      await site.sim.pause();
      // A poll that read before the pause may still spool a batch: drained means nothing is
      // pending and no reading has been polled for a second.
      let polled = agent.stats().readings;
      let quietSince = Date.now();
      await waitFor(
        'the spool drained and polling quiet',
        () => {
          const now = agent.stats();
          if (now.readings !== polled) [polled, quietSince] = [now.readings, Date.now()];
          return now.spool.pendingBatches === 0 && Date.now() - quietSince >= 1_000;
        },
        60_000,
      );
      await agent.stop({ drainMs: 5_000 });
    } finally {
      await agent.stop();
      await site.sim.restart();
    }

    const stats = agent.stats();
    const after = await storedRows(site);
    expect(stats.stream.throttled).toBeGreaterThanOrEqual(1);
    // The delay came from RetryInfo to the millisecond (a batch of at most 6 readings at 100
    // a second waits at most 60 ms), not from retry-after's whole seconds.
    expect(stats.stream.lastRetryAfterMs).toBeGreaterThan(0);
    expect(stats.stream.lastRetryAfterMs).toBeLessThan(1_000);
    expect(stats.spool.pendingBatches).toBe(0);
    expect(stats.spool.droppedBatches).toBe(0);
    expect(stats.readingsLost).toBe(0);
    // Every meter and battery reading polled is stored, none twice.
    expect(after.rows - before.rows).toBe(stats.readings);
    expect(after.distinct).toBe(after.rows);
  });
});
