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
 * Splits `targetKw` across `envelopes` (in their order). Each battery starts from the
 * power in its window nearest zero (zero unless a ramp forces otherwise); the rest of the
 * target is shared in proportion to each battery's room in the direction of travel, so
 * no share exceeds its room and the sum never passes the target.
 */
export function splitByHeadroom(targetKw: number, envelopes: readonly BatteryEnvelope[]): Share[] {
  const base = envelopes.map((e) => Math.min(e.hi, Math.max(e.lo, 0)));
  const need = targetKw - sum(base);
  const room = envelopes.map((e, i) => (need > 0 ? e.hi - base[i]! : base[i]! - e.lo));
  const totalRoom = sum(room);
  const fraction = need === 0 || totalRoom <= 0 ? 0 : Math.min(1, Math.abs(need) / totalRoom);
  return envelopes.map((e, i) => {
    const kw = Math.min(e.hi, Math.max(e.lo, base[i]! + Math.sign(need) * room[i]! * fraction));
    if (e.overridesRamp) return { kw, limitedBy: e.hiReason };
    // With nothing asked, a battery away from zero is held there by its edge nearest zero.
    const dir = need !== 0 ? Math.sign(need) : -Math.sign(kw);
    if (dir > 0 && kw >= e.hi) return { kw, limitedBy: e.hiReason };
    if (dir < 0 && kw <= e.lo) return { kw, limitedBy: e.loReason };
    return { kw };
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
 * order: site limits, rated power, held batteries, missing inverter blocks, SoE, ramp
 * (which is negative when a ramp holds more power than asked), rounding. Parts under
 * 0.0005 kW are left out.
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
