import { InvalidArgumentError } from '../errors.ts';

/**
 * Days of readings kept, per kind of reading; an absent kind is kept forever. Audit,
 * setpoint and source history are never subject to retention.
 */
export interface RetentionDays {
  /** `flux.mg_meter_readings`. */
  readonly meter?: number;
  /** `flux.mg_bess_readings`. */
  readonly bess?: number;
  /** `powerplane.datum_readings`. */
  readonly datum?: number;
  /** `flux.market_data`. */
  readonly market?: number;
}

/**
 * Refuses a retention that is not a whole number of days, at least 1, naming
 * `retention.<kind>`: one rule for the migration's TimescaleDB policies and the job.
 */
export function checkRetentionDays(retention: RetentionDays): void {
  for (const [kind, days] of Object.entries(retention) as [string, unknown][]) {
    if (days !== undefined && (!Number.isInteger(days) || (days as number) < 1)) {
      throw new InvalidArgumentError(`retention.${kind}`, days, 'must be a whole number of days, at least 1');
    }
  }
}
