import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator, type Simulator } from '../../src/simulator/simulator.ts';
import { registerBattery } from '../support/fleet.ts';
import { startServeProcess, type ServeProcess } from '../support/serve-process.ts';
import { waitFor } from '../support/wait.ts';
import { apiAt, reportBatteries, writesTo } from '../support/api.ts';

/** The battery's own fallback timer, s: short, so the test sees it fire. */
const REVERSION_TIMEOUT_S = 2;

describe('the control plane killed during an active dispatch', () => {
  let dir: string;
  let sim: Simulator;
  let serve: ServeProcess;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'pp-killed-'));
    sim = await startSimulator({ bess: 1 });
    // A real `serve` process (embedded storage, so its control loop starts at once), to be
    // killed with SIGKILL: no graceful stop, no release write, what a crash leaves behind.
    serve = await startServeProcess({
      POWERPLANE_DATA_DIR: path.join(dir, 'data'),
      POWERPLANE_CONTROL_PERIOD_MS: '300',
      POWERPLANE_HEARTBEAT_INTERVAL_MS: '200',
      POWERPLANE_MODBUS_TIMEOUT_MS: '500',
    });
  });
  afterAll(async () => {
    await serve?.stop();
    await sim?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('leaves the battery to revert on its own within its reversion timeout, with nobody writing to it', async () => {
    const api = apiAt(serve.baseUrl);
    const battery = sim.bess[0]!;
    const id = await registerBattery(api.registry, 'crash', 'bess-crash', battery.endpoint, { reversionTimeoutS: REVERSION_TIMEOUT_S });
    await reportBatteries(api, [id], 1);
    await api.dispatch.submitDispatch({
      requestId: 'crash-40',
      target: { case: 'deviceId', value: id },
      intervals: [
        {
          startTime: timestampFromMs(Date.now() - 1_000),
          endTime: timestampFromMs(Date.now() + 600_000),
          command: { case: 'powerKw', value: 40 },
        },
      ],
    });
    await waitFor('the battery driven at 40 kW under remote control', () => {
      const s = battery.state();
      return s.wsetEna === 1 && s.wsetW === 40_000 && s.locRemCtl === 0 && s.activePowerW === 40_000;
    });
    // Armed before the first setpoint: the device itself knows when to give up on us.
    expect(battery.state().wsetRvrtTms).toBe(REVERSION_TIMEOUT_S);
    const heartbeats = writesTo(sim, battery).length;
    await waitFor('heartbeats keeping the setpoint alive', () => writesTo(sim, battery).length >= heartbeats + 3, 5_000);
    const reversionsBefore = battery.state().reversions ?? 0;

    await serve.kill();
    const writesAtKill = writesTo(sim, battery).length;
    const lastWriteMs = writesTo(sim, battery).at(-1)!.time.getTime();

    // Until the timeout runs out the battery keeps the last setpoint: losing the control
    // plane is not itself a command.
    const beforeTimeout = battery.state();
    if (Date.now() < lastWriteMs + REVERSION_TIMEOUT_S * 1_000 - 200) {
      expect(beforeTimeout.wsetW).toBe(40_000);
      expect(beforeTimeout.reversions).toBe(reversionsBefore);
    }
    // Then it falls back by itself: WSetRvrt (0 W), its own control. The simulator reverts
    // exactly at the last refresh plus WSetRvrtTms, so the wait is bounded by that plus slack.
    const deadline = lastWriteMs + REVERSION_TIMEOUT_S * 1_000 + 2_000 - Date.now();
    await waitFor('the battery to revert on its own', () => (battery.state().reversions ?? 0) > reversionsBefore, Math.max(deadline, 100));
    const after = battery.state();
    expect(after.wsetW).toBe(0);
    expect(after.activePowerW).toBe(0);
    expect(after.locRemCtl).toBe(1);
    expect(writesTo(sim, battery)).toHaveLength(writesAtKill);
    expect(serve.exited()).toBe(true);
  });
});
