import { create } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { DeviceRegistryService, DeviceSchema, DeviceType, RegisterProfile } from '../gen/powerplane/v1/devices_pb.ts';
import { DispatchService } from '../gen/powerplane/v1/dispatch_pb.ts';
import { toConfig } from '../src/config.ts';
import { startServer, type Server } from '../src/server/server.ts';
import { startSimulator } from '../src/simulator/simulator.ts';
import { createTestDatabase, silentLog } from './support/databases.ts';

async function eventually(check: () => boolean | Promise<boolean>, what: string, attempts = 200): Promise<void> {
  for (let i = 0; i < attempts; i++) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('two replicas on one PostgreSQL', () => {
  it('let exactly one run the control loop, and the other take over when it stops', async () => {
    const sim = await startSimulator({ bess: 1 });
    const testDatabase = await createTestDatabase('postgres');
    const defaults = toConfig({ listen: '127.0.0.1:0' });
    const config = { ...defaults, database: testDatabase.config, dispatch: { ...defaults.dispatch, controlPeriodMs: 300 } };
    const servers: Server[] = [];
    try {
      servers.push(await startServer(config, { log: silentLog }));
      servers.push(await startServer(config, { log: silentLog }));
      await eventually(() => servers.filter((s) => s.controlsBatteries()).length === 1, 'one leader');
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(servers.filter((s) => s.controlsBatteries())).toHaveLength(1);

      const follower = servers.find((s) => !s.controlsBatteries())!;
      const transport = createGrpcTransport({ baseUrl: `http://127.0.0.1:${follower.address.port}` });
      const device = sim.bess[0]!;
      const { device: battery } = await createClient(DeviceRegistryService, transport).createDevice({
        device: create(DeviceSchema, {
          name: 'replicated', site: 'r', type: DeviceType.BESS,
          spec: { case: 'bess', value: { ratedChargePowerKw: 100, ratedDischargePowerKw: 100, capacityKwh: 200, reversionTimeoutS: 2, modbus: { endpoint: device.endpoint, registerProfile: RegisterProfile.SUNSPEC } } },
        }),
      });
      await sql`insert into flux.mg_bess_readings (time, device_id, soe, command_source) values (now(), ${battery!.id}, 50, 2)`.execute(follower.database.db);
      await createClient(DispatchService, transport).submitDispatch({
        requestId: 'replicas',
        target: { case: 'site', value: 'r' },
        intervals: [{ startTime: timestampFromMs(Date.now() - 1000), endTime: timestampFromMs(Date.now() + 120_000), command: { case: 'powerKw', value: 25 } }],
      });
      await eventually(() => device.state().wsetW === 25_000 && device.state().wsetEna === 1, 'the leader to dispatch the battery');

      const leader = servers.find((s) => s.controlsBatteries())!;
      await leader.stop();
      await eventually(() => follower.controlsBatteries(), 'the follower to take over', 200);
      const writesBefore = sim.writeLog.length;
      await eventually(() => sim.writeLog.length > writesBefore + 2, 'the new leader to write to the battery');
      expect(device.state().wsetW).toBe(25_000);
    } finally {
      await Promise.all(servers.map((s) => s.stop()));
      await testDatabase.drop();
      await sim.stop();
    }
  }, 60_000);
});
