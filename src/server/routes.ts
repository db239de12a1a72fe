import type { DescFile } from '@bufbuild/protobuf';
import type { ConnectRouter, ServiceImpl } from '@connectrpc/connect';
import { file_grpc_health_v1_health, Health } from '../../gen/grpc/health/v1/health_pb.ts';
import { file_grpc_reflection_v1_reflection, ServerReflection as ReflectionV1 } from '../../gen/grpc/reflection/v1/reflection_pb.ts';
import {
  file_grpc_reflection_v1alpha_reflection,
  ServerReflection as ReflectionV1alpha,
} from '../../gen/grpc/reflection/v1alpha/reflection_pb.ts';
import { file_powerplane_v1_auth, TokenService } from '../../gen/powerplane/v1/auth_pb.ts';
import { DeviceRegistryService, file_powerplane_v1_devices } from '../../gen/powerplane/v1/devices_pb.ts';
import { DispatchService, file_powerplane_v1_dispatch } from '../../gen/powerplane/v1/dispatch_pb.ts';
import { file_powerplane_v1_fleet, FleetService } from '../../gen/powerplane/v1/fleet_pb.ts';
import { file_powerplane_v1_readings, ReadingsService } from '../../gen/powerplane/v1/readings_pb.ts';
import { file_powerplane_v1_telemetry, TelemetryService } from '../../gen/powerplane/v1/telemetry_pb.ts';
import { registerDispatchService } from '../dispatch/setpoint-watch.service.ts';
import { registerTelemetryService, type TelemetryServiceImpl } from '../telemetry/wire-view.ts';
import { createReflectionServices } from './reflection.ts';

/** The implementations the server routes to. */
export interface Services {
  readonly registry: ServiceImpl<typeof DeviceRegistryService>;
  readonly telemetry: TelemetryServiceImpl;
  readonly readings: ServiceImpl<typeof ReadingsService>;
  readonly dispatch: ServiceImpl<typeof DispatchService>;
  readonly fleet: ServiceImpl<typeof FleetService>;
  readonly tokens: ServiceImpl<typeof TokenService>;
  readonly health: ServiceImpl<typeof Health>;
}

/** The product's own services, by full name; health reports on each. */
export const PRODUCT_SERVICES = [TelemetryService, ReadingsService, DeviceRegistryService, DispatchService, FleetService, TokenService].map(
  (s) => s.typeName,
);

/** Every file whose services are served, for reflection. */
const SERVED_FILES: readonly DescFile[] = [
  file_powerplane_v1_telemetry,
  file_powerplane_v1_readings,
  file_powerplane_v1_devices,
  file_powerplane_v1_dispatch,
  file_powerplane_v1_fleet,
  file_powerplane_v1_auth,
  file_grpc_health_v1_health,
  file_grpc_reflection_v1_reflection,
  file_grpc_reflection_v1alpha_reflection,
];

/** The one place services are registered. */
export function registerRoutes(router: ConnectRouter, services: Services): void {
  router.service(DeviceRegistryService, services.registry);
  // Binary requests through the wire view (batches decoded by hand), JSON ones as generated.
  registerTelemetryService(router, services.telemetry);
  router.service(ReadingsService, services.readings);
  // WatchSetpoints in binary through the wire view (events encoded by hand), JSON as generated.
  registerDispatchService(router, services.dispatch);
  router.service(FleetService, services.fleet);
  router.service(TokenService, services.tokens);
  router.service(Health, services.health);
  const reflection = createReflectionServices(SERVED_FILES);
  router.service(ReflectionV1, reflection.v1);
  router.service(ReflectionV1alpha, reflection.v1alpha);
}
