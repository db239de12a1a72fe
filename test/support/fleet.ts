import { create } from '@bufbuild/protobuf';
import type { Client } from '@connectrpc/connect';
import { DeviceRegistryService, DeviceSchema, DeviceType, RegisterProfile, type BessSpec } from '../../gen/powerplane/v1/devices_pb.ts';
import type { ModbusEndpoint } from '../../src/modbus/types.ts';

/**
 * Registers a SunSpec battery at `endpoint` (100 kW each way, 200 kWh unless `spec` says
 * otherwise; `relay` for a battery reached through its site's agent) through the public API
 * and returns its id. Shared by tests and benchmarks.
 */
export async function registerBattery(
  registry: Client<typeof DeviceRegistryService>,
  site: string,
  name: string,
  endpoint: ModbusEndpoint,
  spec: Partial<Omit<BessSpec, '$typeName' | 'modbus'>> = {},
  options: { relay?: boolean } = {},
): Promise<string> {
  const { device } = await registry.createDevice({
    device: create(DeviceSchema, {
      name,
      site,
      type: DeviceType.BESS,
      spec: {
        case: 'bess',
        value: {
          ratedChargePowerKw: 100,
          ratedDischargePowerKw: 100,
          capacityKwh: 200,
          ...spec,
          modbus: {
            endpoint: { host: endpoint.host, port: endpoint.port, unitId: endpoint.unitId },
            registerProfile: RegisterProfile.SUNSPEC,
            relay: options.relay ?? false,
          },
        },
      },
    }),
  });
  return device!.id;
}
