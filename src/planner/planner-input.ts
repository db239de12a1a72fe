/**
 * Checks a planner input before any arithmetic, so a NaN or a contradiction fails loudly
 * with the field's name instead of turning into a silent setpoint.
 */
import { InvalidArgumentError } from '../errors.ts';
import type { SitePlanInput } from './planner.types.ts';

function check(ok: boolean, field: string, value: unknown, reason: string): void {
  if (!ok) throw new InvalidArgumentError(field, value, reason);
}

function finite(value: number | undefined, field: string, min = -Infinity): void {
  if (value === undefined) return;
  check(Number.isFinite(value), field, value, 'must be a finite number');
  check(value >= min, field, value, `must be at least ${min}`);
}

function validDate(value: Date | undefined, field: string): void {
  if (value !== undefined) check(Number.isFinite(value.getTime()), field, value, 'must be a valid time');
}

/**
 * Throws {@link InvalidArgumentError} naming the first bad field: non-finite numbers,
 * negative ratings or limits, a non-positive control period, SoE limits out of 0–100 or
 * reversed, block counts that are not whole, duplicate device ids, or an instruction for
 * another site or an unknown battery.
 */
export function validatePlanInput(input: SitePlanInput): void {
  validDate(input.now, 'now');
  finite(input.controlPeriodMs, 'controlPeriodMs', 1);
  finite(input.maxTelemetryAgeMs, 'maxTelemetryAgeMs', 0);
  finite(input.sitePowerKw, 'sitePowerKw');
  validDate(input.sitePowerTime, 'sitePowerTime');
  finite(input.importLimitKw, 'importLimitKw', 0);
  finite(input.exportLimitKw, 'exportLimitKw', 0);
  const ids = new Set<string>();
  input.batteries.forEach((b, i) => {
    const at = `batteries[${i}]`;
    check(!ids.has(b.deviceId), `${at}.deviceId`, b.deviceId, 'must be unique in the site');
    ids.add(b.deviceId);
    finite(b.ratedChargePowerKw, `${at}.ratedChargePowerKw`, 0);
    finite(b.ratedDischargePowerKw, `${at}.ratedDischargePowerKw`, 0);
    finite(b.capacityKwh, `${at}.capacityKwh`, 0);
    finite(b.minSoePercent, `${at}.minSoePercent`, 0);
    finite(b.maxSoePercent, `${at}.maxSoePercent`, b.minSoePercent);
    check(b.maxSoePercent <= 100, `${at}.maxSoePercent`, b.maxSoePercent, 'must be at most 100');
    check(
      Number.isInteger(b.inverterBlockCount) && b.inverterBlockCount >= 1,
      `${at}.inverterBlockCount`,
      b.inverterBlockCount,
      'must be a whole number of at least 1',
    );
    const blocks = b.availableInverterBlocks;
    check(
      blocks === undefined || (Number.isInteger(blocks) && blocks >= 0),
      `${at}.availableInverterBlocks`,
      blocks,
      'must be a whole number of at least 0',
    );
    finite(b.rampRateKwPerS, `${at}.rampRateKwPerS`, 0);
    finite(b.soePercent, `${at}.soePercent`);
    validDate(b.telemetryTime, `${at}.telemetryTime`);
    finite(b.previousSetpointKw, `${at}.previousSetpointKw`);
    finite(b.manual?.powerKw, `${at}.manual.powerKw`);
    validDate(b.manual?.expireTime, `${at}.manual.expireTime`);
  });
  const instructed = new Set<string>();
  const instructions = [
    ...(input.instruction ? [{ instruction: input.instruction, at: 'instruction' }] : []),
    ...(input.batteryInstructions ?? []).map((instruction, i) => ({ instruction, at: `batteryInstructions[${i}]` })),
  ];
  for (const { instruction, at } of instructions) {
    const target = instruction.target;
    if ('site' in target) {
      check(at === 'instruction', `${at}.target`, target.site, 'must name a battery');
      check(target.site === input.site, `${at}.target.site`, target.site, `must be ${input.site}`);
    } else {
      check(ids.has(target.deviceId), `${at}.target.deviceId`, target.deviceId, 'must be a battery of the site');
      check(!instructed.has(target.deviceId), `${at}.target.deviceId`, target.deviceId, 'already has an instruction');
      instructed.add(target.deviceId);
    }
    if ('powerKw' in instruction.command) finite(instruction.command.powerKw, `${at}.command.powerKw`);
  }
  const niv = input.nivChase;
  if (niv !== undefined) {
    finite(niv.nivThresholdMw, 'nivChase.nivThresholdMw', 0);
    finite(niv.shortPriceThreshold, 'nivChase.shortPriceThreshold');
    finite(niv.longPriceThreshold, 'nivChase.longPriceThreshold');
    finite(niv.imbalancePrice, 'nivChase.imbalancePrice');
    finite(niv.nivEstimateMw, 'nivChase.nivEstimateMw');
  }
  finite(input.soeTarget?.percent, 'soeTarget.percent', 0);
  finite(input.soeTarget?.maxPowerKw, 'soeTarget.maxPowerKw', 0);
}
