import { InvalidArgumentError } from '../errors.ts';
import type { BessSpec } from '../registry/registered-device.ts';

/** Directional commands, as in an Axle-style schedule. */
export const DISPATCH_ACTIONS = ['CHARGE_MAX', 'DISCHARGE_MAX', 'AVOID_IMPORT', 'AVOID_EXPORT'] as const;
export type DispatchAction = (typeof DISPATCH_ACTIONS)[number];

/** What an instruction controls: every battery of a site, or one battery. */
export type DispatchTarget = { readonly site: string } | { readonly deviceId: string };

/** What the target should do: a power (kW, + discharge) or an action. */
export type DispatchCommand = { readonly powerKw: number } | { readonly action: DispatchAction };

/** Where an instruction is in its life; derived from its times and cancellation. */
export type DispatchState = 'PENDING' | 'ACTIVE' | 'COMPLETED' | 'CANCELLED';

/** One stored interval of a submitted schedule. */
export interface Instruction {
  readonly id: string;
  readonly requestId: string;
  readonly target: DispatchTarget;
  readonly startTime: Date;
  readonly endTime: Date;
  readonly command: DispatchCommand;
  readonly priority: number;
  readonly principal: string;
  readonly createdAt: Date;
  readonly cancelledAt?: Date;
  readonly cancelReason?: string;
}

/** A submitted schedule before it is stored. */
export interface SubmitInput {
  readonly requestId: string;
  readonly target: DispatchTarget;
  readonly intervals: ReadonlyArray<{ startTime?: Date; endTime?: Date; command?: DispatchCommand }>;
  readonly priority: number;
}

/** The state of `instruction` at `now`. */
export function instructionState(instruction: Instruction, now: Date): DispatchState {
  if (instruction.cancelledAt) return 'CANCELLED';
  if (instruction.endTime <= now) return 'COMPLETED';
  return instruction.startTime <= now ? 'ACTIVE' : 'PENDING';
}

/** How far ahead of now an instruction may end unless configured otherwise: 7 days. */
export const DEFAULT_MAX_INSTRUCTION_AHEAD_MS = 7 * 86_400_000;

/**
 * Checks a schedule against the batteries it targets and throws INVALID_ARGUMENT naming
 * the first bad field: request id, priority, interval count, each window (present, end
 * after start, not already over, ending at most `maxAheadMs` after `now`, no overlap with
 * another interval of the schedule) and each command (finite power within the target's
 * combined rating, a known action). Pure.
 */
export function validateSubmit(
  input: SubmitInput,
  batteries: ReadonlyArray<Pick<BessSpec, 'ratedChargePowerKw' | 'ratedDischargePowerKw'>>,
  now: Date,
  maxAheadMs = DEFAULT_MAX_INSTRUCTION_AHEAD_MS,
): void {
  if (input.requestId.trim() === '') throw new InvalidArgumentError('request_id', input.requestId, 'is required');
  if (input.requestId.length > 100) throw new InvalidArgumentError('request_id', input.requestId, 'must be at most 100 characters');
  if (!Number.isInteger(input.priority) || input.priority < -1000 || input.priority > 1000) {
    throw new InvalidArgumentError('priority', input.priority, 'must be a whole number from -1000 to 1000');
  }
  if (input.intervals.length === 0 || input.intervals.length > 1000) {
    throw new InvalidArgumentError('intervals', input.intervals.length, 'must hold 1 to 1000 intervals');
  }
  const maxDischarge = batteries.reduce((sum, b) => sum + b.ratedDischargePowerKw, 0);
  const maxCharge = batteries.reduce((sum, b) => sum + b.ratedChargePowerKw, 0);
  const windows: Array<{ start: number; end: number; index: number }> = [];
  input.intervals.forEach((interval, i) => {
    const field = `intervals[${i}]`;
    if (!interval.startTime) throw new InvalidArgumentError(`${field}.start_time`, undefined, 'is required');
    if (!interval.endTime) throw new InvalidArgumentError(`${field}.end_time`, undefined, 'is required');
    if (interval.endTime <= interval.startTime) {
      throw new InvalidArgumentError(
        `${field}.end_time`,
        interval.endTime.toISOString(),
        `must be after start_time (${interval.startTime.toISOString()})`,
      );
    }
    if (interval.endTime <= now) throw new InvalidArgumentError(`${field}.end_time`, interval.endTime.toISOString(), 'is already over');
    if (interval.endTime.getTime() - now.getTime() > maxAheadMs) {
      throw new InvalidArgumentError(
        `${field}.end_time`,
        interval.endTime.toISOString(),
        `must be at most ${formatDays(maxAheadMs)} ahead of now`,
      );
    }
    const command = interval.command;
    if (!command) throw new InvalidArgumentError(`${field}.command`, undefined, 'is required (power_kw or action)');
    if ('powerKw' in command) {
      if (!Number.isFinite(command.powerKw))
        throw new InvalidArgumentError(`${field}.power_kw`, command.powerKw, 'must be a finite number');
      if (command.powerKw > maxDischarge) {
        throw new InvalidArgumentError(
          `${field}.power_kw`,
          command.powerKw,
          `exceeds the target's rated discharge power (${maxDischarge} kW)`,
        );
      }
      if (-command.powerKw > maxCharge) {
        throw new InvalidArgumentError(`${field}.power_kw`, command.powerKw, `exceeds the target's rated charge power (${maxCharge} kW)`);
      }
    } else if (!DISPATCH_ACTIONS.includes(command.action)) {
      throw new InvalidArgumentError(`${field}.action`, command.action, `must be one of ${DISPATCH_ACTIONS.join(' | ')}`);
    }
    windows.push({ start: interval.startTime.getTime(), end: interval.endTime.getTime(), index: i });
  });
  windows.sort((a, b) => a.start - b.start);
  for (let i = 1; i < windows.length; i++) {
    const [previous, current] = [windows[i - 1]!, windows[i]!];
    if (current.start < previous.end) {
      throw new InvalidArgumentError(
        `intervals[${current.index}].start_time`,
        new Date(current.start).toISOString(),
        `overlaps intervals[${previous.index}]`,
      );
    }
  }
}

/** The instruction that governs a battery now: highest priority, then the latest submitted. */
export function governingInstruction(candidates: readonly Instruction[], now: Date): Instruction | undefined {
  return candidates
    .filter((i) => instructionState(i, now) === 'ACTIVE')
    .sort((a, b) => b.priority - a.priority || b.createdAt.getTime() - a.createdAt.getTime() || (a.id < b.id ? -1 : 1))[0];
}

/**
 * The instructions in force at `now`: the governing site-wide one, and one governing
 * instruction per battery that has battery-level ones (each decided by
 * {@link governingInstruction}). A battery-level instruction governs its battery; the
 * site-wide one governs the rest.
 */
export function governingByTarget(
  candidates: readonly Instruction[],
  now: Date,
): { site?: Instruction; devices: Map<string, Instruction> } {
  const site = governingInstruction(
    candidates.filter((i) => 'site' in i.target),
    now,
  );
  const perDevice = new Map<string, Instruction[]>();
  for (const i of candidates)
    if ('deviceId' in i.target) perDevice.set(i.target.deviceId, [...(perDevice.get(i.target.deviceId) ?? []), i]);
  const devices = new Map<string, Instruction>();
  for (const [deviceId, list] of perDevice) {
    const governing = governingInstruction(list, now);
    if (governing) devices.set(deviceId, governing);
  }
  return { ...(site ? { site } : {}), devices };
}

function formatDays(ms: number): string {
  const days = ms / 86_400_000;
  return days === 1 ? '1 day' : `${days} days`;
}
