import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { fromBinary } from '@bufbuild/protobuf';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { timestampFromMs, timestampMs } from '@bufbuild/protobuf/wkt';
import { createAgent, type Agent } from '../../src/agent/agent.ts';
import { BESS_DATUM_SOURCE_ID } from '../../src/agent/reading-messages.ts';
import { openSpool } from '../../src/agent/spool.ts';
import { ReadingBatchSchema } from '../../gen/powerplane/v1/telemetry_pb.ts';
import { apiAt } from '../support/api.ts';
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

  beforeAll(async () => {
    site = await startSite();
  });
  afterEach(async () => {
    await Promise.all(agents.splice(0).map((a) => a.stop()));
    site.proxy.restore();
  });
  afterAll(async () => {
    await site?.close();
  });

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
    const [bess] = await db.withSession((s) =>
      s.query<{ soe: number; command_source: number; n: number }>(
        'select min(soe) as soe, min(command_source)::int as command_source, count(*)::int as n ' +
          'from flux.mg_bess_readings where device_id = $1',
        [site.bessIds[0]],
      ),
    );
    expect(bess!.n).toBeGreaterThan(0);
    expect(bess!.soe).toBeGreaterThan(0);
    expect(bess!.soe).toBeLessThanOrEqual(100);
    // The simulated battery is under its own control (SunSpec LocRemCtl = 1) until written to.
    expect([1, 2]).toContain(bess!.command_source);
    const [meter] = await db.withSession((s) =>
      s.query<{ n: number; p: number | null }>(
        'select count(*)::int as n, max(power_total_active) as p from flux.mg_meter_readings where device_id = $1',
        [site.meterId],
      ),
    );
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
    await waitFor(
      'a backlog of spooled batches during the outage',
      () => agent.stats().spool.pendingBatches >= 8 && agent.stats().readings - atCut >= 40,
    );
    expect(agent.stats().stream.connected).toBe(false);
    const storedDuringOutage = (await storedRows(site)).rows;

    site.proxy.restore();
    await waitFor(
      'the backlog drained',
      async () => agent.stats().spool.pendingBatches === 0 && (await storedRows(site)).rows > storedDuringOutage,
    );
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
    await waitFor(
      'the backlog and new readings stored',
      async () => (await storedRows(site)).rows - before.rows >= firstStats.readings + 15,
    );
    await second.stop({ drainMs: 5000 });

    const secondStats = second.stats();
    const after = await storedRows(site);
    expect(secondStats.spool.pendingBatches).toBe(0);
    expect(after.rows - before.rows).toBe(firstStats.readings + secondStats.readings);
    expect(after.distinct).toBe(after.rows);
  });

  it("sends each SunSpec battery poll's extra values as a datum stream readable with ListDatumReadings", async () => {
    // Earlier tests' agents (all stopped) polled before this instant.
    const from = Date.now();
    const agent = newAgent(path.join(site.dir, 'spool-datum'));
    await agent.start();
    await waitFor('datum readings of both batteries', () => agent.stats().datumReadings >= 10);
    await agent.stop({ drainMs: 5000 });
    const stats = agent.stats();
    expect(stats.spool.pendingBatches).toBe(0);
    expect(stats.readingsLost).toBe(0);

    const api = apiAt(site.t.baseUrl);
    const range = { startTime: timestampFromMs(from), endTime: timestampFromMs(Date.now() + 1000) };
    const listed = await Promise.all(
      site.bessIds.map((deviceId) => api.readings.listDatumReadings({ deviceId, sourceId: BESS_DATUM_SOURCE_ID, range, pageSize: 10_000 })),
    );
    // One datum reading per battery poll, each stored once.
    expect(listed.reduce((n, r) => n + r.datumReadings.length, 0)).toBe(stats.datumReadings);

    const readings = listed[0]!.datumReadings;
    expect(readings.length).toBeGreaterThan(0);
    const soeAt = new Map(
      (
        await site.t.server.database.withSession((s) =>
          s.query<{ ms: string; soe: number }>(
            `select (extract(epoch from time) * 1000)::bigint::text as ms, soe
             from flux.mg_bess_readings where device_id = $1 and time >= to_timestamp($2 / 1000.0)`,
            [site.bessIds[0], from],
          ),
        )
      ).map((r) => [Number(r.ms), r.soe]),
    );
    // The simulator's battery: 50 Hz, SoC limits 5–95 %, 100 kW both ways, identity from model 1.
    for (const d of readings) {
      const ms = timestampMs(d.time!);
      const i = d.instantaneous;
      expect(i).toMatchObject({
        frequency_hz: 50,
        soc_max_percent: 95,
        soc_min_percent: 5,
        charge_rate_max_kw: 100,
        discharge_rate_max_kw: 100,
      });
      expect(Object.keys(i).sort()).toEqual([
        'charge_rate_max_kw',
        'discharge_rate_max_kw',
        'energy_available_kwh',
        'frequency_hz',
        'heartbeat',
        'soc_max_percent',
        'soc_min_percent',
      ]);
      // Heartbeat: the simulator's seconds counter (mod 65534), read in the same poll.
      expect(Number.isInteger(i.heartbeat)).toBe(true);
      const beat = (i.heartbeat! - (Math.floor(ms / 1000) % 0xfffe) + 0xfffe) % 0xfffe;
      expect(Math.min(beat, 0xfffe - beat)).toBeLessThanOrEqual(2);
      expect(d.status).toEqual({
        manufacturer: 'Powerplane',
        model: 'SimBESS',
        serial_number: `BESS-${site.sim.bess[0]!.endpoint.unitId}`,
      });
      expect(d.accumulating).toEqual({});
      // Same poll as a battery reading: available energy is (SoE − 5 %) of 200 kWh, to the registers' resolution.
      const soe = soeAt.get(ms);
      expect(soe).toBeDefined();
      expect(Math.abs(i.energy_available_kwh! - ((soe! - 5) / 100) * 200)).toBeLessThanOrEqual(0.25);
    }
  });

  it('spools datum readings in the same batches as the battery readings, never over batch.maxReadings in all', async () => {
    const spoolDir = path.join(site.dir, 'spool-datum-batches');
    site.proxy.cut();
    const agent = newAgent(spoolDir);
    await agent.start();
    await waitFor('a backlog in the spool', () => agent.stats().spool.pendingBatches >= 6);
    await agent.stop();
    const stats = agent.stats();

    const spool = await openSpool({ dir: spoolDir, maxBytes: 8 * 1024 * 1024 });
    try {
      let after = 0n;
      let readings = 0;
      let datum = 0;
      const bessKeys = new Set<string>();
      const datumKeys: string[] = [];
      for (let i = 0; i < 10_000; i++) {
        const record = await spool.next(after);
        if (!record) break;
        after = record.sequence;
        const batch = fromBinary(ReadingBatchSchema, record.payload);
        const size = batch.meterReadings.length + batch.bessReadings.length + batch.datumReadings.length;
        // The helper's site config closes batches at 6 readings.
        expect(size).toBeLessThanOrEqual(6);
        readings += size;
        datum += batch.datumReadings.length;
        for (const b of batch.bessReadings) bessKeys.add(`${b.deviceId}|${timestampMs(b.time!)}`);
        for (const d of batch.datumReadings) datumKeys.push(`${d.deviceId}|${timestampMs(d.time!)}`);
      }
      expect(datum).toBe(stats.datumReadings);
      expect(datum).toBeGreaterThan(0);
      // Each datum reading has the battery reading of its poll (same device, same time).
      expect(datumKeys.filter((k) => !bessKeys.has(k))).toEqual([]);
      expect(readings).toBe(stats.readingsSpooled);
      expect(readings).toBe(stats.readings + stats.datumReadings);
    } finally {
      await spool.close();
    }
  });
});
