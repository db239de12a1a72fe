import type { CommandSource } from '../planner/planner.types.ts';

export type { CommandSource };

/**
 * The stored number of each source: the `CommandSource` enum numbers of telemetry.proto,
 * which is also what `flux.mg_bess_readings.command_source` holds.
 */
export const COMMAND_SOURCE_CODES: Readonly<Record<CommandSource, number>> = Object.freeze({
  LOCAL: 1,
  DISPATCH: 2,
  MANUAL: 3,
  FAILSAFE: 4,
});

/** The source stored as `code`, or undefined for 0, null or an unknown number. */
export function commandSourceFromCode(code: number | null | undefined): CommandSource | undefined {
  const entry = Object.entries(COMMAND_SOURCE_CODES).find(([, value]) => value === code);
  return entry?.[0] as CommandSource | undefined;
}

/**
 * A battery can only tell whether it is under remote control or its own: DISPATCH and
 * MANUAL are remote, LOCAL and FAILSAFE are the battery's own. A mismatch between the
 * intended and the reported source is a difference in that.
 */
export function isRemote(source: CommandSource): boolean {
  return source === 'DISPATCH' || source === 'MANUAL';
}

/** An operator's override as the control loop reads it. */
export interface Override {
  readonly powerKw: number;
  readonly expireTime: Date;
  readonly reason: string;
  readonly principal: string;
  /** When and by whom it was released (SetControlMode AUTOMATIC); absent while it stands. */
  readonly releasedAt?: Date;
  readonly releasedBy?: string;
}

/** Whether an override is in force at `at`: not released and not expired. */
export function overrideInForce(o: Pick<Override, 'expireTime' | 'releasedAt'>, at: Date): boolean {
  return o.releasedAt === undefined && o.expireTime > at;
}
