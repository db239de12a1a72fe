/**
 * The fleet summary's arithmetic, pure: what each battery adds to its site's totals, and
 * what a site's instructions in force ask for that its batteries are not set to deliver.
 * The facts come from the control state (`dispatch/control-state.ts`) and the fleet's
 * queries (`fleet.repository.ts`); nothing here reads a clock or a database.
 */
import type { BatteryState } from '../dispatch/control-state.ts';
import { governingByTarget, type Instruction } from '../dispatch/instruction.ts';
import type { Device } from '../registry/registered-device.ts';
import type { FailureRun } from './fleet.repository.ts';

/** What is known of one active battery. */
export interface BatteryFacts {
  readonly device: Device;
  readonly state: BatteryState;
  /** Present when its latest setpoint outcome is a failure. */
  readonly failure?: FailureRun;
  /** Since when it has reported the command source it reports now (see `findReportedSince`). */
  readonly reportedSince?: Date;
}

/** Totals of a set of batteries, as FleetTotals in the API. */
export interface Totals {
  batteryCount: number;
  onlineCount: number;
  staleCount: number;
  failedCount: number;
  availableChargeKw: number;
  availableDischargeKw: number;
  energyStoredKwh: number;
  energyMinKwh: number;
  energyMaxKwh: number;
  reportedPowerKw: number;
  setpointPowerKw: number;
}

/** Totals of no battery. */
export function emptyTotals(): Totals {
  return {
    batteryCount: 0,
    onlineCount: 0,
    staleCount: 0,
    failedCount: 0,
    availableChargeKw: 0,
    availableDischargeKw: 0,
    energyStoredKwh: 0,
    energyMinKwh: 0,
    energyMaxKwh: 0,
    reportedPowerKw: 0,
    setpointPowerKw: 0,
  };
}

/** Whether a battery's latest reading is missing or older than `maxAgeMs` at `at` (the planner then holds it). */
export function isStale(state: Pick<BatteryState, 'lastTelemetryTime'>, at: Date, maxAgeMs: number): boolean {
  return state.lastTelemetryTime === undefined || at.getTime() - state.lastTelemetryTime.getTime() > maxAgeMs;
}

/**
 * Whether a battery cannot be counted on for power now: stale or without SoE (the planner
 * holds it at 0 kW), failed, or under a manual override (its power is the operator's).
 */
export function isHeld(b: BatteryFacts, at: Date, maxAgeMs: number): boolean {
  return (
    isStale(b.state, at, maxAgeMs) || b.state.soePercent === undefined || b.failure !== undefined || b.state.manualExpireTime !== undefined
  );
}

/**
 * Adds one active battery to `totals`. Every battery counts in `batteryCount` and in one or
 * more of online (fresh, not failed), stale and failed; only one with a reading adds
 * energy and power: energy from its SoE (capacity × SoE, its range capacity × min and max
 * SoE), reported power from the reading, setpoint from the current setpoint, and, when
 * not held ({@link isHeld}), its rated power × available inverter blocks ÷ blocks.
 */
export function addBattery(totals: Totals, b: BatteryFacts, at: Date, maxAgeMs: number): void {
  const { state } = b;
  const stale = isStale(state, at, maxAgeMs);
  totals.batteryCount++;
  if (stale) totals.staleCount++;
  if (b.failure) totals.failedCount++;
  if (!stale && !b.failure) totals.onlineCount++;
  if (state.lastTelemetryTime === undefined) return;
  const spec = b.device.bess;
  const capacity = spec?.capacityKwh ?? 0;
  if (state.soePercent !== undefined) {
    totals.energyStoredKwh += (capacity * state.soePercent) / 100;
    totals.energyMinKwh += (capacity * (spec?.minSoePercent ?? 0)) / 100;
    totals.energyMaxKwh += (capacity * (spec?.maxSoePercent ?? 100)) / 100;
  }
  totals.reportedPowerKw += state.reportedPowerKw ?? 0;
  totals.setpointPowerKw += state.targetPowerKw;
  if (spec && !isHeld(b, at, maxAgeMs)) {
    const blocks = Math.max(1, spec.inverterBlockCount);
    const share = Math.min(blocks, Math.max(0, state.availableInverterBlocks ?? blocks)) / blocks;
    totals.availableChargeKw += spec.ratedChargePowerKw * share;
    totals.availableDischargeKw += spec.ratedDischargePowerKw * share;
  }
}

/** `a` with `b` added to it. */
export function addTotals(a: Totals, b: Totals): void {
  for (const key of Object.keys(a) as Array<keyof Totals>) a[key] += b[key];
}

/** `totals` with every energy and power rounded to 0.001 (sums of floats carry noise below it). */
export function rounded(totals: Totals): Totals {
  const r = (v: number) => Math.round(v * 1000) / 1000 || 0;
  return {
    ...totals,
    availableChargeKw: r(totals.availableChargeKw),
    availableDischargeKw: r(totals.availableDischargeKw),
    energyStoredKwh: r(totals.energyStoredKwh),
    energyMinKwh: r(totals.energyMinKwh),
    energyMaxKwh: r(totals.energyMaxKwh),
    reportedPowerKw: r(totals.reportedPowerKw),
    setpointPowerKw: r(totals.setpointPowerKw),
  };
}

/** What one instruction in force asks and what its batteries are set to. */
export interface Shortfall {
  readonly instructionId: string;
  /** The power asked, kW, signed (positive = discharge). */
  readonly requestedKw: number;
  /** The sum of the current setpoints of the batteries it governs, kW. */
  readonly deliveredKw: number;
  /** The part of the request not delivered, kW, > 0. */
  readonly undeliveredKw: number;
  /** Since when, as far as stored: the later of its start and its batteries' latest setpoint step. */
  readonly since: Date;
}

/**
 * The instructions in force at one site that its batteries are not set to deliver, each
 * judged as the control loop plans it: the governing battery-level instruction of each
 * battery, and the governing site-wide one for the site's other batteries (batteries under
 * a manual override follow neither). A power command asks that power; CHARGE_MAX and
 * DISCHARGE_MAX ask the governed batteries' summed rating, held ones included, as the
 * planner asks them; AVOID_IMPORT and AVOID_EXPORT ask no fixed power and are not judged.
 * An instruction counts once the loop has planned it (a governed battery's latest
 * setpoint carries it), so a new one is not a shortfall before its first period; what it
 * asks beyond the sum of its batteries' current setpoints, in its direction, is the
 * shortfall, less the setpoints' rounding (0.001 kW a battery).
 */
export function shortfalls(batteries: readonly BatteryFacts[], instructions: readonly Instruction[], at: Date): Shortfall[] {
  const governing = governingByTarget(instructions, at);
  const free = batteries.filter((b) => b.state.manualExpireTime === undefined);
  const targets: Array<{ instruction: Instruction; governed: BatteryFacts[] }> = [];
  for (const b of free) {
    const own = governing.devices.get(b.device.id);
    if (own) targets.push({ instruction: own, governed: [b] });
  }
  if (governing.site) {
    const governed = free.filter((b) => !governing.devices.has(b.device.id));
    if (governed.length > 0) targets.push({ instruction: governing.site, governed });
  }
  const found: Shortfall[] = [];
  for (const { instruction, governed } of targets) {
    const requestedKw = requested(instruction, governed);
    if (requestedKw === undefined) continue;
    const following = governed.filter((b) => b.state.lastEvent?.instructionId === instruction.id);
    if (following.length === 0) continue;
    const deliveredKw = following.reduce((sum, b) => sum + b.state.targetPowerKw, 0);
    const short = requestedKw >= 0 ? requestedKw - deliveredKw : deliveredKw - requestedKw;
    if (short <= 0.001 * governed.length + 1e-9) continue;
    const latest = Math.max(...following.map((b) => b.state.lastEvent!.at.getTime()));
    found.push({
      instructionId: instruction.id,
      requestedKw,
      deliveredKw,
      undeliveredKw: Math.round(short * 1000) / 1000,
      since: new Date(Math.max(instruction.startTime.getTime(), latest)),
    });
  }
  return found;
}

function requested(instruction: Instruction, governed: readonly BatteryFacts[]): number | undefined {
  const { command } = instruction;
  if ('powerKw' in command) return command.powerKw;
  const rated = (key: 'ratedChargePowerKw' | 'ratedDischargePowerKw') => governed.reduce((sum, b) => sum + (b.device.bess?.[key] ?? 0), 0);
  switch (command.action) {
    case 'CHARGE_MAX':
      return -rated('ratedChargePowerKw');
    case 'DISCHARGE_MAX':
      return rated('ratedDischargePowerKw');
    case 'AVOID_IMPORT':
    case 'AVOID_EXPORT':
      return undefined;
    default: {
      const unknown: never = command.action;
      throw new Error(`unknown dispatch action ${String(unknown)}`);
    }
  }
}
