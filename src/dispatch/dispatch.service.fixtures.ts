/**
 * The fleet the in-memory DispatchService tests (`dispatch.service.*.test.ts`) run against:
 * the real service, request-text, audit and error interceptors over a real database,
 * served through `createRouterTransport`, no HTTP and no control loop. What the control
 * loop does with an instruction (Modbus writes, verification) is the subject of
 * `test/dispatch/dispatch.test.ts`; those tests check the service's answers, what it stores
 * and which sites it asks the loop to replan (`takeReplans`).
 */
import { create } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import type { Client } from '@connectrpc/connect';
import { DeviceSchema, DeviceType, RegisterProfile } from '../../gen/powerplane/v1/devices_pb.ts';
import type { DispatchService } from '../../gen/powerplane/v1/dispatch_pb.ts';
import { createTestDatabase, type Engine, type TestDatabase } from '../../test/support/databases.ts';
import { registerBattery } from '../../test/support/fleet.ts';
import { serveInMemory, type InMemoryApi } from '../../test/support/services.ts';
import { SCOPES, UNRESTRICTED, type Principal } from '../rpc/principal.ts';

/** A DispatchService client. */
export type DispatchClient = Client<typeof DispatchService>;

/** A minute, in ms. */
export const MINUTE = 60_000;
/** A day, in ms. */
export const DAY = 86_400_000;
/** A well-formed UUID that names nothing. */
export const UNKNOWN_ID = '00000000-0000-4000-8000-000000000000';

/** A one-interval schedule from `startMs` to `endMs` at `powerKw`. */
export const interval = (startMs: number, endMs: number, powerKw = 10) => ({
  startTime: timestampFromMs(startMs),
  endTime: timestampFromMs(endMs),
  command: { case: 'powerKw' as const, value: powerKw },
});

/** A bound caller with every scope. */
export const boundTo = (id: string, sites: string[]): Principal => ({ id, kind: 'token', scopes: new Set(SCOPES), sites: new Set(sites) });

/** The services over a fresh database with a registered fleet, and what the tests reach it by. */
export interface DispatchFleet {
  readonly testDb: TestDatabase;
  readonly api: InMemoryApi;
  /** DispatchService as an unrestricted caller. */
  readonly dispatch: DispatchClient;
  /**
   * Device ids by name. Site alpha: two 100 kW batteries (`alpha0`, `alpha1`); site beta:
   * one (`beta0`), an inactive one (`retired`) and a `meter`; site gamma: one rated 50 kW
   * charge and 80 kW discharge (`gamma0`), for overrides.
   */
  readonly ids: Record<string, string>;
  /** Stops the services and drops the database. */
  close(): Promise<void>;
}

/**
 * Creates a database on `engine`, serves the services over it and registers the fleet of
 * {@link DispatchFleet.ids}; the replans its registration asked for are taken, so a test
 * sees only its own.
 */
export async function serveDispatchFleet(engine: Engine): Promise<DispatchFleet> {
  const testDb = await createTestDatabase(engine);
  let api: InMemoryApi | undefined;
  const close = async () => {
    await api?.close();
    await testDb.drop();
  };
  try {
    api = serveInMemory(await testDb.open(), testDb.config);
    const ops = api.as(UNRESTRICTED);
    const endpoint = (unitId: number) => ({ host: '127.0.0.1', port: 1, unitId });
    const ids: Record<string, string> = {};
    ids.alpha0 = await registerBattery(ops.registry, 'alpha', 'alpha-0', endpoint(1));
    ids.alpha1 = await registerBattery(ops.registry, 'alpha', 'alpha-1', endpoint(2));
    ids.beta0 = await registerBattery(ops.registry, 'beta', 'beta-0', endpoint(3));
    ids.gamma0 = await registerBattery(ops.registry, 'gamma', 'gamma-0', endpoint(4), {
      ratedChargePowerKw: 50,
      ratedDischargePowerKw: 80,
    });
    ids.retired = await registerBattery(ops.registry, 'beta', 'retired', endpoint(5));
    await ops.registry.deactivateDevice({ id: ids.retired });
    const meter = create(DeviceSchema, {
      name: 'meter',
      site: 'beta',
      type: DeviceType.METER,
      spec: { case: 'meter', value: { modbus: { endpoint: endpoint(6), registerProfile: RegisterProfile.SUNSPEC } } },
    });
    ids.meter = (await ops.registry.createDevice({ device: meter })).device!.id;
    api.takeReplans();
    return { testDb, api, dispatch: ops.dispatch, ids, close };
  } catch (err) {
    await close();
    throw err;
  }
}
