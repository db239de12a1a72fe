import { afterEach, describe, expect, it } from 'vitest';
import { createSetpointWriter, type SetpointWriter } from '../../src/modbus/setpoint-writer.ts';
import { forgetSunSpecMaps } from '../../src/modbus/sunspec-map-cache.ts';
import type { RegisterProfile } from '../../src/modbus/types.ts';
import { SUNSPEC_BASE } from '../../src/simulator/sunspec-image.ts';
import { startSimulator, type Simulator } from '../../src/simulator/simulator.ts';
import { TESLA_HEARTBEAT_VALUES, TESLA_REGISTERS } from '../../src/modbus/tesla-profile.ts';
import { eventLog, startModbusProxy, waitFor, type ModbusProxy, type ProxiedRequest } from './helpers.ts';

let sim: Simulator | undefined;
let proxy: ModbusProxy | undefined;
const writers: SetpointWriter[] = [];

afterEach(async () => {
  await Promise.all(writers.splice(0).map((w) => w.stop()));
  await proxy?.close();
  proxy = undefined;
  await sim?.stop();
  sim = undefined;
});

function writerFor(
  device: Simulator['devices'][number],
  log: ReturnType<typeof eventLog>,
  extra: Partial<Parameters<typeof createSetpointWriter>[0]> = {},
  profile: RegisterProfile = { kind: 'sunspec' },
): SetpointWriter {
  const w = createSetpointWriter({
    deviceKey: device.key,
    endpoint: device.endpoint,
    profile,
    reversionTimeoutS: 5,
    heartbeatIntervalMs: 100,
    requestTimeoutMs: 300,
    retryBaseDelayMs: 10,
    onEvent: log.onEvent,
    ...extra,
  });
  writers.push(w);
  return w;
}

/** The same device reached through a {@link ModbusProxy} that applies `decide` to every request. */
async function behindProxy(
  device: Simulator['devices'][number],
  decide: (r: ProxiedRequest) => 'forward' | 'hold' | 'lose-answer',
): Promise<Simulator['devices'][number]> {
  proxy = await startModbusProxy(device.endpoint, decide);
  return { ...device, key: device.key, endpoint: { ...device.endpoint, port: proxy.port } };
}

/** The setpoint writes (704 WSetEna, WSetMod, WSet: four registers) the device applied, as raw WSet values. */
function appliedWSets(s: Simulator): number[] {
  return s.writeLog.filter((e) => e.values.length === 4 && e.outcome === 'applied').map((e) => e.values[3] ?? -1);
}

describe('setpoint writer against the simulator', () => {
  it('writes a setpoint, reads it back and reports it verified', async () => {
    sim = await startSimulator({ bess: 1 });
    const log = eventLog();
    const dev = sim.bess[0]!;
    writerFor(dev, log).setTarget(-42.5);
    await waitFor(() => log.has(1, 'verified'));
    expect(log.events.filter((e) => e.seq === 1).map((e) => e.phase)).toEqual(['requested', 'written', 'verified']);
    expect(dev.state()).toMatchObject({ wsetW: -42500, wsetEna: 1, locRemCtl: 0, wsetRvrtW: 0, wsetEnaRvrt: 1, wsetRvrtTms: 5 });
  });

  it('scales the setpoint by the device WSet_SF, so a device with WSet_SF 1 gets a tenth of the raw value', async () => {
    sim = await startSimulator({ bess: 1, bessConfig: () => ({ wsetSf: 1 }) });
    const log = eventLog();
    writerFor(sim.bess[0]!, log).setTarget(50);
    await waitFor(() => log.has(1, 'verified'));
    const setpointWrite = sim.writeLog.filter((w) => w.values.length === 4).at(-1);
    expect(setpointWrite?.values).toEqual([1, 1, 0, 5000]);
    expect(sim.bess[0]!.state().wsetW).toBe(50_000);
  });

  it('never reports verified when the device acknowledges a write but ignores it', async () => {
    sim = await startSimulator({ bess: 1 });
    const log = eventLog();
    sim.bess[0]!.faults.ignoreWrites = true;
    writerFor(sim.bess[0]!, log).setTarget(10);
    await waitFor(() => log.final(1) !== undefined);
    expect(log.has(1, 'verified')).toBe(false);
    expect(log.final(1)).toMatchObject({ phase: 'failed', willRetry: false });
    expect(log.final(1)?.reason).toMatch(/read-back mismatch/);
  });

  it.each([1, 2, 3])('fails without retrying on exception %i and gives the reason', async (code) => {
    sim = await startSimulator({ bess: 1 });
    const log = eventLog();
    sim.bess[0]!.faults.exceptionCode = code;
    writerFor(sim.bess[0]!, log).setTarget(10);
    await waitFor(() => log.final(1) !== undefined);
    const failures = log.events.filter((e) => e.phase === 'failed');
    expect(failures).toHaveLength(1);
    expect(failures[0]).toMatchObject({ exceptionCode: code, willRetry: false });
    expect(failures[0]?.reason).toMatch(/illegal/);
    expect(sim.writeLog.filter((w) => w.outcome === code)).toHaveLength(1);
  });

  it('reports exception 04 as a device fault without retrying', async () => {
    sim = await startSimulator({ bess: 1 });
    const log = eventLog();
    sim.bess[0]!.faults.exceptionCode = 4;
    writerFor(sim.bess[0]!, log).setTarget(10);
    await waitFor(() => log.final(1) !== undefined);
    expect(log.final(1)).toMatchObject({ phase: 'failed', exceptionCode: 4, willRetry: false });
    expect(log.final(1)?.reason).toMatch(/device fault/);
  });

  it('retries a busy device (exception 06) and verifies once it answers', async () => {
    sim = await startSimulator({ bess: 1 });
    const log = eventLog();
    Object.assign(sim.bess[0]!.faults, { exceptionCode: 6, exceptionCount: 2 });
    writerFor(sim.bess[0]!, log).setTarget(10);
    await waitFor(() => log.final(1) !== undefined);
    expect(log.events.filter((e) => e.phase === 'failed').map((e) => [e.exceptionCode, e.willRetry])).toEqual([
      [6, true],
      [6, true],
    ]);
    expect(log.final(1)?.phase).toBe('verified');
  });

  it('gives up on a gateway that never reaches the device (exception 0B) after the bounded retries', async () => {
    sim = await startSimulator({ bess: 1 });
    const log = eventLog();
    sim.bess[0]!.faults.exceptionCode = 0x0b;
    writerFor(sim.bess[0]!, log, { maxRetries: 2 }).setTarget(10);
    await waitFor(() => log.final(1) !== undefined);
    const failures = log.events.filter((e) => e.phase === 'failed');
    expect(failures.map((e) => e.willRetry)).toEqual([true, true, false]);
    expect(failures.every((e) => e.exceptionCode === 0x0b)).toBe(true);
  });

  it('drops stale setpoints so only the latest is written', async () => {
    sim = await startSimulator({ bess: 1 });
    const log = eventLog();
    const w = writerFor(sim.bess[0]!, log);
    w.setTarget(1);
    w.setTarget(2);
    w.setTarget(3);
    await waitFor(() => log.has(3, 'verified'));
    expect(log.final(1)?.phase).toBe('dropped');
    expect(log.final(2)?.phase).toBe('dropped');
    const written = sim.writeLog.filter((e) => e.values.length === 4).map((e) => e.values[3]);
    expect(written).toEqual([3000]);
  });

  it('increments 802 CtrlHb while a setpoint is active', async () => {
    sim = await startSimulator({ bess: 1 });
    const log = eventLog();
    writerFor(sim.bess[0]!, log, { heartbeatIntervalMs: 20 }).setTarget(5);
    await waitFor(() => log.has(1, 'verified'));
    await waitFor(() => (sim!.bess[0]!.state().ctrlHb ?? 0) >= 3);
    const beats = sim.writeLog.filter((e) => e.values.length === 1).map((e) => e.values[0] ?? -1);
    expect(beats.length).toBeGreaterThanOrEqual(3);
    beats.forEach((b, i) => {
      if (i > 0) expect(b).toBe((beats[i - 1] ?? 0) + 1);
    });
  });

  it('encodes a charging setpoint as signed 32 bits and toggles the Tesla-style heartbeat on every command', async () => {
    sim = await startSimulator({ bess: 0, tesla: 1 });
    const log = eventLog();
    const dev = sim.tesla[0]!;
    const w = writerFor(dev, log, { heartbeatIntervalMs: 20 }, { kind: 'tesla-powerpack' });
    w.setTarget(-25);
    await waitFor(() => log.has(1, 'verified'));
    expect(dev.state()).toMatchObject({ targetPowerW: -25_000, mode: 1, timeoutS: 5, commandSource: 1 });
    const power = sim.writeLog.find((e) => e.address === TESLA_REGISTERS.powerSetpoint);
    expect(power?.values.slice(0, 2)).toEqual([0xffff, 0x9e58]);
    await waitFor(() => sim!.writeLog.filter((e) => e.address === TESLA_REGISTERS.heartbeat).length >= 3);
    const beats = sim.writeLog.flatMap((e) =>
      e.address <= TESLA_REGISTERS.heartbeat && TESLA_REGISTERS.heartbeat < e.address + e.values.length
        ? [e.values[TESLA_REGISTERS.heartbeat - e.address]]
        : [],
    );
    expect(beats.length).toBeGreaterThanOrEqual(4);
    for (let i = 1; i < beats.length; i++) expect(beats[i]).not.toBe(beats[i - 1]);
    expect(new Set(beats)).toEqual(new Set(TESLA_HEARTBEAT_VALUES));
  });

  it('reconnects after the device restarts and writes the active setpoint again', async () => {
    sim = await startSimulator({ bess: 1 });
    const log = eventLog();
    writerFor(sim.bess[0]!, log, { heartbeatIntervalMs: 30 }).setTarget(7);
    await waitFor(() => log.has(1, 'verified'));
    await sim.restart({ downMs: 100, resetState: true });
    expect(sim.bess[0]!.state().wsetEna).toBe(0);
    await waitFor(() => sim!.bess[0]!.state().wsetW === 7000 && sim!.bess[0]!.state().wsetEna === 1);
    await waitFor(() => log.events.filter((e) => e.seq === 1 && e.phase === 'verified').length === 2);
  });

  it('fails the active setpoint, and stops heartbeating it, when a restarted device does not take it again', async () => {
    sim = await startSimulator({ bess: 1 });
    const log = eventLog();
    const dev = sim.bess[0]!;
    writerFor(dev, log, { heartbeatIntervalMs: 30 }).setTarget(7);
    await waitFor(() => log.has(1, 'verified'));
    dev.faults.ignoreWrites = true;
    await sim.restart({ downMs: 100, resetState: true });
    await waitFor(() => log.events.some((e) => e.seq === 1 && e.phase === 'failed' && e.willRetry === false));
    // No heartbeat keeps a device armed on a value it does not hold: the writes stop.
    const writes = sim.writeLog.length;
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(sim.writeLog.length).toBe(writes);
  });

  it('recycles the connection after a timeout and reads back before writing again', async () => {
    sim = await startSimulator({ bess: 1 });
    const log = eventLog();
    const dev = sim.bess[0]!;
    const w = writerFor(dev, log, { requestTimeoutMs: 100 });
    w.setTarget(1);
    await waitFor(() => log.has(1, 'verified'));
    dev.faults.silent = true;
    w.setTarget(2);
    await waitFor(() => log.events.some((e) => e.seq === 2 && e.phase === 'failed'));
    expect(log.events.find((e) => e.seq === 2 && e.phase === 'failed')?.reason).toMatch(/no answer/);
    dev.faults.silent = false;
    await waitFor(() => log.final(2) !== undefined);
    expect(log.final(2)?.phase).toBe('verified');
    expect(dev.state().wsetW).toBe(2000);
  });

  it('releases control on clear: writes 0 and disables the setpoint', async () => {
    sim = await startSimulator({ bess: 1 });
    const log = eventLog();
    const w = writerFor(sim.bess[0]!, log);
    w.setTarget(9);
    await waitFor(() => log.has(1, 'verified'));
    w.clear();
    await waitFor(() => log.has(2, 'verified'));
    expect(log.final(2)).toMatchObject({ release: true, targetPowerKw: 0 });
    expect(sim.bess[0]!.state()).toMatchObject({ wsetW: 0, wsetEna: 0, locRemCtl: 1 });
  });

  it('lets the device revert to its reversion value within the timeout plus one second after the writer stops', async () => {
    sim = await startSimulator({ bess: 1 });
    const log = eventLog();
    const dev = sim.bess[0]!;
    const w = writerFor(dev, log, { reversionTimeoutS: 1 });
    w.setTarget(30);
    await waitFor(() => log.has(1, 'verified'));
    await w.stop();
    const stoppedAt = Date.now();
    await waitFor(() => dev.state().locRemCtl === 1, 2000);
    expect(Date.now() - stoppedAt).toBeLessThanOrEqual(2000);
    expect(dev.state()).toMatchObject({ wsetW: 0, wsetEna: 1, reversions: 1 });
  });

  it('stops keeping the previous setpoint alive when a newer one fails, so the device falls back', async () => {
    sim = await startSimulator({ bess: 1 });
    const log = eventLog();
    const dev = sim.bess[0]!;
    const w = writerFor(dev, log, { reversionTimeoutS: 1, heartbeatIntervalMs: 50 });
    const first = w.setTarget(40);
    await waitFor(() => log.has(first, 'verified'));
    // Only the next write fails: the old setpoint's heartbeats would still succeed.
    dev.faults.exceptionCode = 3;
    dev.faults.exceptionOn = 'write';
    dev.faults.exceptionCount = 1;
    const second = w.setTarget(-40);
    await waitFor(() => log.final(second) !== undefined);
    expect(log.final(second)).toMatchObject({ phase: 'failed', willRetry: false });
    const writesAfterFailure = sim.writeLog.length;
    await waitFor(() => dev.state().locRemCtl === 1, 2500);
    expect(dev.state()).toMatchObject({ wsetW: 0, reversions: 1 });
    expect(sim.writeLog.length).toBe(writesAfterFailure);
    expect(log.events.filter((e) => e.seq === first && e.phase === 'verified')).toHaveLength(1);
  });

  it('drops a setpoint superseded while the device is still being armed and never writes it', async () => {
    sim = await startSimulator({ bess: 1 });
    const log = eventLog();
    let holding = true;
    // The first write on a connection is the arming of the reversion; it waits in the proxy.
    const dev = await behindProxy(sim.bess[0]!, (r) => (holding && r.functionCode === 16 ? 'hold' : 'forward'));
    const w = writerFor(dev, log, { requestTimeoutMs: 5000 });
    const first = w.setTarget(1);
    await waitFor(() => proxy!.held > 0);
    const second = w.setTarget(2);
    holding = false;
    proxy!.release();
    await waitFor(() => log.final(second) !== undefined);
    expect(log.final(first)).toMatchObject({ phase: 'dropped', reason: `superseded by setpoint ${second}` });
    expect(log.has(first, 'written')).toBe(false);
    expect(log.final(second)?.phase).toBe('verified');
    expect(appliedWSets(sim)).toEqual([2000]);
    expect(sim.bess[0]!.state().wsetW).toBe(2000);
  });

  it('drops a release superseded while the device is still being armed, so only the newer setpoint reaches it', async () => {
    sim = await startSimulator({ bess: 1 });
    const log = eventLog();
    let holding = true;
    const dev = await behindProxy(sim.bess[0]!, (r) => (holding && r.functionCode === 16 ? 'hold' : 'forward'));
    const w = writerFor(dev, log, { requestTimeoutMs: 5000 });
    const release = w.clear();
    await waitFor(() => proxy!.held > 0);
    const target = w.setTarget(-3);
    holding = false;
    proxy!.release();
    await waitFor(() => log.final(target) !== undefined);
    expect(log.final(release)?.phase).toBe('dropped');
    expect(appliedWSets(sim)).toEqual([-3000 + 0x10000]);
  });

  it('drops a setpoint still being armed when the writer stops, without writing it', async () => {
    sim = await startSimulator({ bess: 1 });
    const log = eventLog();
    let holding = true;
    const dev = await behindProxy(sim.bess[0]!, (r) => (holding && r.functionCode === 16 ? 'hold' : 'forward'));
    const w = writerFor(dev, log, { requestTimeoutMs: 5000 });
    const seq = w.setTarget(8);
    await waitFor(() => proxy!.held > 0);
    const stopping = w.stop();
    holding = false;
    proxy!.release();
    await stopping;
    expect(log.final(seq)).toMatchObject({ phase: 'dropped', reason: 'writer stopped' });
    expect(appliedWSets(sim)).toEqual([]);
  });

  it('rescales a setpoint retried across a device restart to the WSet_SF the restarted device reports', async () => {
    let wsetSf = 0;
    sim = await startSimulator({ bess: 1, bessConfig: () => ({ wsetSf }) });
    const log = eventLog();
    const dev = sim.bess[0]!;
    const w = writerFor(dev, log, { maxRetries: 40 });
    const first = w.setTarget(1);
    await waitFor(() => log.has(first, 'verified'));
    // The device is busy for the next setpoint, so the writer retries it on the same connection...
    Object.assign(dev.faults, { exceptionCode: 6, exceptionOn: 'write' });
    const second = w.setTarget(2);
    await waitFor(() => log.events.some((e) => e.seq === second && e.phase === 'failed' && e.willRetry === true));
    // ...then the device restarts reporting WSet in tens of watts.
    wsetSf = 1;
    await sim.restart({ downMs: 50, resetState: true });
    delete dev.faults.exceptionCode;
    await waitFor(() => log.final(second) !== undefined, 10_000);
    expect(log.final(second)?.phase).toBe('verified');
    expect(appliedWSets(sim)).toEqual([1000, 200]);
    expect(dev.state()).toMatchObject({ wsetW: 2000, wsetEna: 1 });
  });

  it('reads back after a lost answer, finds the setpoint held and does not write it a second time', async () => {
    sim = await startSimulator({ bess: 1 });
    const log = eventLog();
    let lost = false;
    const dev = await behindProxy(sim.bess[0]!, (r) => {
      if (lost || r.values.length !== 4) return 'forward';
      lost = true;
      return 'lose-answer';
    });
    const w = writerFor(dev, log, { requestTimeoutMs: 150 });
    const seq = w.setTarget(6);
    await waitFor(() => log.final(seq) !== undefined);
    expect(log.events.find((e) => e.seq === seq && e.phase === 'failed')).toMatchObject({ willRetry: true });
    expect(log.final(seq)).toMatchObject({ phase: 'verified', attempt: 2, reason: 'device already held the setpoint after a lost answer' });
    expect(appliedWSets(sim)).toEqual([6000]);
    // The retry came on a new connection: the writer recycled the one that lost the answer.
    const connections = new Set(sim.writeLog.map((e) => e.connection));
    expect(connections.size).toBe(2);
  });
});

describe('writers made again for the same device', () => {
  it('skip SunSpec discovery: a second writer of a device reads no marker and no chain, and still verifies', async () => {
    forgetSunSpecMaps();
    sim = await startSimulator({ bess: 1 });
    const dev = sim.bess[0]!;
    const first = eventLog();
    const a = writerFor(dev, first);
    a.setTarget(12);
    await waitFor(() => first.has(1, 'verified'));
    expect(dev.readsAt(SUNSPEC_BASE)).toBe(1);
    const chainReads = totalReads(dev);
    // The shard moved away (writer stopped) and came back (a new writer of the same device).
    await a.stop();
    const second = eventLog();
    writerFor(dev, second).setTarget(-7);
    await waitFor(() => second.has(1, 'verified'));
    expect(dev.readsAt(SUNSPEC_BASE)).toBe(1);
    expect(dev.state()).toMatchObject({ wsetW: -7000, wsetEna: 1 });
    // Its preparation read fewer registers blocks than the first writer's discovery did.
    expect(totalReads(dev) - chainReads).toBeLessThan(chainReads);
  });

  it('discover the device afresh when the headers they remembered no longer match (another device at the address)', async () => {
    forgetSunSpecMaps();
    sim = await startSimulator({ bess: 1 });
    const dev = sim.bess[0]!;
    const first = eventLog();
    const a = writerFor(dev, first);
    a.setTarget(5);
    await waitFor(() => first.has(1, 'verified'));
    await a.stop();
    // A Tesla-style controller now answers at the same address and unit id.
    await sim.stop();
    sim = await startSimulator({ bess: 0, tesla: 1, port: dev.endpoint.port });
    const other = sim.tesla[0]!;
    expect(other.endpoint).toEqual(dev.endpoint);
    const second = eventLog();
    writerFor(dev, second, { maxRetries: 0 }).setTarget(6);
    await waitFor(() => second.events.some((e) => e.phase === 'failed'));
    expect(other.readsAt(SUNSPEC_BASE)).toBe(1);
    expect(second.events.find((e) => e.phase === 'failed')?.reason).toMatch(/no SunSpec marker/);
  });
});

/** Every read the device answered, over all addresses the SunSpec map spans. */
function totalReads(dev: Simulator['devices'][number]): number {
  let n = 0;
  for (let address = SUNSPEC_BASE; address < SUNSPEC_BASE + 2_000; address++) n += dev.readsAt(address);
  return n;
}

describe('a writer whose lease ends', () => {
  it('sends no write once mayWrite says no: neither the heartbeat nor a newer setpoint, which fails', async () => {
    sim = await startSimulator({ bess: 1 });
    const dev = sim.bess[0]!;
    const log = eventLog();
    let allowed = true;
    const w = writerFor(dev, log, { mayWrite: () => allowed });
    w.setTarget(20);
    await waitFor(() => log.has(1, 'verified'));
    // Heartbeats (every 100 ms) reach the device while the lease holds.
    const beats = sim.writeLog.length;
    await waitFor(() => sim!.writeLog.length > beats);
    allowed = false;
    const writes = sim.writeLog.length;
    // Longer than several heartbeat intervals: none of them wrote.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(sim.writeLog.length).toBe(writes);
    w.setTarget(30);
    await waitFor(() => log.events.some((e) => e.seq === 2 && e.phase === 'failed'));
    expect(sim.writeLog.length).toBe(writes);
    expect(log.events.find((e) => e.seq === 2 && e.phase === 'failed')).toMatchObject({ willRetry: false });
    expect(log.events.find((e) => e.seq === 2 && e.phase === 'failed')?.reason).toMatch(/lease it was for has ended/);
    expect(dev.state()).toMatchObject({ wsetW: 20_000 });
  });
});
