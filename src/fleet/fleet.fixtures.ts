/**
 * Batteries as the fleet summary's pure functions see them, for their table tests
 * (`fleet-totals.test.ts`, `fleet-alerts.test.ts`): a registered battery and its control
 * state, each field overridable.
 */
import type { BatteryState } from '../dispatch/control-state.ts';
import type { Device } from '../registry/registered-device.ts';
import type { BatteryFacts } from './fleet-totals.ts';
import type { FailureRun } from './fleet.repository.ts';

/** The instant the tests summarise at. */
export const AT = new Date('2026-06-01T12:00:00Z');
/** The telemetry age limit of the tests, ms. */
export const LIMIT_MS = 30_000;

/** `ms` before {@link AT}. */
export const ago = (ms: number) => new Date(AT.getTime() - ms);

/** What a test changes of a battery. */
export interface BatteryChanges {
  readonly id?: string;
  readonly name?: string;
  readonly site?: string;
  readonly registeredAgoMs?: number;
  readonly bess?: Partial<NonNullable<Device['bess']>>;
  readonly state?: Partial<BatteryState>;
  readonly failure?: Partial<FailureRun>;
  readonly reportedSince?: Date;
}

/**
 * A battery of site `s` (100 kW each way, 200 kWh, SoE limits 10–90 %, 4 inverter blocks)
 * registered an hour ago, with a fresh reading (5 s ago, SoE 50 %, 0 kW, every block),
 * not planned yet; a `failure` makes its latest setpoint outcome a failure.
 */
export function battery(changes: BatteryChanges = {}): BatteryFacts {
  const id = changes.id ?? 'b1';
  const site = changes.site ?? 's';
  const device: Device = {
    id,
    name: changes.name ?? id,
    type: 'bess',
    site,
    active: true,
    createdAt: ago(changes.registeredAgoMs ?? 3_600_000),
    metadata: {},
    bess: {
      ratedChargePowerKw: 100,
      ratedDischargePowerKw: 100,
      capacityKwh: 200,
      minSoePercent: 10,
      maxSoePercent: 90,
      inverterBlockCount: 4,
      rampRateKwPerS: 0,
      reversionTimeoutS: 60,
      modbus: { host: '127.0.0.1', port: 502, unitId: 1, registerProfile: 'sunspec', pollingIntervalMs: 1_000 },
      ...changes.bess,
    },
  };
  const state: BatteryState = {
    deviceId: id,
    site,
    sourceMismatch: false,
    targetPowerKw: 0,
    reason: 'not planned yet',
    lastTelemetryTime: ago(5_000),
    soePercent: 50,
    reportedPowerKw: 0,
    epoch: 0,
    ...changes.state,
  };
  const failure: FailureRun | undefined = changes.failure
    ? { deviceId: id, since: ago(60_000), at: ago(10_000), reason: 'refused', targetPowerKw: 0, ...changes.failure }
    : undefined;
  return { device, state, ...(failure ? { failure } : {}), ...(changes.reportedSince ? { reportedSince: changes.reportedSince } : {}) };
}
