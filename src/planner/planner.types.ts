/**
 * Inputs and outputs of the dispatch planner (`planner.ts`). Sign conventions are
 * the API's: a battery power is positive to discharge (export) and negative to charge; a
 * metered site power is positive when importing from the grid.
 */

/** Who a battery's setpoint is for, as stored in the command-source state. */
export type CommandSource = 'LOCAL' | 'DISPATCH' | 'MANUAL' | 'FAILSAFE';

/**
 * The control components in rank order, highest first; `idle` means none is active.
 * `dispatch` and `niv_chase` follow the market (source `DISPATCH`); `soe_target`,
 * `avoid_import`, `avoid_export` and `idle` are the site's own behaviour (source `LOCAL`).
 */
export type PlanComponent = 'manual' | 'dispatch' | 'niv_chase' | 'soe_target' | 'avoid_import' | 'avoid_export' | 'idle';

/** A dispatch action: the most a target can do in a direction, or just enough to avoid a flow. */
export type DispatchActionName = 'CHARGE_MAX' | 'DISCHARGE_MAX' | 'AVOID_IMPORT' | 'AVOID_EXPORT';

/** One battery as the planner sees it: its registry ratings, latest telemetry and last setpoint. */
export interface BatteryPlanInput {
  /** The battery's UUID; unique within the site. */
  deviceId: string;
  /** Rated charge power in kW, ≥ 0, with every inverter block available. */
  ratedChargePowerKw: number;
  /** Rated discharge power in kW, ≥ 0, with every inverter block available. */
  ratedDischargePowerKw: number;
  /** Usable energy capacity in kWh, ≥ 0. */
  capacityKwh: number;
  /** State of energy the battery must never go below, in percent (0–100). */
  minSoePercent: number;
  /** State of energy the battery must never go above, in percent (0–100, ≥ min). */
  maxSoePercent: number;
  /** Number of inverter blocks, ≥ 1. */
  inverterBlockCount: number;
  /**
   * Largest growth of the setpoint away from 0 kW per second, in kW/s; 0 means no ramp
   * limit. Moves toward 0 kW are immediate; a change of direction drops to 0 kW at once.
   */
  rampRateKwPerS: number;
  /** Latest state of energy in percent; without it the battery is held. */
  soePercent?: number;
  /** Inverter blocks available now (0–count); absent means all of them. */
  availableInverterBlocks?: number;
  /** Time of the telemetry above; absent or older than `maxTelemetryAgeMs` holds the battery. */
  telemetryTime?: Date;
  /** The setpoint planned last period in kW (0 when none), the base of the ramp limit. */
  previousSetpointKw: number;
  /** An operator override: this power until `expireTime` (excluded), winning over every component. */
  manual?: { powerKw: number; expireTime: Date };
}

/** The dispatch instruction active for the site or one of its batteries. */
export interface PlanInstruction {
  /** The instruction's UUID, carried into the setpoints it drives. */
  id: string;
  /** The whole site (power split across its batteries) or one battery. */
  target: { site: string } | { deviceId: string };
  /** A power for the whole target in kW, or an action. */
  command: { powerKw: number } | { action: DispatchActionName };
}

/** NIV chase settings (site config) and the latest market signals. */
export interface NivChaseInput {
  /** Whether the site chases NIV at all. */
  enabled: boolean;
  /** |NIV| in MW beyond which the system counts as short (NIV > t) or long (NIV < −t); ≥ 0. */
  nivThresholdMw: number;
  /** Imbalance price in £/MWh at or above which a short system is worth discharging into. */
  shortPriceThreshold: number;
  /** Imbalance price in £/MWh at or below which a long system is worth charging from. */
  longPriceThreshold: number;
  /** Latest imbalance price in £/MWh; without it NIV chase is inactive. */
  imbalancePrice?: number;
  /** Latest NIV estimate in MW, positive = system short; without it NIV chase is inactive. */
  nivEstimateMw?: number;
  /** SoE to reach by the period's end: `short` when discharging, `long` when charging; default each battery's min/max. */
  targetSoePercent?: { short: number; long: number };
}

/** Everything the planner needs for one site and one control period. */
export interface SitePlanInput {
  /** The site's name. */
  site: string;
  /** The planning instant; the planner reads no clock. */
  now: Date;
  /** Control period in ms (default 4000 in config), > 0; one setpoint holds this long. */
  controlPeriodMs: number;
  /**
   * Oldest usable telemetry in ms; older battery telemetry holds the battery, an older meter
   * reading disables the site limits' direction.
   */
  maxTelemetryAgeMs: number;
  /** The site's batteries, in any order. */
  batteries: BatteryPlanInput[];
  /** Metered site power in kW, positive = import. */
  sitePowerKw?: number;
  /** Time of `sitePowerKw`; absent or too old means no usable meter reading. */
  sitePowerTime?: Date;
  /** Largest import from the grid in kW, ≥ 0; absent means none. */
  importLimitKw?: number;
  /** Largest export to the grid in kW, ≥ 0; absent means none. */
  exportLimitKw?: number;
  /** The active dispatch instruction, if any: for the site, or for one battery. */
  instruction?: PlanInstruction;
  /** Further battery-level instructions, at most one per battery; each governs its battery, the site instruction the rest. */
  batteryInstructions?: PlanInstruction[];
  /** NIV chase settings and signals; absent means off. */
  nivChase?: NivChaseInput;
  /** Move the site's batteries toward `percent` SoE at up to `maxPowerKw` when nothing higher is active. */
  soeTarget?: { percent: number; maxPowerKw: number };
  /** Site config: discharge to keep import at zero, charge to keep export at zero, when nothing higher is active. */
  avoidance?: { avoidImport: boolean; avoidExport: boolean };
}

/** One battery's planned setpoint. */
export interface BatterySetpoint {
  /** The battery's UUID. */
  deviceId: string;
  /** Setpoint in kW, positive = discharge, rounded toward zero to 0.001 kW. */
  targetPowerKw: number;
  /** Who the setpoint is for. */
  source: CommandSource;
  /** The component that drove it. */
  component: PlanComponent;
  /** The dispatch instruction behind it, if any. */
  instructionId?: string;
  /** What limited it or why it is held, e.g. `clamped by max SoE`, `telemetry stale 42 s`. */
  reasons: string[];
  /** True when the battery is held at 0 kW because its telemetry cannot be trusted. */
  held: boolean;
}

/** A part of a request that was not delivered, and why. */
export interface UndeliveredPart {
  /** The limit responsible, e.g. `site export limit`, `min SoE`, `telemetry stale`. */
  reason: string;
  /** Requested minus delivered because of it, in kW (signed like the request). */
  kw: number;
}

/** The plan of one target: a manual override, a battery-level instruction, or the site's component. */
export interface TargetPlan {
  /** The component that set the request. */
  component: PlanComponent;
  /** `battery` for a manual override or battery-level instruction, `site` for the rest of the site. */
  scope: 'site' | 'battery';
  /** The batteries that follow it, sorted. */
  deviceIds: string[];
  /** The dispatch instruction, if any. */
  instructionId?: string;
  /** What the component asked for in kW, within the bounds of a higher component; absent when idle. */
  requestedKw?: number;
  /** Sum of the batteries' setpoints in kW. */
  deliveredKw: number;
  /** Requested (0 when idle) minus delivered, in kW. */
  undeliveredKw: number;
  /** `undeliveredKw` broken down by reason; the parts sum to it. */
  undelivered: UndeliveredPart[];
}

/** The planner's output for one site and one control period. */
export interface SitePlan {
  /** The site's name. */
  site: string;
  /** Sum of every target's request in kW; absent when every target is idle. */
  requestedKw?: number;
  /** Sum of every setpoint in kW: what the plan sends to the batteries, not a measurement. */
  deliveredKw: number;
  /** `requestedKw` (0 when absent) minus `deliveredKw`, in kW, signed like the request. */
  undeliveredKw: number;
  /** Each undelivered part as `reason: N kW`, prefixed by its target when there are several. */
  undeliveredReasons: string[];
  /** The highest-ranked component in the plan. */
  component: PlanComponent;
  /** One setpoint per battery, sorted by device id. */
  setpoints: BatterySetpoint[];
  /** The plan per target, in planning order: manual overrides, a battery instruction, the site. */
  targets: TargetPlan[];
  /**
   * Why components were skipped, could not act or were bounded (e.g. `niv chase: no
   * imbalance price`, `niv chase: 60 kW bounded to 40 kW by dispatch i1 (avoid export)`).
   */
  notes: string[];
}
