import { create } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError } from '@connectrpc/connect';
import { expect } from 'vitest';
import { BessReadingSchema, CommandSource } from '../../gen/powerplane/v1/telemetry_pb.ts';
import type { SimulatedDevice, Simulator, WriteLogEntry } from '../../src/simulator/simulator.ts';
import type { Api } from './api-clients.ts';

export { apiAt, type Api } from './api-clients.ts';

/** The error a call fails with (it must fail with a ConnectError): its code name and message. */
export async function errorOf(call: Promise<unknown>): Promise<{ code: string; message: string }> {
  const err = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ConnectError);
  return { code: Code[(err as ConnectError).code], message: (err as ConnectError).rawMessage };
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
