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
