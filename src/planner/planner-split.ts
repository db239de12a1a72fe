/**
 * Splits a target power across batteries by headroom and explains what was not delivered.
 */
import type { BatteryEnvelope, DirectionKw } from './planner-envelope.ts';
import type { UndeliveredPart } from './planner.types.ts';

/** One battery's share of a target before rounding. */
export interface Share {
  /** Setpoint in kW, inside the battery's window. */
  kw: number;
  /** The limit the battery sits at in the direction asked, if it does. */
  limitedBy?: string;
}

/**
 * Rounds a power toward zero to 0.001 kW, so rounding never takes a setpoint past a
 * limit that contains zero, nor a sum past its request. The 1e-6 W slack keeps values
 * such as 0.29 (stored as 0.28999…) from losing a watt.
 */
export function roundKw(kw: number): number {
  const watts = Math.trunc(kw * 1000 + Math.sign(kw) * 1e-6);
  return watts === 0 ? 0 : watts / 1000;
}

/**
 * Shares `need` (≥ 0) among batteries with room `caps` (≥ 0) in proportion to `weights`,
 * capping each at its room and sharing what a capped battery cannot take among the rest
 * (water-filling). Returns the shares and which batteries sit at their cap. The shares sum
 * to min(need, Σ caps) when every battery with room has a positive weight.
 */
function waterFill(need: number, caps: readonly number[], weights: readonly number[]): { kw: number[]; capped: boolean[] } {
  const kw = caps.map(() => 0);
  const capped = caps.map((c) => c <= 0);
  let open = caps.flatMap((c, i) => (c > 0 && weights[i]! > 0 ? [i] : []));
  let remaining = need;
  while (open.length > 0 && remaining > 0) {
    const level = remaining / sum(open.map((i) => weights[i]!));
    const full = open.filter((i) => level * weights[i]! >= caps[i]!);
    if (full.length === 0) {
      for (const i of open) kw[i] = level * weights[i]!;
      break;
    }
    for (const i of full) {
      kw[i] = caps[i]!;
      capped[i] = true;
    }
    // Each pass caps at least one battery, so the loop runs at most once per battery.
    remaining = Math.max(0, remaining - sum(full.map((i) => caps[i]!)));
    open = open.filter((i) => !capped[i]);
  }
  return { kw, capped };
}

/**
 * Splits `targetKw` across `envelopes` (in their order). Each battery's share in the
 * direction of travel is weighted by its power headroom (its window edge: rated power ×
 * available blocks ÷ block count, within its per-period SoE and ramp limits) times the
 * share of its SoE span still open that way (to min SoE when discharging, to max SoE when
 * charging), so a battery near its limit gives way to one far from it and the batteries'
 * SoE converge. Equal batteries split equally; a battery at its limit gets nothing that
 * way. What a battery cannot take beyond its edge goes to the others, so the site delivers
 * up to its total headroom; the sum never passes the target, nor its sign.
 */
export function splitByHeadroom(targetKw: number, envelopes: readonly BatteryEnvelope[]): Share[] {
  const dir = Math.sign(targetKw);
  const key: keyof DirectionKw = dir >= 0 ? 'discharge' : 'charge';
  // Every window contains 0 kW (see batteryEnvelope), so each edge is a room ≥ 0.
  const caps = envelopes.map((e) => Math.max(0, dir >= 0 ? e.hi : -e.lo));
  const weights = envelopes.map((e, i) => caps[i]! * e.soeRoom[key]);
  const { kw, capped } = waterFill(Math.abs(targetKw), caps, weights);
  return envelopes.map((e, i) => {
    const share = dir === 0 ? 0 : dir * kw[i]!;
    if (dir === 0 || !capped[i]) return { kw: share };
    return { kw: share, limitedBy: dir > 0 ? e.hiReason : e.loReason };
  });
}

/** What {@link attributeShortfall} needs about one target. */
export interface ShortfallInput {
  /** The component's request in kW (0 when idle). */
  requestKw: number;
  /** The request after the site's import/export limits. */
  clampedKw: number;
  /** Why the site limits changed it, if they did. */
  siteReason?: string;
  /** The windows of the batteries that could follow the target. */
  envelopes: readonly BatteryEnvelope[];
  /** Rated power of the target's held batteries. */
  heldRated: DirectionKw;
  /** Sum of the shares before rounding. */
  deliveredRawKw: number;
  /** Sum of the rounded setpoints. */
  deliveredKw: number;
}

/**
 * Breaks `requestKw − deliveredKw` into parts by the limit responsible, applied in this
 * order: site limits, rated power, held batteries, missing inverter blocks, SoE, ramp,
 * rounding. Parts under 0.0005 kW are left out.
 */
export function attributeShortfall(s: ShortfallInput): UndeliveredPart[] {
  const parts: UndeliveredPart[] = [];
  const add = (reason: string, kw: number): void => {
    if (Math.abs(kw) >= 0.0005) parts.push({ reason, kw: Math.round(kw * 1000) / 1000 });
  };
  add(s.siteReason ?? 'site limit', s.requestKw - s.clampedKw);
  const dir = Math.sign(s.clampedKw);
  let reached = 0;
  if (dir !== 0) {
    const key: keyof DirectionKw = dir > 0 ? 'discharge' : 'charge';
    const q = Math.abs(s.clampedKw);
    const raw = (pick: (e: BatteryEnvelope) => DirectionKw): number => sum(s.envelopes.map((e) => pick(e)[key]));
    const total = (pick: (e: BatteryEnvelope) => DirectionKw): number => Math.min(q, raw(pick));
    // Each stage's label names the loss between it and the next stage.
    const stages: Array<[string, number]> = [
      ['request beyond rated power', q],
      ['telemetry stale or missing', Math.min(q, raw((e) => e.rated) + s.heldRated[key])],
      ['inverter blocks unavailable', total((e) => e.rated)],
      [dir > 0 ? 'min SoE' : 'max SoE', total((e) => e.blocks)],
      ['end', total((e) => e.soe)],
    ];
    for (let i = 1; i < stages.length; i += 1) add(stages[i - 1]![0], dir * (stages[i - 1]![1] - stages[i]![1]));
    reached = dir * stages[stages.length - 1]![1];
  }
  add('ramp rate', reached - s.deliveredRawKw);
  add('rounding', s.deliveredRawKw - s.deliveredKw);
  return parts;
}

/** Sums in array order, so the result depends only on the (sorted) input. */
export function sum(values: readonly number[]): number {
  let total = 0;
  for (const v of values) total += v;
  return total;
}
