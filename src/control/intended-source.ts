import type { Override } from '../dispatch/command-source.ts';
import type { BatterySetpoint, CommandSource } from '../planner/planner.types.ts';

/** What Powerplane means a battery to be under for one setpoint, and what drives it. */
export interface IntendedSource {
  readonly source: CommandSource;
  /**
   * What drives the battery, as a key compared between periods: `manual <kW> kW until
   * <time> by <principal>`, `instruction <id>`, `automatic <component>`, `local <component>`
   * or `failsafe`. A change of it is a change of source even when the source stays.
   */
  readonly cause: string;
  /** Why, in words. */
  readonly reason: string;
  readonly instructionId?: string;
  /** The principal behind what the battery follows: the override's operator or the instruction's submitter. */
  readonly principal?: string;
  /** True when the battery is left to its own control: 0 kW with the setpoint disabled. */
  readonly released: boolean;
}

/**
 * The source a planned setpoint puts the battery under. It is the one Powerplane really
 * drives: a battery given a power by an automatic component (SoE target, import/export
 * avoidance, NIV chase) is under Powerplane's remote control, so DISPATCH with the
 * component named, whatever source the planner tagged it with; LOCAL only when the battery
 * is released (idle or a component asking 0 kW); FAILSAFE when it is held for bad telemetry.
 */
export function intendedSource(
  setpoint: BatterySetpoint,
  followed: { override?: Override; instructionPrincipal?: string },
): IntendedSource {
  const instruction = setpoint.instructionId ? { instructionId: setpoint.instructionId } : {};
  if (setpoint.held || setpoint.source === 'FAILSAFE') {
    return { source: 'FAILSAFE', cause: 'failsafe', reason: setpoint.reasons.join('; ') || 'failsafe', ...instruction, released: true };
  }
  const automatic: IntendedSource = {
    source: 'DISPATCH',
    cause: `automatic ${setpoint.component}`,
    reason: `following ${setpoint.component}`,
    released: false,
  };
  switch (setpoint.source) {
    case 'MANUAL': {
      const o = followed.override;
      if (!o) return { source: 'MANUAL', cause: 'manual', reason: 'manual override', released: false };
      const what = `${o.powerKw} kW until ${o.expireTime.toISOString()} by ${o.principal}`;
      return {
        source: 'MANUAL',
        cause: `manual ${what}`,
        reason: `manual override ${what} (${o.reason})`,
        principal: o.principal,
        released: false,
      };
    }
    case 'DISPATCH':
      if (!setpoint.instructionId) return automatic;
      return {
        source: 'DISPATCH',
        cause: `instruction ${setpoint.instructionId}`,
        reason: `following instruction ${setpoint.instructionId}`,
        ...instruction,
        ...(followed.instructionPrincipal ? { principal: followed.instructionPrincipal } : {}),
        released: false,
      };
    case 'LOCAL':
      if (setpoint.targetPowerKw !== 0) return automatic;
      return {
        source: 'LOCAL',
        cause: `local ${setpoint.component}`,
        reason: setpoint.component === 'idle' ? 'no active instruction' : `released: ${setpoint.component} asks 0 kW`,
        released: true,
      };
    default: {
      const unknown: never = setpoint.source;
      throw new Error(`unknown command source ${String(unknown)}`);
    }
  }
}

/** A battery's stored intended source, as the previous period left it. */
export interface StoredSource {
  readonly source?: CommandSource;
  readonly instructionId?: string;
  /** Undefined on rows from before causes were stored: only source and instruction are compared then. */
  readonly cause?: string;
}

/** How what the battery followed before ended, as far as the control loop read it. */
export interface Departure {
  /** The battery's override row, released or expired ones included. */
  readonly override?: Override;
  /** The instruction the battery followed before, when it is no longer active. */
  readonly instruction?: { id: string; endTime: Date; cancelledAt?: Date; cancelledBy?: string; cancelReason?: string };
}

/** One row of the command-source history. */
export interface SourceChangeRow {
  readonly source: CommandSource;
  readonly previous?: CommandSource;
  readonly reason: string;
  readonly cause: string;
  readonly instructionId?: string;
  /** Who caused the change: the releasing or cancelling principal, else the one behind what the battery now follows. */
  readonly principal?: string;
}

/** Whether `next` is what `previous` already records (a reason that only ages, e.g. `stale 42 s`, is no change). */
export function sameSource(previous: StoredSource | undefined, next: IntendedSource): boolean {
  return (
    previous !== undefined &&
    previous.source === next.source &&
    previous.instructionId === next.instructionId &&
    (previous.cause ?? next.cause) === next.cause
  );
}

/**
 * The history row for a battery going from `previous` to `next`, or undefined when nothing
 * that matters changed. When an override was released or expired, or an instruction was
 * cancelled or ended, the row says so and names who released or cancelled it.
 */
export function sourceChange(
  previous: StoredSource | undefined,
  next: IntendedSource,
  left: Departure,
  at: Date,
): SourceChangeRow | undefined {
  if (sameSource(previous, next)) return undefined;
  const ended = previous ? endingOf(previous, next, left, at) : undefined;
  const principal = ended ? ended.principal : next.principal;
  return {
    source: next.source,
    ...(previous?.source ? { previous: previous.source } : {}),
    reason: ended ? `${ended.reason}; ${next.reason}` : next.reason,
    cause: next.cause,
    ...(next.instructionId ? { instructionId: next.instructionId } : {}),
    ...(principal ? { principal } : {}),
  };
}

function endingOf(
  previous: StoredSource,
  next: IntendedSource,
  left: Departure,
  at: Date,
): { reason: string; principal?: string } | undefined {
  if (next.source === 'MANUAL') return undefined;
  const o = left.override;
  if (previous.source === 'MANUAL' && o) {
    if (o.releasedAt && o.releasedAt < o.expireTime) {
      return { reason: `manual override released by ${o.releasedBy}`, ...(o.releasedBy ? { principal: o.releasedBy } : {}) };
    }
    if (o.expireTime <= at) return { reason: `manual override expired at ${o.expireTime.toISOString()}` };
  }
  const i = left.instruction;
  if (previous.instructionId && previous.instructionId !== next.instructionId && i?.id === previous.instructionId) {
    if (i.cancelledAt) {
      const by = i.cancelledBy ?? 'an unknown principal';
      const why = i.cancelReason && i.cancelReason !== `cancelled by ${i.cancelledBy}` ? ` (${i.cancelReason})` : '';
      return { reason: `instruction ${i.id} cancelled by ${by}${why}`, ...(i.cancelledBy ? { principal: i.cancelledBy } : {}) };
    }
    if (i.endTime <= at) return { reason: `instruction ${i.id} ended at ${i.endTime.toISOString()}` };
  }
  return undefined;
}
