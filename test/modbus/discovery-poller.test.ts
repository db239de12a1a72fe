import { afterEach, describe, expect, it } from 'vitest';
import { encodeRaw, notImplementedRegisters } from '../../src/modbus/codec.ts';
import { createModbusClient, type ModbusClient } from '../../src/modbus/modbus-client.ts';
import { createPoller, readRegisterMap, readTelemetry, type PollReading, type SunSpecCache } from '../../src/modbus/poller.ts';
import { parseRegisterMap } from '../../src/modbus/register-map.ts';
import { discoverSunSpec, readSunSpecModel } from '../../src/modbus/sunspec-discovery.ts';
import { createSetpointWriter } from '../../src/modbus/setpoint-writer.ts';
import { startModbusTcpServer, ModbusServerException, type ModbusTcpServer } from '../../src/simulator/modbus-tcp-server.ts';
import { startSimulator, type Simulator } from '../../src/simulator/simulator.ts';
import { eventLog, sunSpecImage, waitFor } from './helpers.ts';

let sim: Simulator | undefined;
let server: ModbusTcpServer | undefined;
const closers: Array<() => Promise<void>> = [];

afterEach(async () => {
  await Promise.all(closers.splice(0).map((c) => c()));
  await sim?.stop();
  await server?.close();
  sim = undefined;
  server = undefined;
});

function client(endpoint: { host: string; port: number; unitId: number }): ModbusClient {
  const c = createModbusClient({ endpoint, timeoutMs: 500 });
  closers.push(() => c.close());
  return c;
}

/** `c` with every read request recorded as [address, count]. */
function counting(c: ModbusClient, reads: Array<[number, number]>): ModbusClient {
  return {
    ...c,
    get isOpen() {
      return c.isOpen;
    },
    readHoldingRegisters: (address, count) => {
      reads.push([address, count]);
      return c.readHoldingRegisters(address, count);
    },
  };
}

/** Serves `read` on 127.0.0.1 for unit 1; every write is refused with exception 01. */
async function serve(read: (address: number, count: number) => number[]): Promise<ModbusClient> {
  server = await startModbusTcpServer({
    host: '127.0.0.1',
    port: 0,
    handler: {
      read: (_u, _t, a, n) => read(a, n),
      write: () => {
        throw new ModbusServerException(1);
      },
    },
  });
  return client({ host: '127.0.0.1', port: server.port, unitId: 1 });
}

describe('SunSpec discovery', () => {
  it('finds the SunS marker at 40000 and walks the battery models to the end marker', async () => {
    sim = await startSimulator({ bess: 1 });
    const map = await discoverSunSpec(client(sim.bess[0]!.endpoint));
    expect(map.baseAddress).toBe(40000);
    expect(map.models.map((m) => [m.id, m.length])).toEqual([
      [1, 66],
      [701, 153],
      [704, 65],
      [713, 7],
      [802, 62],
    ]);
    expect(map.find(1)?.address).toBe(40002);
  });

  it('finds a meter behind another unit id of the same port and reads model 203 with scale factors', async () => {
    sim = await startSimulator({ bess: 1, meters: 1, loadW: () => 30_000 });
    const meter = sim.meters[0]!;
    expect(meter.endpoint.port).toBe(sim.bess[0]!.endpoint.port);
    const c = client(meter.endpoint);
    const map = await discoverSunSpec(c);
    expect(map.models.map((m) => m.id)).toEqual([1, 203]);
    const common = await readSunSpecModel(c, map.find(1)!);
    expect(common).toMatchObject({ Mn: 'Powerplane', Md: 'SimMeter', DA: meter.endpoint.unitId });
    const m203 = await readSunSpecModel(c, map.find(203)!);
    expect(m203).toMatchObject({ Hz: 50, PhV: 230, PPV: 400, W: 30_000 });
    expect(m203.VARphA).toBe(0);
  });

  it('falls back to register 0 when 40000 answers illegal address', async () => {
    const regs = [0x5375, 0x6e53, 0xffff, 0];
    server = await startModbusTcpServer({
      host: '127.0.0.1',
      port: 0,
      handler: {
        read: (_u, _t, address, count) => {
          if (address + count > regs.length) throw new ModbusServerException(2);
          return regs.slice(address, address + count);
        },
        write: () => {
          throw new ModbusServerException(1);
        },
      },
    });
    const map = await discoverSunSpec(client({ host: '127.0.0.1', port: server.port, unitId: 1 }));
    expect(map).toMatchObject({ baseAddress: 0, models: [] });
  });

  it('finds the SunS marker at 50000 when 40000 and 0 answer illegal address, and reads a battery there', async () => {
    const image = sunSpecImage(50000, [1, 701, 704, 713, 802]);
    image.set(1, 'Mn', 'Acme');
    image.set(1, 'SN', 'X-50000');
    image.set(713, 'WH_SF', 1);
    image.set(713, 'WHAvail', 1234);
    image.set(713, 'Pct_SF', -1);
    image.set(713, 'SoC', 655);
    const c = await serve(image.read);
    const map = await discoverSunSpec(c);
    expect(map.baseAddress).toBe(50000);
    expect(map.models.map((m) => m.id)).toEqual([1, 701, 704, 713, 802]);
    expect(map.find(1)?.address).toBe(50002);
    expect((await readTelemetry(c, { kind: 'sunspec' }, 'bess')).bess).toEqual({
      manufacturer: 'Acme',
      serialNumber: 'X-50000',
      soePercent: 65.5,
      energyAvailableKwh: 12.34,
    });
  });
});

describe('SunSpec not-implemented values over TCP', () => {
  it('reads every battery point a device leaves not implemented as unknown, never as a number', async () => {
    // Every point holds its not-implemented value (0xFFFF uint16/enum16, 0x8000 int16/sunssf,
    // 0x80000000 int32, 0xFFFFFFFF uint32/bitfield32, all-ones uint64, NUL strings), except the
    // scale factors below, so only the values themselves are unknown.
    const image = sunSpecImage(40000, [1, 701, 704, 713, 802]);
    for (const p of ['W_SF', 'Hz_SF']) image.set(701, p, 0);
    image.set(704, 'WSet_SF', 0);
    for (const p of ['WH_SF', 'Pct_SF']) image.set(713, p, 0);
    for (const p of ['WHRtg_SF', 'WChaDisChaMax_SF', 'SoC_SF', 'W_SF']) image.set(802, p, 0);
    const c = await serve(image.read);
    expect((await readTelemetry(c, { kind: 'sunspec' }, 'bess')).bess).toEqual({});
    const map = await discoverSunSpec(c);
    const m704 = await readSunSpecModel(c, map.find(704)!, ['WSetEna', 'WSet', 'WSetRvrtTms']);
    expect(m704).toEqual({ WSetEna: undefined, WSet: undefined, WSetRvrtTms: undefined, WSet_SF: 0 });
    const m701 = await readSunSpecModel(c, map.find(701)!, ['W', 'Alrm', 'TotWhInj', 'Hz']);
    expect(m701).toEqual({ W: undefined, Alrm: undefined, TotWhInj: undefined, Hz: undefined, W_SF: 0, Hz_SF: 0 });
  });

  it('treats a not-implemented scale factor as making its values unknown', async () => {
    const image = sunSpecImage(40000, [1, 701, 704, 713, 802]);
    image.set(713, 'WHRtg', 2000);
    image.set(713, 'SoC', 500);
    image.set(713, 'WHAvail', 700);
    const c = await serve(image.read);
    expect((await readTelemetry(c, { kind: 'sunspec' }, 'bess')).bess).toEqual({});
  });

  it('decodes not-implemented values of every type from a flat map that opts in, and keeps them as numbers when it does not', async () => {
    const points = [
      { name: 'u16', address: 0, type: 'uint16' },
      { name: 'i16', address: 1, type: 'int16' },
      { name: 'u32', address: 2, type: 'uint32' },
      { name: 'i32', address: 4, type: 'int32' },
      { name: 'acc', address: 6, type: 'acc32' },
      { name: 'u64', address: 8, type: 'uint64' },
      { name: 'f32', address: 12, type: 'float32' },
      { name: 'mode', address: 14, type: 'enum16' },
      { name: 'bits16', address: 15, type: 'bitfield16' },
      { name: 'bits32', address: 16, type: 'bitfield32' },
      { name: 'sf', address: 18, type: 'sunssf' },
      { name: 'serial', address: 19, type: 'string', length: 4 },
      { name: 'scaled', address: 23, type: 'int16', scaleFactorPoint: 'sf' },
    ] as const;
    const image = new Array<number>(24).fill(0);
    for (const p of points) {
      const regs = p.name === 'scaled' ? [100] : notImplementedRegisters(p.type, { length: 'length' in p ? p.length : 1 });
      regs.forEach((v, i) => {
        image[p.address + i] = v;
      });
    }
    const c = await serve((a, n) => image.slice(a, a + n));
    const unknown = await readRegisterMap(c, parseRegisterMap({ notImplemented: true, points }));
    expect(unknown).toEqual(Object.fromEntries(points.map((p) => [p.name, undefined])));
    expect(image.slice(1, 6)).toEqual([0x8000, 0xffff, 0xffff, 0x8000, 0]);
    const raw = await readRegisterMap(c, parseRegisterMap({ points }));
    expect(raw).toMatchObject({
      u16: 0xffff,
      i16: -0x8000,
      u32: 0xffffffff,
      i32: -0x80000000,
      acc: 0,
      mode: 0xffff,
      bits16: 0xffff,
      bits32: 0xffffffff,
    });
  });
});

describe('flat register maps over TCP', () => {
  it('decodes every point type, word order and scale from a live server', async () => {
    const image = new Array<number>(64).fill(0);
    const put = (address: number, regs: number[]): void => {
      regs.forEach((v, i) => {
        image[address + i] = v;
      });
    };
    put(0, encodeRaw(65000, 'uint16'));
    put(1, encodeRaw(-1234, 'int16'));
    put(2, encodeRaw(70000, 'uint32'));
    put(4, encodeRaw(-70000, 'int32', { wordOrder: 'little' }));
    put(6, encodeRaw(123456, 'acc32'));
    put(8, encodeRaw(2 ** 40, 'uint64'));
    put(12, encodeRaw(1.25, 'float32'));
    put(14, encodeRaw(3, 'enum16'));
    put(15, encodeRaw(0x0101, 'bitfield16'));
    put(16, encodeRaw(0x10001, 'bitfield32'));
    put(18, encodeRaw(-2, 'sunssf'));
    put(19, encodeRaw('BESS-7', 'string', { length: 4 }));
    put(23, encodeRaw(12345, 'int16'));
    server = await startModbusTcpServer({
      host: '127.0.0.1',
      port: 0,
      handler: { read: (_u, _t, a, n) => image.slice(a, a + n), write: () => undefined },
    });
    const map = parseRegisterMap({
      points: [
        { name: 'u16', address: 0, type: 'uint16' },
        { name: 'i16', address: 1, type: 'int16', scale: 0.1 },
        { name: 'u32', address: 2, type: 'uint32' },
        { name: 'i32', address: 4, type: 'int32', wordOrder: 'little' },
        { name: 'acc', address: 6, type: 'acc32' },
        { name: 'u64', address: 8, type: 'uint64' },
        { name: 'f32', address: 12, type: 'float32' },
        { name: 'mode', address: 14, type: 'enum16' },
        { name: 'bits16', address: 15, type: 'bitfield16' },
        { name: 'bits32', address: 16, type: 'bitfield32' },
        { name: 'sf', address: 18, type: 'sunssf' },
        { name: 'serial', address: 19, type: 'string', length: 4 },
        { name: 'scaled', address: 23, type: 'int16', scaleFactorPoint: 'sf' },
      ],
    });
    const values = await readRegisterMap(client({ host: '127.0.0.1', port: server.port, unitId: 1 }), map);
    expect(values).toEqual({
      u16: 65000,
      i16: -123.4,
      u32: 70000,
      i32: -70000,
      acc: 123456,
      u64: 2 ** 40,
      f32: 1.25,
      mode: 3,
      bits16: 0x0101,
      bits32: 0x10001,
      sf: -2,
      serial: 'BESS-7',
      scaled: 123.45,
    });
  });
});

describe('poller', () => {
  it('reads battery telemetry in kW and percent and follows a verified setpoint', async () => {
    sim = await startSimulator({ bess: 1 });
    const dev = sim.bess[0]!;
    const readings: PollReading[] = [];
    const poller = createPoller({
      endpoint: dev.endpoint,
      profile: { kind: 'sunspec' },
      kind: 'bess',
      intervalMs: 20,
      onReading: (r) => readings.push(r),
    });
    closers.push(() => poller.stop());
    const log = eventLog();
    const writer = createSetpointWriter({
      deviceKey: dev.key,
      endpoint: dev.endpoint,
      profile: { kind: 'sunspec' },
      reversionTimeoutS: 5,
      heartbeatIntervalMs: 1000,
      onEvent: log.onEvent,
    });
    closers.push(() => writer.stop());
    await waitFor(() => readings.length > 0);
    expect(readings[0]?.bess).toMatchObject({
      soePercent: 50,
      targetPowerKw: 0,
      activePowerKw: 0,
      remoteControl: false,
      commandSource: 1,
      nominalEnergyKwh: 200,
    });
    writer.setTarget(-20);
    await waitFor(() => log.has(1, 'verified'));
    await waitFor(() => readings.at(-1)?.bess?.targetPowerKw === -20 && readings.at(-1)?.bess?.activePowerKw === -20);
    expect(readings.at(-1)?.bess).toMatchObject({ remoteControl: true, commandSource: 0 });
  });

  it('reads frequency, available energy, SoC limits, nameplate rates, heartbeat and identity of a battery', async () => {
    const nowMs = 1_700_000_123_456;
    sim = await startSimulator({
      bess: 1,
      now: () => nowMs,
      bessConfig: () => ({
        ratedPowerW: 120_000,
        capacityWh: 200_000,
        soeMinPercent: 10,
        soeMaxPercent: 90,
        initialSoePercent: 50,
        serialNumber: 'SN-4711',
      }),
    });
    const readings: PollReading[] = [];
    const poller = createPoller({
      endpoint: sim.bess[0]!.endpoint,
      profile: { kind: 'sunspec' },
      kind: 'bess',
      intervalMs: 20,
      onReading: (r) => readings.push(r),
    });
    closers.push(() => poller.stop());
    await waitFor(() => readings.length > 0);
    expect(readings[0]?.bess).toEqual({
      soePercent: 50,
      targetPowerKw: 0,
      activePowerKw: 0,
      commandSource: 1,
      remoteControl: false,
      nominalEnergyKwh: 200,
      frequencyHz: 50,
      energyAvailableKwh: 80,
      socMaxPercent: 90,
      socMinPercent: 10,
      chargeRateMaxKw: 120,
      dischargeRateMaxKw: 120,
      heartbeat: Math.floor(nowMs / 1000) % 0xfffe,
      manufacturer: 'Powerplane',
      model: 'SimBESS',
      serialNumber: 'SN-4711',
    });
  });

  it('reads a battery in two requests per poll, plus discovery and identity on a new connection only', async () => {
    sim = await startSimulator({ bess: 1 });
    const reads: Array<[number, number]> = [];
    const c = counting(client(sim.bess[0]!.endpoint), reads);
    const cache: SunSpecCache = {};
    const first = await readTelemetry(c, { kind: 'sunspec' }, 'bess', cache);
    const discovery = 2 + (cache.sunspec?.models.length ?? 0);
    expect(first.bess?.serialNumber).toBe('BESS-1');
    expect(reads.length - discovery).toBe(3);
    reads.length = 0;
    const second = await readTelemetry(c, { kind: 'sunspec' }, 'bess', cache);
    expect(reads).toHaveLength(2);
    expect(reads.every(([, n]) => n <= 125)).toBe(true);
    expect(second.bess).toMatchObject({ serialNumber: 'BESS-1', frequencyHz: 50, soePercent: 50 });
  });

  it('reads all 25 meter quantities with import positive', async () => {
    sim = await startSimulator({ bess: 0, meters: 1, loadW: () => 60_000 });
    const readings: PollReading[] = [];
    const poller = createPoller({
      endpoint: sim.meters[0]!.endpoint,
      profile: { kind: 'sunspec' },
      kind: 'meter',
      intervalMs: 20,
      onReading: (r) => readings.push(r),
    });
    closers.push(() => poller.stop());
    await waitFor(() => readings.length > 0);
    const meter = readings[0]?.meter ?? {};
    expect(Object.keys(meter)).toHaveLength(25);
    expect(meter).toMatchObject({
      frequency: 50,
      voltageLineAverage: 400,
      powerTotalActive: 60,
      powerPhaseAActive: 20,
      powerFactorTotal: 1,
    });
    expect(meter.energyImportedActive).toBeGreaterThan(0);
  });

  it('reads the Tesla-style status registers', async () => {
    sim = await startSimulator({ bess: 0, tesla: 1 });
    const readings: PollReading[] = [];
    const poller = createPoller({
      endpoint: sim.tesla[0]!.endpoint,
      profile: { kind: 'tesla-powerpack' },
      kind: 'bess',
      intervalMs: 20,
      onReading: (r) => readings.push(r),
    });
    closers.push(() => poller.stop());
    await waitFor(() => readings.length > 0);
    expect(readings[0]?.bess).toEqual({ targetPowerKw: 0, availableInverterBlocks: 4, commandSource: 0, nominalEnergyKwh: 200 });
  });

  it('reports unknown with an error instead of the last value when a read fails', async () => {
    sim = await startSimulator({ bess: 1 });
    const readings: PollReading[] = [];
    const poller = createPoller({
      endpoint: sim.bess[0]!.endpoint,
      profile: { kind: 'sunspec' },
      kind: 'bess',
      intervalMs: 20,
      onReading: (r) => readings.push(r),
    });
    closers.push(() => poller.stop());
    await waitFor(() => readings.length > 0);
    Object.assign(sim.bess[0]!.faults, { exceptionCode: 4, exceptionOn: 'read' });
    await waitFor(() => readings.some((r) => r.error !== undefined));
    const failed = readings.find((r) => r.error !== undefined);
    expect(failed?.bess).toBeUndefined();
    expect(failed?.error).toMatch(/exception 4/);
  });
});
