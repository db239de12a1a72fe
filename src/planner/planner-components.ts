/**
 * The ranked control components below manual override: a dispatch instruction, NIV chase,
 * the SoE target and import/export avoidance. Each may propose a target and bounds; the
 * highest-ranked target wins, held within the bounds of every component above it.
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

/** Battery power bounds in kW (positive = discharge) that lower-ranked components must keep to. */
export interface PowerBounds {
  /** Lowest battery power allowed. */
  minKw: number;
  /** Highest battery power allowed. */
  maxKw: number;
  /** What sets them, e.g. `avoid export`. */
  label: string;
}

/** An instruction's proposal: a target power, or bounds with no target of their own. */
export type InstructionProposal = { targetKw: number } | { bounds: PowerBounds };

/** Moves `kw` into `bounds`. */
export function withinBounds(kw: number, bounds: PowerBounds): number {
  return Math.min(bounds.maxKw, Math.max(bounds.minKw, kw));
}

/**
 * What an instruction proposes for the batteries it targets: a power as given,
 * `CHARGE_MAX`/`DISCHARGE_MAX` as their combined rated power (held batteries included, so
 * what they cannot give shows as undelivered). `AVOID_IMPORT`/`AVOID_EXPORT` propose no
 * target, only bounds: the batteries must not leave the site importing (power ≥ the net
 * import) or exporting (power ≤ the net load), where the net is the site's load less the
 * setpoints already planned. Without a usable meter reading the bound is the safe side of
 * zero (no charging under `AVOID_IMPORT`, no discharging under `AVOID_EXPORT`), with a note.
 */
export function proposeInstruction(
  instruction: PlanInstruction,
  batteries: readonly BatteryPlanInput[],
  load: SiteLoad,
  plannedKw: number,
  notes: string[],
): InstructionProposal {
  const command = instruction.command;
  if ('powerKw' in command) return { targetKw: command.powerKw };
  switch (command.action) {
    case 'CHARGE_MAX':
      return { targetKw: -batteries.reduce((kw, b) => kw + b.ratedChargePowerKw, 0) };
    case 'DISCHARGE_MAX':
      return { targetKw: batteries.reduce((kw, b) => kw + b.ratedDischargePowerKw, 0) };
    case 'AVOID_IMPORT':
    case 'AVOID_EXPORT': {
      const avoidImport = command.action === 'AVOID_IMPORT';
      const label = avoidImport ? 'avoid import' : 'avoid export';
      let netKw = 0;
      if ('unknown' in load) notes.push(`dispatch ${instruction.id}: cannot ${label} (${load.unknown})`);
      else netKw = load.loadKw - plannedKw;
      const bounds = avoidImport ? { minKw: netKw, maxKw: Infinity, label } : { minKw: -Infinity, maxKw: netKw, label };
      return { bounds };
    }
    default: {
      const unknown: never = command.action;
      throw new Error(`unknown dispatch action ${String(unknown)}`);
    }
  }
}

/**
 * The request of an instruction that governs its batteries alone (a battery-level one):
 * its target, or for `AVOID_IMPORT`/`AVOID_EXPORT` the power nearest zero within its
 * bounds, i.e. just enough to bring the site's flow to zero.
 */
export function instructionRequest(
  instruction: PlanInstruction,
  batteries: readonly BatteryPlanInput[],
  load: SiteLoad,
  plannedKw: number,
  notes: string[],
): ComponentRequest {
  const proposal = proposeInstruction(instruction, batteries, load, plannedKw, notes);
  const requestKw = 'targetKw' in proposal ? proposal.targetKw : withinBounds(0, proposal.bounds);
  return { component: 'dispatch', source: 'DISPATCH', instructionId: instruction.id, requestKw };
}

/** The first of NIV chase, the SoE target and import/export avoidance that is active. */
function localRequest(
  input: SitePlanInput,
  ready: readonly ReadyBattery[],
  load: SiteLoad,
  plannedKw: number,
  notes: string[],
): (ComponentRequest & { requestKw: number }) | undefined {
  const niv = proposeNivChase(input.nivChase, ready, input.now, input.controlPeriodMs);
  if (niv.active) return { component: 'niv_chase', source: 'DISPATCH', requestKw: niv.requestKw };
  if (input.nivChase?.enabled === true) notes.push(niv.note);
  const soeKw = proposeSoeTarget(input.soeTarget, ready, input.controlPeriodMs);
  if (soeKw !== undefined) return { component: 'soe_target', source: 'LOCAL', requestKw: soeKw };
  const avoidance = input.avoidance;
  if (avoidance === undefined || (!avoidance.avoidImport && !avoidance.avoidExport)) return undefined;
  if ('unknown' in load) {
    notes.push(`avoidance: ${load.unknown}`);
    return undefined;
  }
  const importKw = avoidance.avoidImport ? avoidanceKw('import', plannedKw, load) : 0;
  if (importKw >= 0.0005) return { component: 'avoid_import', source: 'LOCAL', requestKw: importKw };
  const exportKw = avoidance.avoidExport ? avoidanceKw('export', plannedKw, load) : 0;
  if (exportKw <= -0.0005) return { component: 'avoid_export', source: 'LOCAL', requestKw: exportKw };
  return undefined;
}

const round3 = (kw: number): number => Math.round(kw * 1000) / 1000;

/**
 * Chooses the request for the site's batteries that have neither an override nor a
 * battery-level instruction, highest rank first: a site instruction, NIV chase, the SoE
 * target, import then export avoidance, else idle. A site instruction with a power or
 * `*_MAX` decides alone. One with `AVOID_IMPORT`/`AVOID_EXPORT` only bounds: the next
 * active component's target is moved into its bounds (e.g. NIV chase discharges only as far
 * as the site stops importing under `AVOID_EXPORT`), or with none active the batteries do
 * just enough to avoid the flow. The component reported is the lower one while its target
 * is within the bounds, `dispatch` once a bound moves it; either way the batteries follow
 * `DISPATCH` and carry the instruction's id. `ready` are the batteries with fresh
 * telemetry; `plannedKw` sums the setpoints already planned for the other batteries.
 * Skipped components that were configured, and bounded targets, leave a note.
 */
export function chooseSiteRequest(
  input: SitePlanInput,
  group: readonly BatteryPlanInput[],
  ready: readonly ReadyBattery[],
  load: SiteLoad,
  plannedKw: number,
  notes: string[],
): ComponentRequest {
  const instruction = input.instruction !== undefined && 'site' in input.instruction.target ? input.instruction : undefined;
  if (instruction === undefined) return localRequest(input, ready, load, plannedKw, notes) ?? { component: 'idle', source: 'LOCAL' };
  const proposal = proposeInstruction(instruction, group, load, plannedKw, notes);
  const governed = { source: 'DISPATCH', instructionId: instruction.id } as const;
  if ('targetKw' in proposal) return { component: 'dispatch', ...governed, requestKw: proposal.targetKw };
  const lower = localRequest(input, ready, load, plannedKw, notes);
  if (lower === undefined) return { component: 'dispatch', ...governed, requestKw: withinBounds(0, proposal.bounds) };
  const requestKw = withinBounds(lower.requestKw, proposal.bounds);
  if (requestKw === lower.requestKw) return { component: lower.component, ...governed, requestKw };
  // The power sits on the instruction's bound, so the instruction is what set it.
  notes.push(
    `${lower.component.replace('_', ' ')}: ${round3(lower.requestKw)} kW bounded to ${round3(requestKw)} kW ` +
      `by dispatch ${instruction.id} (${proposal.bounds.label})`,
  );
  return { component: 'dispatch', ...governed, requestKw };
}
