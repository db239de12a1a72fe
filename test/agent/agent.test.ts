import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createAgent, type Agent } from '../../src/agent/agent.ts';
import { silentLog } from '../support/databases.ts';
import { startSite, storedRows, waitFor, type Site } from './helpers.ts';

const FAST = { backoff: { initialMs: 50, maxMs: 400 }, ackTimeoutMs: 10_000 };

describe('edge agent against a real control plane and simulated site', () => {
  let site: Site;
  const agents: Agent[] = [];
  const newAgent = (spoolDir: string): Agent => {
    const agent = createAgent(site.config(spoolDir), { log: silentLog, stream: FAST, modbusTimeoutMs: 500 });
    agents.push(agent);
    return agent;
  };

  beforeAll(async () => { site = await startSite(); });
  afterEach(async () => {
    await Promise.all(agents.splice(0).map((a) => a.stop()));
    site.proxy.restore();
  });
  afterAll(async () => { await site?.close(); });

  it('streams polled meter and battery readings into the control plane, which stores them', async () => {
    const before = await storedRows(site);
    const agent = newAgent(path.join(site.dir, 'spool-b'));
    await agent.start();
    await waitFor('30 readings stored', async () => (await storedRows(site)).rows - before.rows >= 30);
    await agent.stop({ drainMs: 5000 });
    const stats = agent.stats();
    const after = await storedRows(site);
    expect(stats.pollErrors).toBe(0);
    expect(after.rows - before.rows).toBe(stats.readings);
    expect(stats.spool.pendingBatches).toBe(0);

    const db = site.t.server.database;
    const [bess] = await db.withSession((s) => s.query<{ soe: number; command_source: number; n: number }>(
      'select min(soe) as soe, min(command_source)::int as command_source, count(*)::int as n from flux.mg_bess_readings where device_id = $1', [site.bessIds[0]]));
    expect(bess!.n).toBeGreaterThan(0);
    expect(bess!.soe).toBeGreaterThan(0);
    expect(bess!.soe).toBeLessThanOrEqual(100);
    // The simulated battery is under its own control (SunSpec LocRemCtl = 1) until written to.
    expect([1, 2]).toContain(bess!.command_source);
    const [meter] = await db.withSession((s) => s.query<{ n: number; p: number | null }>(
      'select count(*)::int as n, max(power_total_active) as p from flux.mg_meter_readings where device_id = $1', [site.meterId]));
    expect(meter!.n).toBeGreaterThan(0);
    expect(meter!.p).not.toBeNull();
  });

  it('keeps polling and spooling while the control plane is unreachable, then stores every reading exactly once', async () => {
    const before = await storedRows(site);
    const spoolDir = path.join(site.dir, 'spool-c');
    const agent = newAgent(spoolDir);
    await agent.start();
    await waitFor('first acks', () => agent.stats().stream.acks >= 2);

    site.proxy.cut();
    const atCut = agent.stats().readings;
    await waitFor('a backlog of spooled batches during the outage', () => agent.stats().spool.pendingBatches >= 8 && agent.stats().readings - atCut >= 40);
    expect(agent.stats().stream.connected).toBe(false);
    const storedDuringOutage = (await storedRows(site)).rows;

    site.proxy.restore();
    await waitFor('the backlog drained', async () => agent.stats().spool.pendingBatches === 0 && (await storedRows(site)).rows > storedDuringOutage);
    await agent.stop({ drainMs: 5000 });

    const stats = agent.stats();
    const after = await storedRows(site);
    expect(stats.spool.pendingBatches).toBe(0);
    expect(stats.spool.droppedBatches).toBe(0);
    expect(stats.stream.sessions).toBeGreaterThan(1);
    expect(after.rows - before.rows).toBe(stats.readings);
    expect(after.distinct).toBe(after.rows);
    // Every spooled segment but the newest is gone once acknowledged.
    expect((await readdir(spoolDir)).filter((f) => f.endsWith('.seg'))).toHaveLength(1);
  });

  it('loses nothing when the agent is restarted in the middle of a spool backlog', async () => {
    const before = await storedRows(site);
    const spoolDir = path.join(site.dir, 'spool-d');
    site.proxy.cut();
    const first = newAgent(spoolDir);
    await first.start();
    await waitFor('a backlog in the spool', () => first.stats().spool.pendingBatches >= 6);
    await first.stop();
    const firstStats = first.stats();
    expect(firstStats.spool.pendingBatches).toBe(firstStats.batchesSpooled);
    expect((await storedRows(site)).rows).toBe(before.rows);

    site.proxy.restore();
    const second = newAgent(spoolDir);
    await second.start();
    // The backlog is replayed and new batches continue the sequence.
    expect(second.stats().spool.nextSequence).toBe(firstStats.spool.nextSequence);
    await waitFor('the backlog and new readings stored', async () => (await storedRows(site)).rows - before.rows >= firstStats.readings + 15);
    await second.stop({ drainMs: 5000 });

    const secondStats = second.stats();
    const after = await storedRows(site);
    expect(secondStats.spool.pendingBatches).toBe(0);
    expect(after.rows - before.rows).toBe(firstStats.readings + secondStats.readings);
    expect(after.distinct).toBe(after.rows);
  });
});
