/**
 * The dispatch planner: a pure function run per site every control period that turns
 * overrides, the active instruction, market signals and site config into one setpoint per
 * battery. No I/O, no clock, no randomness: the same input gives the same plan.
 */
import { instructionRequest, chooseSiteRequest, type ComponentRequest } from './planner-components.ts';
import { batteryEnvelope, type BatteryEnvelope, type ReadyBattery } from './planner-envelope.ts';
import { validatePlanInput } from './planner-input.ts';
import { clampToSiteLimits, readSiteLoad, staleness, type SiteLoad } from './planner-site.ts';
import { attributeShortfall, roundKw, splitByHeadroom, sum } from './planner-split.ts';
import type { BatteryPlanInput, BatterySetpoint, PlanComponent, SitePlan, SitePlanInput, TargetPlan } from './planner.types.ts';

/** Components from highest to lowest rank. */
export const COMPONENT_RANK: readonly PlanComponent[] = [
  'manual',
  'dispatch',
  'niv_chase',
  'soe_target',
  'avoid_import',
  'avoid_export',
  'idle',
];

interface PlanContext {
  input: SitePlanInput;
  load: SiteLoad;
  plannedKw: number;
  notes: string[];
  setpoints: Map<string, BatterySetpoint>;
  targets: TargetPlan[];
}

function round3(kw: number): number {
  const r = Math.round(kw * 1000) / 1000;
  return r === 0 ? 0 : r;
}

/** Why a battery cannot be planned with, or undefined when its telemetry is usable. */
function holdReason(b: BatteryPlanInput, input: SitePlanInput): string | undefined {
  const stale = staleness(b.telemetryTime, input.now, input.maxTelemetryAgeMs);
  if (stale !== undefined) return `telemetry ${stale}`;
  return b.soePercent === undefined ? 'telemetry missing SoE' : undefined;
}

/** Plans one target: holds batteries with unusable telemetry, clamps, splits, explains. */
function planTarget(
  ctx: PlanContext,
  batteries: readonly BatteryPlanInput[],
  request: ComponentRequest,
  scope: TargetPlan['scope'],
  extraReasons: readonly string[] = [],
): void {
  const { input } = ctx;
  const envelopes: BatteryEnvelope[] = [];
  const heldRated = { discharge: 0, charge: 0 };
  const tag = {
    source: request.source,
    component: request.component,
    ...(request.instructionId === undefined ? {} : { instructionId: request.instructionId }),
  };
  for (const b of batteries) {
    const reason = holdReason(b, input);
    if (reason === undefined) {
      envelopes.push(batteryEnvelope(b as ReadyBattery, input.controlPeriodMs));
      continue;
    }
    heldRated.discharge += b.ratedDischargePowerKw;
    heldRated.charge += b.ratedChargePowerKw;
    const setpoint: BatterySetpoint = { deviceId: b.deviceId, targetPowerKw: 0, ...tag, source: 'FAILSAFE', reasons: [reason], held: true };
    ctx.setpoints.set(b.deviceId, setpoint);
  }
  const requestKw = request.requestKw ?? 0;
  const clamp = request.requestKw === undefined ? { kw: 0 } : clampToSiteLimits(requestKw, ctx.plannedKw, ctx.load, input);
  const shares = splitByHeadroom(clamp.kw, envelopes);
  const rounded = shares.map((s) => roundKw(s.kw));
  envelopes.forEach((e, i) => {
    const limitedBy = shares[i]!.limitedBy;
    const reasons = [...extraReasons, ...(limitedBy === undefined ? [] : [`clamped by ${limitedBy}`])];
    ctx.setpoints.set(e.deviceId, { deviceId: e.deviceId, targetPowerKw: rounded[i]!, ...tag, reasons, held: false });
  });
  const deliveredKw = round3(sum(rounded));
  const undelivered = attributeShortfall({
    requestKw,
    clampedKw: clamp.kw,
    ...(clamp.reason === undefined ? {} : { siteReason: clamp.reason }),
    envelopes,
    heldRated,
    deliveredRawKw: sum(shares.map((s) => s.kw)),
    deliveredKw,
  });
  ctx.plannedKw += deliveredKw;
  ctx.targets.push({
    component: request.component,
    scope,
    deviceIds: batteries.map((b) => b.deviceId),
    ...(request.instructionId === undefined ? {} : { instructionId: request.instructionId }),
    ...(request.requestKw === undefined ? {} : { requestedKw: round3(request.requestKw) }),
    deliveredKw,
    undeliveredKw: round3(requestKw - deliveredKw),
    undelivered,
  });
}

function byDeviceId(a: BatteryPlanInput, b: BatteryPlanInput): number {
  return a.deviceId < b.deviceId ? -1 : a.deviceId > b.deviceId ? 1 : 0;
}

function targetLabel(t: TargetPlan): string {
  return t.scope === 'battery' ? `${t.component} ${t.deviceIds.join(',')}` : t.component;
}

/**
 * Plans one site for one control period. Order: each battery's active manual override
 * (source `MANUAL`); a battery-level instruction for its battery; then, for the remaining
 * batteries, the site instruction, NIV chase, the SoE target, import/export avoidance, or
 * idle (`LOCAL`, 0 kW); a site instruction that avoids import or export bounds the
 * components below it (see `chooseSiteRequest`). Every target is clamped to the site's
 * import/export limits given the setpoints planned before it, then split by headroom
 * weighted by SoE room (see `splitByHeadroom`) within each battery's window (rated power ×
 * available blocks ÷ block count, SoE room for one period, ramp rate on growth only: see
 * `batteryEnvelope`). Batteries with stale or missing telemetry are held at 0 kW with
 * source `FAILSAFE`. Setpoints are rounded toward zero to 0.001 kW.
 * Throws `InvalidArgumentError` for malformed input (see `validatePlanInput`).
 */
export function planSite(input: SitePlanInput): SitePlan {
  validatePlanInput(input);
  const batteries = [...input.batteries].sort(byDeviceId);
  const ctx: PlanContext = {
    input,
    load: readSiteLoad(input, batteries),
    plannedKw: 0,
    notes: [],
    setpoints: new Map(),
    targets: [],
  };
  const now = input.now.getTime();
  let rest: BatteryPlanInput[] = [];
  for (const b of batteries) {
    if (b.manual === undefined || b.manual.expireTime.getTime() <= now) {
      if (b.manual !== undefined) ctx.notes.push(`manual override on ${b.deviceId} expired at ${b.manual.expireTime.toISOString()}`);
      rest.push(b);
      continue;
    }
    const request: ComponentRequest = { component: 'manual', source: 'MANUAL', requestKw: b.manual.powerKw };
    planTarget(ctx, [b], request, 'battery', [`manual override until ${b.manual.expireTime.toISOString()}`]);
  }
  const instruction = input.instruction;
  const batteryInstructions = [...(input.batteryInstructions ?? [])];
  if (instruction !== undefined && 'deviceId' in instruction.target) batteryInstructions.push(instruction);
  batteryInstructions.sort((a, c) => {
    const [x, y] = [(a.target as { deviceId: string }).deviceId, (c.target as { deviceId: string }).deviceId];
    return x < y ? -1 : x > y ? 1 : 0;
  });
  for (const batteryInstruction of batteryInstructions) {
    const deviceId = (batteryInstruction.target as { deviceId: string }).deviceId;
    const b = rest.find((x) => x.deviceId === deviceId);
    if (b === undefined) {
      ctx.notes.push(`dispatch ${batteryInstruction.id}: ${deviceId} is under manual override`);
    } else {
      planTarget(ctx, [b], instructionRequest(batteryInstruction, [b], ctx.load, ctx.plannedKw, ctx.notes), 'battery');
      rest = rest.filter((x) => x !== b);
    }
  }
  if (rest.length > 0) {
    const ready = rest.filter((b): b is ReadyBattery => holdReason(b, input) === undefined);
    planTarget(ctx, rest, chooseSiteRequest(input, rest, ready, ctx.load, ctx.plannedKw, ctx.notes), 'site');
  }
  const setpoints = batteries.map((b) => ctx.setpoints.get(b.deviceId)!);
  const requests = ctx.targets.flatMap((t) => (t.requestedKw === undefined ? [] : [t.requestedKw]));
  const requestedKw = requests.length === 0 ? undefined : round3(sum(requests));
  const deliveredKw = round3(sum(setpoints.map((s) => s.targetPowerKw)));
  const several = ctx.targets.length > 1;
  return {
    site: input.site,
    ...(requestedKw === undefined ? {} : { requestedKw }),
    deliveredKw,
    undeliveredKw: round3((requestedKw ?? 0) - deliveredKw),
    undeliveredReasons: ctx.targets.flatMap((t) =>
      t.undelivered.map((p) => `${several ? `${targetLabel(t)} ` : ''}${p.reason}: ${p.kw} kW`),
    ),
    component: COMPONENT_RANK.find((c) => ctx.targets.some((t) => t.component === c)) ?? 'idle',
    setpoints,
    targets: ctx.targets,
    notes: ctx.notes,
  };
}
