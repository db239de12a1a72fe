import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SetpointPhase, type SetpointEvent } from '../../gen/powerplane/v1/dispatch_pb.ts';
import { toConfig } from '../../src/config.ts';
import { startSimulator, type Simulator } from '../../src/simulator/simulator.ts';
import { registerBattery } from '../support/fleet.ts';
import { startTestServer, type TestServer } from '../support/server.ts';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.ts';
import { waitFor } from '../support/wait.ts';
import { apiAt, reportBatteries, writesTo, type Api } from '../support/api.ts';

const CONTROL_PERIOD_MS = 300;

/** The low register of an int32 `WSet` in W: what a write of `kw` carries (WSet_SF 0). */
const wsetLow = (kw: number) => (kw * 1_000) & 0xffff;

interface StoredEvent {
  setpoint_id: string;
  phase: string;
  target_power_kw: number;
  reason: string | null;
  at: Date;
}

describe('a battery unreachable, then back', () => {
  let sim: Simulator;
  let proxy: TcpProxy;
  let t: TestServer;
  let api: Api;

  beforeAll(async () => {
    sim = await startSimulator({ bess: 1 });
    // The control plane reaches the battery only through the fault proxy.
    proxy = await startTcpProxy({ host: '127.0.0.1', port: sim.bess[0]!.endpoint.port });
    const defaults = toConfig({});
    t = await startTestServer('pglite', {
      dispatch: {
        ...defaults.dispatch,
        controlPeriodMs: CONTROL_PERIOD_MS,
        heartbeatIntervalMs: 200,
        modbusTimeoutMs: 250,
        maxTelemetryAgeMs: 120_000,
      },
    });
    api = apiAt(t.baseUrl);
  });
  afterAll(async () => {
    await t?.stop();
    await proxy?.close();
    await sim?.stop();
  });

  it('records the failures, retries boundedly, and afterwards writes the latest setpoint, never a stale one', async () => {
    const battery = sim.bess[0]!;
    const id = await registerBattery(api.registry, 'unreachable', 'bess-u', { ...battery.endpoint, port: proxy.port });
    await reportBatteries(api, [id], 1);
    const watch = new AbortController();
    const watched: SetpointEvent[] = [];
    const watching = (async () => {
      try {
        for await (const res of api.dispatch.watchSetpoints({ deviceId: id }, { signal: watch.signal })) watched.push(...res.events);
      } catch {
        // ended by the abort below
      }
    })();
    const submit = (requestId: string, kw: number) =>
      api.dispatch.submitDispatch({
        requestId,
        target: { case: 'deviceId', value: id },
        intervals: [
          {
            startTime: timestampFromMs(Date.now() - 1_000),
            endTime: timestampFromMs(Date.now() + 300_000),
            command: { case: 'powerKw', value: kw },
          },
        ],
      });
    try {
      await submit('reachable-30', 30);
      await waitFor('30 kW on the battery', () => battery.state().wsetW === 30_000 && battery.state().wsetEna === 1);

      // The link goes silent: requests vanish, nothing answers, nothing is closed.
      proxy.blackhole();
      const outageFrom = Date.now();
      await submit('unreachable-40', 40);
      await waitFor('the 40 kW setpoint planned', () => watched.some((e) => e.targetPowerKw === 40 && e.phase === SetpointPhase.PLANNED));
      // Superseded while the battery is still unreachable: 40 kW is stale from here on.
      await submit('unreachable-minus-20', -20);
      await waitFor(
        'two failed attempts at -20 kW, a control period apart',
        () => watched.filter((e) => e.targetPowerKw === -20 && e.phase === SetpointPhase.FAILED).length >= 2,
        20_000,
      );
      expect(battery.state().wsetW).toBe(30_000);

      proxy.heal();
      const outageTo = Date.now();
      await waitFor('-20 kW on the battery', () => battery.state().wsetW === -20_000 && battery.state().wsetEna === 1, 20_000);
      await waitFor('-20 kW verified', () => watched.some((e) => e.targetPowerKw === -20 && e.phase === SetpointPhase.VERIFIED));

      // The stale setpoint never reached the battery, not even late; the first setpoint
      // written after the outage is the latest one.
      const writes = writesTo(sim, battery);
      expect(writes.filter((w) => w.values.includes(wsetLow(40)))).toEqual([]);
      const afterOutage = writes.filter((w) => w.time.getTime() >= outageTo);
      const firstSetpoint = afterOutage.find((w) => w.values.includes(wsetLow(-20)) || w.values.includes(wsetLow(30)));
      expect(firstSetpoint?.values).toContain(wsetLow(-20));
      expect(proxy.stats().swallowedBytes).toBeGreaterThan(0);

      // The failures are in the audit table, with their reason.
      const events = await t.server.database.withSession((s) =>
        s.query<StoredEvent>(
          'select setpoint_id::text, phase, target_power_kw, reason, at from powerplane.setpoint_events where device_id = $1 order by id',
          [id],
        ),
      );
      const failed = events.filter((e) => e.phase === 'FAILED');
      expect(failed.filter((e) => e.target_power_kw === -20).length).toBeGreaterThanOrEqual(2);
      expect(failed.every((e) => (e.reason ?? '').length > 0)).toBe(true);
      // Bounded: a setpoint fails once, after the writer's own few retries, and is never
      // touched again; a new attempt is a new setpoint, at most one per control period.
      const bySetpoint = new Map<string, string[]>();
      for (const e of events) bySetpoint.set(e.setpoint_id, [...(bySetpoint.get(e.setpoint_id) ?? []), e.phase]);
      for (const phases of bySetpoint.values()) {
        expect(phases.filter((p) => p === 'FAILED').length).toBeLessThanOrEqual(1);
        if (phases.includes('FAILED')) expect(phases.slice(phases.indexOf('FAILED') + 1)).toEqual([]);
      }
      const plannedInOutage = events.filter(
        (e) => e.phase === 'PLANNED' && e.at.getTime() >= outageFrom && e.at.getTime() <= outageTo,
      ).length;
      expect(plannedInOutage).toBeLessThanOrEqual(Math.ceil((outageTo - outageFrom) / CONTROL_PERIOD_MS) + 3);
      // The 40 kW setpoint ended without a write: failed or dropped (EXPIRED), never VERIFIED.
      const forty = events.filter((e) => e.target_power_kw === 40).map((e) => e.phase);
      expect(forty).toContain('PLANNED');
      expect(forty).not.toContain('WRITTEN');
      expect(forty).not.toContain('VERIFIED');
    } finally {
      proxy.heal();
      watch.abort();
      await watching;
    }
  });
});
