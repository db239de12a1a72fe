/**
 * What the in-memory DeviceRegistryService tests (`registry.service.*.test.ts`) share: the
 * real service, request-text, audit and error interceptors over a real database, served
 * through `createRouterTransport`, no HTTP, and builders of valid devices for a test to
 * change. The protocols themselves are the subject of `test/registry/registry.test.ts` and
 * `test/server/grpc-interop.test.ts`.
 */
import { create } from '@bufbuild/protobuf';
import type { Client } from '@connectrpc/connect';
import { DeviceSchema, DeviceType, RegisterProfile, type Device, type DeviceRegistryService } from '../../gen/powerplane/v1/devices_pb.ts';
import { createTestDatabase, type Engine, type TestDatabase } from '../../test/support/databases.ts';
import { serveInMemory, type InMemoryApi } from '../../test/support/services.ts';
import { SCOPES, UNRESTRICTED, type Principal } from '../rpc/principal.ts';

/** A DeviceRegistryService client. */
export type RegistryClient = Client<typeof DeviceRegistryService>;
/** Fields of a device a builder below takes in place of its own. */
export type DeviceOverrides = Partial<Omit<Device, '$typeName' | '$unknown'>>;

/** A caller with every scope bound to site-a only. */
export const SITE_A: Principal = { id: 'token:site-a', kind: 'token', scopes: new Set(SCOPES), sites: new Set(['site-a']) };

/**
 * A SunSpec battery `bess-1` at site-a (500 kW each way, 1000 kWh, SoE 10–90 %, four
 * inverter blocks, 50 kW/s ramp) with metadata; `overrides` replaces device fields, `bess`
 * spec fields and `endpoint` Modbus endpoint fields.
 */
export function battery(
  overrides: DeviceOverrides = {},
  bess: Record<string, unknown> = {},
  endpoint: Record<string, unknown> = {},
): Device {
  return create(DeviceSchema, {
    name: 'bess-1',
    site: 'site-a',
    type: DeviceType.BESS,
    spec: {
      case: 'bess',
      value: {
        ratedChargePowerKw: 500,
        ratedDischargePowerKw: 500,
        capacityKwh: 1000,
        minSoePercent: 10,
        maxSoePercent: 90,
        inverterBlockCount: 4,
        rampRateKwPerS: 50,
        modbus: { endpoint: { host: '127.0.0.1', port: 1502, unitId: 3, ...endpoint }, registerProfile: RegisterProfile.SUNSPEC },
        ...bess,
      },
    },
    metadata: { location: 'WLCE', firmware_version: '2.1.3' },
    ...overrides,
  });
}

/** A SunSpec meter `meter-1` at site-a, reached at meter.local; `overrides` replaces device fields. */
export function meter(overrides: DeviceOverrides = {}): Device {
  return create(DeviceSchema, {
    name: 'meter-1',
    site: 'site-a',
    type: DeviceType.METER,
    spec: { case: 'meter', value: { modbus: { endpoint: { host: 'meter.local' }, registerProfile: RegisterProfile.SUNSPEC } } },
    ...overrides,
  });
}

/** A meter set to be reached through its site's agent, which only batteries may be. */
export function relayingMeter(): Device {
  const device = meter();
  if (device.spec.case === 'meter') device.spec.value.modbus!.relay = true;
  return device;
}

/** The services over a fresh, empty database, and what the tests reach them by. */
export interface RegistryUnderTest {
  readonly testDb: TestDatabase;
  readonly api: InMemoryApi;
  /** DeviceRegistryService as an unrestricted caller. */
  readonly client: RegistryClient;
  /** Stops the services and drops the database. */
  close(): Promise<void>;
}

/** Creates a database on `engine` and serves the services over it. */
export async function serveRegistry(engine: Engine): Promise<RegistryUnderTest> {
  const testDb = await createTestDatabase(engine);
  let api: InMemoryApi | undefined;
  const close = async () => {
    await api?.close();
    await testDb.drop();
  };
  try {
    api = serveInMemory(await testDb.open(), testDb.config);
    return { testDb, api, client: api.as(UNRESTRICTED).registry, close };
  } catch (err) {
    await close();
    throw err;
  }
}
