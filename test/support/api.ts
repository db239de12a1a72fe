import { create } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError, createClient, type Client } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { expect } from 'vitest';
import { DeviceRegistryService } from '../../gen/powerplane/v1/devices_pb.ts';
import { DispatchService } from '../../gen/powerplane/v1/dispatch_pb.ts';
import { ReadingsService } from '../../gen/powerplane/v1/readings_pb.ts';
import { BessReadingSchema, CommandSource, TelemetryService } from '../../gen/powerplane/v1/telemetry_pb.ts';
import type { SimulatedDevice, Simulator, WriteLogEntry } from '../../src/simulator/simulator.ts';

/** The error a call fails with (it must fail with a ConnectError): its code name and message. */
export async function errorOf(call: Promise<unknown>): Promise<{ code: string; message: string }> {
  const err = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ConnectError);
  return { code: Code[(err as ConnectError).code], message: (err as ConnectError).rawMessage };
}

/** The public API of one control plane, over gRPC. */
export interface Api {
  readonly registry: Client<typeof DeviceRegistryService>;
  readonly telemetry: Client<typeof TelemetryService>;
  readonly readings: Client<typeof ReadingsService>;
  readonly dispatch: Client<typeof DispatchService>;
}

/** Clients of every product service at `baseUrl`. */
export function apiAt(baseUrl: string): Api {
  const transport = createGrpcTransport({ baseUrl });
  return {
    registry: createClient(DeviceRegistryService, transport),
    telemetry: createClient(TelemetryService, transport),
    readings: createClient(ReadingsService, transport),
    dispatch: createClient(DispatchService, transport),
  };
}

/**
 * Sends one fresh battery reading per battery through `WriteReadings`, as an agent would,
 * so the planner has telemetry younger than its limit and drives the batteries.
 */
export async function reportBatteries(api: Api, deviceIds: readonly string[], sequence: number, soePercent = 50): Promise<void> {
  const now = Date.now();
  await api.telemetry.writeReadings({
    batch: {
      sequence: BigInt(sequence),
      bessReadings: deviceIds.map((deviceId) =>
        create(BessReadingSchema, {
          deviceId,
          time: timestampFromMs(now),
          soePercent,
          availableInverterBlocks: 1,
          commandSource: CommandSource.DISPATCH,
        }),
      ),
    },
  });
}

/** The writes `device` received, oldest first. */
export function writesTo(sim: Simulator, device: SimulatedDevice): WriteLogEntry[] {
  const { port, unitId } = device.endpoint;
  return sim.writeLog.filter((w) => w.port === port && w.unitId === unitId);
}
