/**
 * `npm run bench:modbus [-- --quick]`: Modbus setpoint figures over loopback.
 *  1. baseline: a raw modbus-serial write round trip (no verify) against the simulator;
 *  2. single-device write + read-back verify latency through the setpoint writer, p50/p99;
 *  3. writes verified per second across 1000 simulated batteries (five ports), one writer each.
 * Binds 127.0.0.1 port 0 only, runs bounded loops and stops everything it starts. The last
 * line is one JSON object with the headline figures.
 */
import ModbusSerial from 'modbus-serial';
import { createModbusClient } from '../src/modbus/modbus-client.ts';
import { createSetpointWriter, type SetpointWriter } from '../src/modbus/setpoint-writer.ts';
import { discoverSunSpec } from '../src/modbus/sunspec-discovery.ts';
import { getSunSpecPoint } from '../src/modbus/sunspec-models.ts';
import type { SetpointEvent } from '../src/modbus/types.ts';
import { startSimulator } from '../src/simulator/simulator.ts';
import { percentile } from './support/stats.ts';

const quick = process.argv.includes('--quick');
const SINGLE_N = quick ? 300 : 3000;
const FLEET = 1000;
const FLEET_ROUNDS = quick ? 3 : 10;

const fmt = (n: number): string => n.toFixed(3);

async function baseline(): Promise<{ p50: number; p99: number }> {
  const sim = await startSimulator({ bess: 1, transport: 'fast' });
  const client = new ModbusSerial.default();
  try {
    const { port, unitId } = sim.bess[0]!.endpoint;
    const probe = createModbusClient({ endpoint: sim.bess[0]!.endpoint });
    const m802 = (await discoverSunSpec(probe)).find(802);
    await probe.close();
    if (!m802) throw new Error('simulated battery lacks model 802');
    const ctrlHb = m802.address + getSunSpecPoint(802, 'CtrlHb').offset;
    await client.connectTCP('127.0.0.1', { port });
    client.setID(unitId);
    client.setTimeout(1000);
    const times: number[] = [];
    for (let i = 0; i < SINGLE_N + 50; i++) {
      const t = performance.now();
      await client.writeRegisters(ctrlHb, [i % 60000]);
      if (i >= 50) times.push(performance.now() - t);
    }
    times.sort((a, b) => a - b);
    return { p50: percentile(times, 50), p99: percentile(times, 99) };
  } finally {
    await new Promise<void>((r) => client.close(() => r()));
    await sim.stop();
  }
}

function waitForSeq(waiters: Map<number, (e: SetpointEvent) => void>, seq: number): Promise<SetpointEvent> {
  return new Promise((resolve) => waiters.set(seq, resolve));
}

async function single(): Promise<{ p50: number; p99: number; failed: number }> {
  const sim = await startSimulator({ bess: 1, transport: 'fast' });
  const waiters = new Map<number, (e: SetpointEvent) => void>();
  const dev = sim.bess[0]!;
  const writer = createSetpointWriter({
    deviceKey: dev.key,
    endpoint: dev.endpoint,
    profile: { kind: 'sunspec' },
    reversionTimeoutS: 60,
    heartbeatIntervalMs: 10_000,
    onEvent: (e) => {
      if (e.phase === 'verified' || e.phase === 'dropped' || (e.phase === 'failed' && !e.willRetry)) waiters.get(e.seq)?.(e);
    },
  });
  const times: number[] = [];
  let failed = 0;
  try {
    for (let i = 1; i <= SINGLE_N + 50; i++) {
      const done = waitForSeq(waiters, i);
      writer.setTarget((i % 100) - 50);
      const e = await done;
      waiters.delete(i);
      if (e.phase !== 'verified') failed++;
      else if (i > 50) times.push(e.elapsedMs);
    }
  } finally {
    await writer.stop();
    await sim.stop();
  }
  times.sort((a, b) => a - b);
  return { p50: percentile(times, 50), p99: percentile(times, 99), failed };
}

async function fleet(): Promise<{ perS: number; roundMs: number[]; connectMs: number; failed: number }> {
  const sim = await startSimulator({ bess: FLEET, transport: 'fast' });
  const writers: SetpointWriter[] = [];
  const waiters: Array<Map<number, (e: SetpointEvent) => void>> = [];
  let failed = 0;
  try {
    for (const dev of sim.bess) {
      const w = new Map<number, (e: SetpointEvent) => void>();
      waiters.push(w);
      writers.push(
        createSetpointWriter({
          deviceKey: dev.key,
          endpoint: dev.endpoint,
          profile: { kind: 'sunspec' },
          reversionTimeoutS: 60,
          heartbeatIntervalMs: 60_000,
          requestTimeoutMs: 5000,
          onEvent: (e) => {
            if (e.phase === 'verified' || e.phase === 'dropped' || (e.phase === 'failed' && !e.willRetry)) w.get(e.seq)?.(e);
          },
        }),
      );
    }
    const round = async (seq: number): Promise<number> => {
      const t = performance.now();
      const done = writers.map((writer, i) => {
        const p = waitForSeq(waiters[i]!, seq);
        writer.setTarget(((seq + i) % 100) - 50);
        return p;
      });
      for (const e of await Promise.all(done)) if (e.phase !== 'verified') failed++;
      return performance.now() - t;
    };
    const connectMs = await round(1);
    const roundMs: number[] = [];
    for (let r = 2; r <= FLEET_ROUNDS + 1; r++) roundMs.push(await round(r));
    const total = roundMs.reduce((a, b) => a + b, 0);
    return { perS: (FLEET * FLEET_ROUNDS) / (total / 1000), roundMs, connectMs, failed };
  } finally {
    await Promise.all(writers.map((w) => w.stop()));
    await sim.stop();
  }
}

const base = await baseline();
console.log(
  `baseline raw modbus-serial write round trip (no verify), ${SINGLE_N} writes: p50 ${fmt(base.p50)} ms, p99 ${fmt(base.p99)} ms`,
);
const one = await single();
console.log(
  `single device write+verify through the setpoint writer, ${SINGLE_N} setpoints: ` +
    `p50 ${fmt(one.p50)} ms, p99 ${fmt(one.p99)} ms, not verified ${one.failed}`,
);
const many = await fleet();
console.log(
  `fleet of ${FLEET} batteries on 5 ports: first round incl. connect+discover+arm ${many.connectMs.toFixed(1)} ms; ` +
    `${FLEET_ROUNDS} rounds ${many.roundMs.map((r) => r.toFixed(1)).join(', ')} ms; not verified ${many.failed}`,
);
console.log(`fleet verified writes per second: ${many.perS.toFixed(0)}`);
console.log(
  JSON.stringify({
    write_verify_p50_ms: Number(fmt(one.p50)),
    write_verify_p99_ms: Number(fmt(one.p99)),
    fleet_verified_per_s: Math.round(many.perS),
  }),
);
