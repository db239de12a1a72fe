/**
 * The ranked control components below manual override: a dispatch instruction, NIV chase,
 * the SoE target and import/export avoidance. The first that is active sets the request.
 */
import { proposeNivChase } from './niv-chase.ts';
import type { ReadyBattery } from './planner-envelope.ts';
import { avoidanceKw, type SiteLoad } from './planner-site.ts';
import { proposeSoeTarget } from './soe-target.ts';
import type { BatteryPlanInput, CommandSource, PlanComponent, PlanInstruction, SitePlanInput } from './planner.types.ts';

/** What a component asks of a target. */
export interface ComponentRequest {
  /** The component. */
  component: PlanComponent;
  /** Who the batteries follow. */
  source: CommandSource;
  /** The power asked for in kW, positive = discharge; absent when idle. */
  requestKw?: number;
  /** The instruction behind it, if any. */
  instructionId?: string;
}

/**
 * Turns an instruction into a request for the batteries it targets: a power as given,
 * `CHARGE_MAX`/`DISCHARGE_MAX` as their combined rated power (held batteries included, so
 * what they cannot give shows as undelivered), `AVOID_IMPORT`/`AVOID_EXPORT` as the power
 * that brings the site's flow to zero (0, with a note, without a usable meter reading).
 */
export function instructionRequest(
  instruction: PlanInstruction,
  batteries: readonly BatteryPlanInput[],
  load: SiteLoad,
  plannedKw: number,
  notes: string[],
): ComponentRequest {
  const base = { component: 'dispatch', source: 'DISPATCH', instructionId: instruction.id } as const;
  const command = instruction.command;
  if ('powerKw' in command) return { ...base, requestKw: command.powerKw };
  switch (command.action) {
    case 'CHARGE_MAX':
      return { ...base, requestKw: -batteries.reduce((kw, b) => kw + b.ratedChargePowerKw, 0) };
    case 'DISCHARGE_MAX':
      return { ...base, requestKw: batteries.reduce((kw, b) => kw + b.ratedDischargePowerKw, 0) };
    case 'AVOID_IMPORT':
    case 'AVOID_EXPORT': {
      const avoid = command.action === 'AVOID_IMPORT' ? 'import' : 'export';
      if ('unknown' in load) {
        notes.push(`dispatch ${instruction.id}: cannot avoid ${avoid} (${load.unknown})`);
        return { ...base, requestKw: 0 };
      }
      return { ...base, requestKw: avoidanceKw(avoid, plannedKw, load) };
    }
    default: {
      const unknown: never = command.action;
      throw new Error(`unknown dispatch action ${String(unknown)}`);
    }
  }
}

/**
 * Chooses the request for the site's batteries that have neither an override nor a
 * battery-level instruction: a site instruction, else NIV chase, else the SoE target,
 * else import then export avoidance, else idle. `ready` are those with fresh telemetry;
 * `plannedKw` sums the setpoints already planned for the other batteries. Skipped
 * components that were configured leave a note.
 */
export function chooseSiteRequest(
  input: SitePlanInput,
  group: readonly BatteryPlanInput[],
  ready: readonly ReadyBattery[],
  load: SiteLoad,
  plannedKw: number,
  notes: string[],
): ComponentRequest {
  if (input.instruction !== undefined && 'site' in input.instruction.target) {
    return instructionRequest(input.instruction, group, load, plannedKw, notes);
  }
  const niv = proposeNivChase(input.nivChase, ready, input.now, input.controlPeriodMs);
  if (niv.active) return { component: 'niv_chase', source: 'DISPATCH', requestKw: niv.requestKw };
  if (input.nivChase?.enabled === true) notes.push(niv.note);
  const soeKw = proposeSoeTarget(input.soeTarget, ready, input.controlPeriodMs);
  if (soeKw !== undefined) return { component: 'soe_target', source: 'LOCAL', requestKw: soeKw };
  const avoidance = input.avoidance;
  if (avoidance !== undefined && (avoidance.avoidImport || avoidance.avoidExport)) {
    if ('unknown' in load) {
      notes.push(`avoidance: ${load.unknown}`);
    } else {
      const importKw = avoidance.avoidImport ? avoidanceKw('import', plannedKw, load) : 0;
      if (importKw >= 0.0005) return { component: 'avoid_import', source: 'LOCAL', requestKw: importKw };
      const exportKw = avoidance.avoidExport ? avoidanceKw('export', plannedKw, load) : 0;
      if (exportKw <= -0.0005) return { component: 'avoid_export', source: 'LOCAL', requestKw: exportKw };
    }
  }
  return { component: 'idle', source: 'LOCAL' };
}
