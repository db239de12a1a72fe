/**
 * The simulator as a Modbus client sees it, over both transports: SunSpec discovery, the
 * setpoint semantics of model 704, energy over time, limits, reversion, meters, the write log
 * and fault injection. A plain modbus-serial client talks to it; time is the simulator's
 * injected clock, so nothing waits for wall-clock time.
 */
import ModbusSerial from 'modbus-serial';
import { afterEach, describe, expect, it } from 'vitest';
import { decodeRaw, encodeRaw } from '../../src/modbus/codec.ts';
import { getSunSpecModel } from '../../src/modbus/sunspec-models.ts';
import {
  type SimulatedDevice,
  type Simulator,
  type SimulatorOptions,
  type SimulatorTransport,
  startSimulator,
} from '../../src/simulator/simulator.ts';

const ModbusRTU = ModbusSerial.default;
type Client = InstanceType<typeof ModbusRTU>;

let sim: Simulator | undefined;
const clients: Client[] = [];

afterEach(async () => {
  await Promise.all(
    clients.splice(0).map(
      (c) =>
        new Promise<void>((resolve) => {
          c.close(() => resolve());
        }),
    ),
  );
  await sim?.stop();
  sim = undefined;
});

/** A settable clock for the simulator, ms since the epoch. */
function fakeClock(): { now: () => number; advance: (ms: number) => void } {
  let t = Date.UTC(2025, 0, 1);
  return {
    now: () => t,
    advance: (ms) => {
      t += ms;
    },
  };
}

async function connect(device: SimulatedDevice, timeoutMs = 2000): Promise<Client> {
  const c = new ModbusRTU();
  clients.push(c);
  await c.connectTCP(device.endpoint.host, { port: device.endpoint.port });
  c.setID(device.endpoint.unitId);
  c.setTimeout(timeoutMs);
  return c;
}

/** Walks the SunSpec chain from 40002 (bounded) and returns model id → address of its ID register. */
async function modelChain(c: Client): Promise<Map<number, number>> {
  const models = new Map<number, number>();
  let address = 40002;
  for (let i = 0; i < 16; i++) {
    const [id = 0xffff, length = 0] = (await c.readHoldingRegisters(address, 2)).data;
    if (id === 0xffff) return models;
    models.set(id, address);
    address += 2 + length;
  }
  throw new Error('no end marker within 16 models');
}

/** Typed access to SunSpec points of one device through the client. */
async function points(c: Client) {
  const chain = await modelChain(c);
  const locate = (model: number, name: string) => {
    const point = getSunSpecModel(model).byName.get(name);
    const base = chain.get(model);
    if (!point || base === undefined) throw new Error(`no ${model}.${name}`);
    return { address: base + point.offset, point };
  };
  return {
    chain,
    async read(model: number, name: string): Promise<number | undefined> {
      const { address, point } = locate(model, name);
      const v = decodeRaw((await c.readHoldingRegisters(address, point.size)).data, 0, point.type, { length: point.size });
      return typeof v === 'number' ? v : undefined;
    },
    /** Function 16 (or 6 with `single`), raw unscaled value. */
    async write(model: number, name: string, raw: number, single = false): Promise<void> {
      const { address, point } = locate(model, name);
      const regs = encodeRaw(raw, point.type, { length: point.size });
      if (single && regs.length === 1) await c.writeRegister(address, regs[0] ?? 0);
      else await c.writeRegisters(address, regs);
    },
    address: (model: number, name: string) => locate(model, name).address,
  };
}

/** Reads a point and applies its scale factor. */
async function scaled(p: Awaited<ReturnType<typeof points>>, model: number, name: string, sf: string): Promise<number> {
  const [raw, exp] = await Promise.all([p.read(model, name), p.read(model, sf)]);
  if (raw === undefined || exp === undefined) throw new Error(`${model}.${name} not implemented`);
  return raw * 10 ** exp;
}

/** The Modbus exception code a request fails with. */
async function exceptionOf(request: Promise<unknown>): Promise<number | undefined> {
  try {
    await request;
    return undefined;
  } catch (err) {
    return (err as { modbusCode?: number }).modbusCode;
  }
}

const TRANSPORTS: SimulatorTransport[] = ['servertcp', 'fast'];

describe.each(TRANSPORTS)('the simulator over the %s transport', (transport) => {
  const start = async (options: SimulatorOptions): Promise<Simulator> => {
    sim = await startSimulator({ ...options, transport });
    return sim;
  };

  it('serves the SunS marker at 40000 to a plain modbus-serial client', async () => {
    const s = await start({ bess: 1 });
    const c = await connect(s.bess[0]!);
    expect((await c.readHoldingRegisters(40000, 2)).data).toEqual([0x5375, 0x6e53]);
  });

  it('chains models 1, 701, 704, 713, 802 on a battery and 1, 203 on a meter', async () => {
    const s = await start({ bess: 2, meters: 1 });
    const battery = await connect(s.bess[1]!);
    const meter = await connect(s.meters[0]!);
    expect([...(await modelChain(battery)).keys()]).toEqual([1, 701, 704, 713, 802]);
    expect([...(await modelChain(meter)).keys()]).toEqual([1, 203]);
  });

  it('applies WSet only while WSetEna is 1', async () => {
    const clock = fakeClock();
    const s = await start({ bess: 1, now: clock.now });
    const p = await points(await connect(s.bess[0]!));
    await p.write(704, 'WSet', -20_000);
    expect(await scaled(p, 701, 'W', 'W_SF')).toBe(0);
    await p.write(704, 'WSetEna', 1, true);
    expect(await scaled(p, 701, 'W', 'W_SF')).toBe(-20_000);
    await p.write(704, 'WSetEna', 0, true);
    expect(await scaled(p, 701, 'W', 'W_SF')).toBe(0);
    expect(s.bess[0]!.state()).toMatchObject({ wsetW: -20_000, wsetEna: 0, activePowerW: 0 });
  });

  it('moves state of energy with power over time from the capacity', async () => {
    const clock = fakeClock();
    const s = await start({ bess: 1, now: clock.now, bessConfig: () => ({ capacityWh: 200_000, initialSoePercent: 50 }) });
    const p = await points(await connect(s.bess[0]!));
    await p.write(704, 'WSet', 100_000);
    await p.write(704, 'WSetEna', 1);
    clock.advance(36 * 60_000); // 100 kW for 0.6 h = 60 kWh = 30 % of 200 kWh
    expect(await scaled(p, 713, 'SoC', 'Pct_SF')).toBeCloseTo(20, 5);
    await p.write(704, 'WSet', -50_000);
    clock.advance(60 * 60_000); // charging 50 kWh = 25 %
    expect(await scaled(p, 802, 'SoC', 'SoC_SF')).toBeCloseTo(45, 5);
  });

  it('limits power to the rating and stops discharging at SoeMin', async () => {
    const clock = fakeClock();
    const s = await start({
      bess: 2,
      now: clock.now,
      bessConfig: (i) => ({ ratedPowerW: 100_000, soeMinPercent: 5, initialSoePercent: i === 0 ? 50 : 5 }),
    });
    const full = await points(await connect(s.bess[0]!));
    await full.write(704, 'WSet', 150_000);
    await full.write(704, 'WSetEna', 1);
    expect(await scaled(full, 701, 'W', 'W_SF')).toBe(100_000);
    await full.write(704, 'WSet', -150_000);
    expect(await scaled(full, 701, 'W', 'W_SF')).toBe(-100_000);

    const empty = await points(await connect(s.bess[1]!));
    await empty.write(704, 'WSet', 50_000);
    await empty.write(704, 'WSetEna', 1);
    clock.advance(10 * 60_000);
    expect(await scaled(empty, 701, 'W', 'W_SF')).toBe(0);
    expect(s.bess[1]!.state().soePercent).toBe(5);
    await empty.write(704, 'WSet', -50_000);
    expect(await scaled(empty, 701, 'W', 'W_SF')).toBe(-50_000);
  });

  it('reverts to WSetRvrt and reports local control after WSetRvrtTms without a refresh', async () => {
    const clock = fakeClock();
    const s = await start({ bess: 1, now: clock.now });
    const p = await points(await connect(s.bess[0]!));
    await p.write(704, 'WSetRvrt', 0);
    await p.write(704, 'WSetEnaRvrt', 0);
    await p.write(704, 'WSetRvrtTms', 10);
    await p.write(704, 'WSet', 30_000);
    await p.write(704, 'WSetEna', 1);
    expect(await p.read(802, 'LocRemCtl')).toBe(0);
    clock.advance(8_000);
    await p.write(802, 'CtrlHb', 1, true); // the heartbeat refreshes the timer
    clock.advance(8_000);
    expect(await p.read(802, 'LocRemCtl')).toBe(0);
    expect(await scaled(p, 701, 'W', 'W_SF')).toBe(30_000);
    clock.advance(3_000);
    expect(await p.read(802, 'LocRemCtl')).toBe(1);
    expect(await p.read(704, 'WSetEna')).toBe(0);
    expect(await scaled(p, 701, 'W', 'W_SF')).toBe(0);
    expect(s.bess[0]!.state().reversions).toBe(1);
  });

  it('moves the meter by the battery power: discharge lowers import, charge raises it', async () => {
    const clock = fakeClock();
    const s = await start({ bess: 1, meters: 1, now: clock.now, loadW: () => 30_000 });
    const battery = await points(await connect(s.bess[0]!));
    const meter = await points(await connect(s.meters[0]!));
    expect(await scaled(meter, 203, 'W', 'W_SF')).toBe(30_000);
    await battery.write(704, 'WSet', 20_000);
    await battery.write(704, 'WSetEna', 1);
    expect(await scaled(meter, 203, 'W', 'W_SF')).toBe(10_000);
    const importedBefore = await meter.read(203, 'TotWhImp');
    clock.advance(3_600_000);
    expect((await meter.read(203, 'TotWhImp'))! - importedBefore!).toBe(10_000);
    await battery.write(704, 'WSet', -20_000);
    expect(await scaled(meter, 203, 'W', 'W_SF')).toBe(50_000);
  });

  it('records every write with its function code, unit, outcome and client connection', async () => {
    const s = await start({ bess: 2 });
    const a = await points(await connect(s.bess[0]!));
    const b = await points(await connect(s.bess[1]!));
    await a.write(704, 'WSet', 12_000);
    await b.write(802, 'CtrlHb', 7, true);
    expect(await exceptionOf(b.write(704, 'WSetEna', 5, true))).toBe(3);
    expect(s.writeLog.map((w) => [w.unitId, w.functionCode, w.address, w.values, w.outcome, w.port])).toEqual([
      [s.bess[0]!.endpoint.unitId, 16, a.address(704, 'WSet'), [0, 12_000], 'applied', s.ports[0]],
      [s.bess[1]!.endpoint.unitId, 6, b.address(802, 'CtrlHb'), [7], 'applied', s.ports[0]],
      [s.bess[1]!.endpoint.unitId, 6, b.address(704, 'WSetEna'), [5], 3, s.ports[0]],
    ]);
    const [first, second, third] = s.writeLog;
    expect(first!.connection).not.toBe(second!.connection);
    expect(second!.connection).toBe(third!.connection);
    expect(first!.remotePort).toBeGreaterThan(0);
    expect(first!.remotePort).not.toBe(second!.remotePort);
  });

  it.each([1, 2, 3, 4, 6, 0x0b])('answers writes with injected exception %i and logs it', async (code) => {
    const s = await start({ bess: 1 });
    const p = await points(await connect(s.bess[0]!));
    s.bess[0]!.faults.exceptionCode = code;
    expect(await exceptionOf(p.write(704, 'WSet', 1_000))).toBe(code);
    expect(await p.read(704, 'WSet')).toBe(0);
    expect(s.writeLog.at(-1)?.outcome).toBe(code);
  });

  it('limits an injected read exception to exceptionCount requests', async () => {
    const s = await start({ bess: 1 });
    const c = await connect(s.bess[0]!);
    Object.assign(s.bess[0]!.faults, { exceptionCode: 6, exceptionOn: 'read', exceptionCount: 1 });
    expect(await exceptionOf(c.readHoldingRegisters(40000, 1))).toBe(6);
    expect((await c.readHoldingRegisters(40000, 1)).data).toEqual([0x5375]);
  });

  it('answers 0B for a unit id with no device and 02 for a read-only register', async () => {
    const s = await start({ bess: 1 });
    const c = await connect(s.bess[0]!);
    const p = await points(c);
    expect(await exceptionOf(p.write(701, 'W', 5, true))).toBe(2);
    c.setID(200);
    expect(await exceptionOf(c.readHoldingRegisters(40000, 2))).toBe(0x0b);
  });

  it('acknowledges but ignores writes, and stays silent, when told to', async () => {
    const s = await start({ bess: 1 });
    const c = await connect(s.bess[0]!, 200);
    const p = await points(c);
    s.bess[0]!.faults.ignoreWrites = true;
    await p.write(704, 'WSet', 4_000);
    expect(await p.read(704, 'WSet')).toBe(0);
    expect(s.writeLog.at(-1)?.outcome).toBe('ignored');
    s.bess[0]!.faults.silent = true;
    await expect(c.readHoldingRegisters(40000, 2)).rejects.toMatchObject({ errno: 'ETIMEDOUT' });
    s.bess[0]!.faults.silent = false;
    expect((await c.readHoldingRegisters(40000, 2)).data).toEqual([0x5375, 0x6e53]);
  });
});

describe('a fleet of 1000 batteries on ServerTCP', () => {
  it('serves every battery on five ports, each answering a read at its own unit id', async () => {
    sim = await startSimulator({ bess: 1000, transport: 'servertcp' });
    const fleet = sim;
    expect(fleet.ports).toHaveLength(5);
    const daOffset = getSunSpecModel(1).byName.get('DA')!.offset;
    const answered = await Promise.all(
      fleet.ports.map(async (port) => {
        const mine = fleet.bess.filter((d) => d.endpoint.port === port);
        const c = await connect(mine[0]!);
        const ids: number[] = [];
        for (const d of mine) {
          // one request at a time per connection, 247 at most
          c.setID(d.endpoint.unitId);
          ids.push((await c.readHoldingRegisters(40002 + daOffset, 1)).data[0] ?? -1);
        }
        expect(ids).toEqual(mine.map((d) => d.endpoint.unitId));
        return ids.length;
      }),
    );
    expect(answered.reduce((a, b) => a + b, 0)).toBe(1000);
  });
});

describe('startSimulator', () => {
  it('rejects an unknown transport naming the option and the value', async () => {
    await expect(startSimulator({ transport: 'slow' as SimulatorTransport })).rejects.toThrow(
      /transport must be one of servertcp, fast \(got slow\)/,
    );
  });
});
