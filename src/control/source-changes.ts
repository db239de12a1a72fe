/**
 * What a site's plan means for the command source of each battery: the source each setpoint
 * puts it under (with who is behind it), the changes from the source stored last period
 * (each naming who caused it), and how many batteries report a source other than the one
 * intended. Pure: the controller stores the changes and reports the mismatches.
 */
import type { BatteryState } from './battery-state.repository.ts';
import { intendedSource, sourceChange, type Departure, type IntendedSource } from './intended-source.ts';
import { commandSourceFromCode, isRemote, overrideInForce } from '../dispatch/command-source.ts';
import type { SourceChange } from '../dispatch/dispatch.repository.ts';
import type { Instruction } from '../dispatch/instruction.ts';
import type { BatterySetpoint } from '../planner/planner.types.ts';

/**
 * The intended source of each planned battery, by device id: the override in force at `at`
 * and the submitter of the instruction followed name the principal behind it.
 */
export function intendedSources(
  setpoints: readonly BatterySetpoint[],
  batteries: readonly BatteryState[],
  instructions: readonly Instruction[],
  at: Date,
): Map<string, IntendedSource> {
  const submitter = new Map(instructions.map((i) => [i.id, i.principal]));
  const overrides = new Map(
    batteries.flatMap((s) => (s.override && overrideInForce(s.override, at) ? [[s.device.id, s.override] as const] : [])),
  );
  return new Map(
    setpoints.map((sp) => {
      const override = overrides.get(sp.deviceId);
      const instructionPrincipal = sp.instructionId ? submitter.get(sp.instructionId) : undefined;
      const followed = { ...(override ? { override } : {}), ...(instructionPrincipal ? { instructionPrincipal } : {}) };
      return [sp.deviceId, intendedSource(sp, followed)];
    }),
  );
}

/**
 * The command-source changes of a site's batteries this period, each naming who caused
 * it: a released or expired override, or a cancelled or ended instruction, is told apart
 * from a battery simply moving on (the battery states carry how each stood).
 */
export function sourceChanges(batteries: readonly BatteryState[], intended: ReadonlyMap<string, IntendedSource>, at: Date): SourceChange[] {
  return batteries.flatMap(({ device, stored, override, storedInstruction }) => {
    const next = intended.get(device.id);
    if (!next) return [];
    const departure: Departure = { ...(override ? { override } : {}), ...(storedInstruction ? { instruction: storedInstruction } : {}) };
    const change = sourceChange(stored, next, departure, at);
    return change ? [{ deviceId: device.id, ...change }] : [];
  });
}

/**
 * How many planned batteries report, in their latest reading, remote control when local is
 * intended or the other way round. A battery reporting no known source is not counted.
 */
export function sourceMismatches(batteries: readonly BatteryState[], intended: ReadonlyMap<string, IntendedSource>): number {
  return batteries.filter(({ device, reading }) => {
    const reported = commandSourceFromCode(reading?.command_source);
    const next = intended.get(device.id);
    return next !== undefined && reported !== undefined && isRemote(reported) !== isRemote(next.source);
  }).length;
}
