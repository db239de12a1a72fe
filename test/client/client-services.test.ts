import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Code,
  CommandSource,
  ConnectError,
  createPowerplaneClient,
  DeviceType,
  listAll,
  RegisterProfile,
  SetpointPhase,
  timestampFromMs,
  type PowerplaneClient,
  type PowerplaneClientOptions,
  type SetpointEvent,
} from '../../src/client/index.ts';
import { createTokenStore } from '../../src/auth/tokens.ts';
import { toConfig } from '../../src/config.ts';
import { startSimulator, type Simulator } from '../../src/simulator/simulator.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const TRANSPORTS = [
  { name: 'gRPC', options: { transport: 'grpc' }, power: 30 },
  { name: 'Connect over HTTP/1.1', options: { transport: 'connect' }, power: 40 },
] as const;

describe('the client against a control plane, on each transport', () => {
  let t: TestServer;
  let sim: Simulator;
  let token: string;
  let tokenId: string;

  beforeAll(async () => {
    sim = await startSimulator({ bess: 1 });
    const defaults = toConfig({});
    t = await startTestServer('pglite', {
      auth: { ...defaults.auth, enabled: true },
      dispatch: { ...defaults.dispatch, controlPeriodMs: 250, heartbeatIntervalMs: 300 },
    });
    const store = createTokenStore({ db: t.server.database.db, cacheMs: 0 });
    const created = await store.create(
      { name: 'desk', scopes: ['readings:read', 'registry:admin', 'dispatch:write', 'marketdata:write', 'telemetry:write'], sites: [] },
      'test',
    );
    token = created.secret;
    tokenId = created.info.id;
  });
  afterAll(async () => {
    await t?.stop();
    await sim?.stop();
  });

  describe.each(TRANSPORTS)('$name', ({ options, power }) => {
    let client: PowerplaneClient;
    const site = `site-${options.transport}`;
    let batteryId: string;
    const clientWith = (more: Partial<PowerplaneClientOptions> = {}) =>
      createPowerplaneClient({ baseUrl: t.baseUrl, token, ...options, ...more });

    beforeAll(() => {
      client = clientWith();
    });
    afterAll(() => client?.close());

    it('sends the bearer token: without one the server refuses, with it the caller is the token', async () => {
      const anonymous = clientWith({ token: undefined });
      await expect(anonymous.tokens.getCaller({})).rejects.toMatchObject({ code: Code.Unauthenticated });
      anonymous.close();
      expect((await client.tokens.getCaller({})).principal).toBe(`token:${tokenId}`);
    });

    it('registers devices, lists them page by page with listAll, and maps a refusal to its code naming the field', async () => {
      const { device } = await client.devices.createDevice({
        device: {
          name: 'bess-1',
          site,
          type: DeviceType.BESS,
          spec: {
            case: 'bess',
            value: {
              ratedChargePowerKw: 100,
              ratedDischargePowerKw: 100,
              capacityKwh: 200,
              modbus: { endpoint: { ...sim.bess[0]!.endpoint }, registerProfile: RegisterProfile.SUNSPEC },
            },
          },
        },
      });
      batteryId = device!.id;
      for (const meter of ['meter-1', 'meter-2']) {
        await client.devices.createDevice({
          device: {
            name: meter,
            site,
            type: DeviceType.METER,
            spec: {
              case: 'meter',
              value: { modbus: { endpoint: { host: '127.0.0.1', port: 1502, unitId: 1 }, registerProfile: RegisterProfile.SUNSPEC } },
            },
          },
        });
      }
      const names: string[] = [];
      for await (const d of listAll(client.devices.listDevices, { site, pageSize: 1 }, (page) => page.devices)) names.push(d.name);
      expect(names).toEqual(['bess-1', 'meter-1', 'meter-2']);

      const err = await client.devices
        .createDevice({
          device: {
            name: 'bad',
            site,
            type: DeviceType.BESS,
            spec: {
              case: 'bess',
              value: {
                ratedChargePowerKw: 100,
                ratedDischargePowerKw: 100,
                capacityKwh: 200,
                minSoePercent: 80,
                maxSoePercent: 20,
                modbus: { endpoint: { ...sim.bess[0]!.endpoint }, registerProfile: RegisterProfile.SUNSPEC },
              },
            },
          },
        })
        .catch((e: unknown) => ConnectError.from(e));
      expect(err).toBeInstanceOf(ConnectError);
      expect((err as ConnectError).code).toBe(Code.InvalidArgument);
      expect((err as ConnectError).rawMessage).toContain('device.bess.min_soe_percent');
    });

    it('writes a reading and reads it back', async () => {
      const { ack } = await client.telemetry.writeReadings({
        batch: {
          sequence: 1n,
          bessReadings: [
            {
              deviceId: batteryId,
              time: timestampFromMs(Date.now()),
              soePercent: 50,
              availableInverterBlocks: 1,
              commandSource: CommandSource.DISPATCH,
            },
          ],
        },
      });
      expect(ack).toMatchObject({ storedCount: 1, rejectedCount: 0 });
      const { states } = await client.readings.getLatestBessState({ deviceIds: [batteryId] });
      expect(states.map((s) => [s.deviceId, s.soePercent])).toEqual([[batteryId, 50]]);
    });

    it(`publishes market data, dispatches ${power} kW and watches the battery verify it`, async () => {
      const now = Date.now();
      const published = await client.dispatch.publishMarketData({
        points: [{ time: timestampFromMs(now - (now % 1_800_000)), type: 'imbalance_price', value: power }],
      });
      expect(published.storedCount + published.revisedCount).toBe(1);

      // The watch opens before the dispatch; events are kept until the instruction id is known.
      const seen: SetpointEvent[] = [];
      let ours: string | undefined = undefined;
      let found: (event: SetpointEvent) => void = () => undefined;
      const verified = new Promise<SetpointEvent>((resolve) => (found = resolve));
      const check = () => {
        const event = seen.find((e) => ours !== undefined && e.instructionId === ours);
        if (event) found(event);
      };
      const stop = new AbortController();
      const watching = (async () => {
        for await (const event of client.watchSetpoints(
          { deviceId: batteryId, phases: [SetpointPhase.VERIFIED] },
          { signal: stop.signal },
        )) {
          seen.push(event);
          check();
        }
      })().catch(() => undefined);
      const { instructions } = await client.dispatch.submitDispatch({
        target: { case: 'deviceId', value: batteryId },
        intervals: [
          { startTime: timestampFromMs(now), endTime: timestampFromMs(now + 600_000), command: { case: 'powerKw', value: power } },
        ],
      });
      ours = instructions[0]!.id;
      check();
      // The client filled in the request id the server stored with the instruction.
      expect(instructions[0]!.requestId).toMatch(/^[0-9a-f-]{36}$/);
      const timer = setTimeout(() => stop.abort(), 30_000);
      const event = await Promise.race([verified, watching.then(() => undefined)]);
      clearTimeout(timer);
      stop.abort();
      expect(event).toMatchObject({ deviceId: batteryId, targetPowerKw: power, phase: SetpointPhase.VERIFIED });
      expect(sim.bess[0]!.state().wsetW).toBe(power * 1000);
    });

    it('reaches the fleet service', async () => {
      // FleetService is declared in the API; a server that does not serve it yet answers UNIMPLEMENTED.
      const outcome = await client.fleet.getFleetSummary({ sites: [site] }).then(
        (res) => res.$typeName as string,
        (e: unknown) => Code[ConnectError.from(e).code],
      );
      expect(['powerplane.v1.GetFleetSummaryResponse', 'Unimplemented']).toContain(outcome);
    });
  });
});
