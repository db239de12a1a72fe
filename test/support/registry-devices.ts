import type { BessSpec, Device } from '../../src/registry/registered-device.ts';
import type { Registry } from '../../src/registry/registry.ts';

/** A SunSpec battery of 100 kW each way and 200 kWh, for tests that register through the registry itself. */
export const TEST_BESS: BessSpec = {
  ratedChargePowerKw: 100,
  ratedDischargePowerKw: 100,
  capacityKwh: 200,
  minSoePercent: 0,
  maxSoePercent: 100,
  inverterBlockCount: 1,
  rampRateKwPerS: 0,
  reversionTimeoutS: 30,
  modbus: { host: '127.0.0.1', port: 502, unitId: 1, registerProfile: 'sunspec', pollingIntervalMs: 1_000 },
};

/** Registers a battery of {@link TEST_BESS} (with `bess` changed) straight through `registry`, as an unbound caller. */
export function createTestBattery(registry: Registry, site: string, name: string, bess: Partial<BessSpec> = {}): Promise<Device> {
  return registry.createDevice({ name, type: 'bess', site, metadata: {}, bess: { ...TEST_BESS, ...bess } }, '', 'test', undefined as never);
}
