import { createClient, type Client } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { DeviceRegistryService } from '../../gen/powerplane/v1/devices_pb.ts';
import { DispatchService } from '../../gen/powerplane/v1/dispatch_pb.ts';
import { ReadingsService } from '../../gen/powerplane/v1/readings_pb.ts';
import { TelemetryService } from '../../gen/powerplane/v1/telemetry_pb.ts';

/** The public API of one control plane, over gRPC. */
export interface Api {
  readonly registry: Client<typeof DeviceRegistryService>;
  readonly telemetry: Client<typeof TelemetryService>;
  readonly readings: Client<typeof ReadingsService>;
  readonly dispatch: Client<typeof DispatchService>;
}

/** Clients of every product service at `baseUrl` (no vitest import: benchmarks use it too). */
export function apiAt(baseUrl: string): Api {
  const transport = createGrpcTransport({ baseUrl });
  return {
    registry: createClient(DeviceRegistryService, transport),
    telemetry: createClient(TelemetryService, transport),
    readings: createClient(ReadingsService, transport),
    dispatch: createClient(DispatchService, transport),
  };
}
