/**
 * The planner's input for one site and one period, built from what the control loop read
 * at the start of the period: the batteries' states (registry entry, latest reading,
 * override), the instructions, the site meters' latest power, the site's settings and the
 * market signals NIV chase follows. Pure: the reads happen in the controller.
 */
import type { BatteryState, SiteMeterPower } from './battery-state.repository.ts';
import { overrideInForce } from '../dispatch/command-source.ts';
import { governingByTarget, type Instruction } from '../dispatch/instruction.ts';
import type { MarketPoint } from '../dispatch/market-data.ts';
import { SETTLEMENT_PERIOD_MS } from '../planner/niv-chase.ts';
import type { PlanInstruction, SitePlanInput } from '../planner/planner.types.ts';
import type { SiteConfig } from '../dispatch/site-settings.ts';

/**
 * Oldest NIV estimate or imbalance price NIV chase acts on: one settlement period. An
 * older value describes a period already settled, so it is ignored (NIV chase then notes
 * the signal as missing) rather than left to drive the batteries for days.
 */
export const MAX_MARKET_SIGNAL_AGE_MS = SETTLEMENT_PERIOD_MS;

/** Everything read for one site at the start of a period. */
export interface PeriodReads {
  readonly site: string;
  /** The period's wall time. */
  readonly at: Date;
  /** The site's batteries that have a battery specification. */
  readonly batteries: readonly BatteryState[];
  /** The instructions that may govern the site or its batteries at `at`. */
  readonly instructions: readonly Instruction[];
  /** The latest reading of each site meter. */
  readonly meters: readonly SiteMeterPower[];
  readonly config: SiteConfig;
  /** The market signals of {@link marketSignalTypes}, in force at `at`; absent when none were read. */
  readonly signals?: ReadonlyMap<string, MarketPoint>;
  /** The power each battery was last verified to hold, kW (the ramp start). */
  readonly deliveredKw: (deviceId: string) => number;
}

/** The control loop's timing the planner needs. */
export interface PlanTiming {
  readonly controlPeriodMs: number;
  readonly maxTelemetryAgeMs: number;
}

/** The market signal types a site's settings need read each period; none unless NIV chase is on. */
export function marketSignalTypes(config: SiteConfig): readonly string[] {
  return config.nivChase?.enabled ? ['imbalance_price', 'niv_estimate'] : [];
}

/**
 * The site's power at its meters: the sum of their latest readings, timed by the oldest of
 * them (the sum is only as fresh as that); undefined when no meter has a power reading.
 */
export function sitePower(meters: readonly SiteMeterPower[]): { kw: number; time: Date } | undefined {
  const usable = meters.filter((r) => r.power_total_active !== null);
  if (usable.length === 0) return undefined;
  const oldest = usable.reduce((t, r) => (r.time < t ? r.time : t), usable[0]!.time);
  return { kw: usable.reduce((sum, r) => sum + r.power_total_active!, 0), time: oldest };
}

/** The planner's view of a site's settings, with the market signals NIV chase needs. */
export function plannerSettings(config: SiteConfig, signals: ReadonlyMap<string, MarketPoint> | undefined): Partial<SitePlanInput> {
  const niv = config.nivChase;
  const imbalancePrice = signals?.get('imbalance_price')?.value;
  const nivEstimateMw = signals?.get('niv_estimate')?.value;
  return {
    ...(config.importLimitKw !== undefined ? { importLimitKw: config.importLimitKw } : {}),
    ...(config.exportLimitKw !== undefined ? { exportLimitKw: config.exportLimitKw } : {}),
    ...(config.avoidImport || config.avoidExport
      ? { avoidance: { avoidImport: config.avoidImport, avoidExport: config.avoidExport } }
      : {}),
    ...(config.soeTarget?.enabled ? { soeTarget: { percent: config.soeTarget.soePercent, maxPowerKw: config.soeTarget.maxPowerKw } } : {}),
    ...(niv?.enabled
      ? {
          nivChase: {
            enabled: true,
            nivThresholdMw: niv.nivThresholdMw,
            shortPriceThreshold: niv.shortPriceThreshold,
            longPriceThreshold: niv.longPriceThreshold,
            ...(imbalancePrice !== undefined ? { imbalancePrice } : {}),
            ...(nivEstimateMw !== undefined ? { nivEstimateMw } : {}),
            ...(niv.shortTargetSoePercent !== undefined || niv.longTargetSoePercent !== undefined
              ? { targetSoePercent: { short: niv.shortTargetSoePercent ?? 0, long: niv.longTargetSoePercent ?? 100 } }
              : {}),
          },
        }
      : {}),
  };
}

const toPlan = (i: Instruction): PlanInstruction => ({ id: i.id, target: i.target, command: i.command });

/**
 * The planner's input for the period: the governing site instruction and the governing
 * instructions of the site's own batteries, the meters' power, the site's settings, and per
 * battery its ratings, latest reading, override in force and ramp start.
 */
export function planInput(reads: PeriodReads, timing: PlanTiming): SitePlanInput {
  const { at } = reads;
  const ids = new Set(reads.batteries.map((s) => s.device.id));
  const governing = governingByTarget(reads.instructions, at);
  const meters = sitePower(reads.meters);
  return {
    site: reads.site,
    now: at,
    controlPeriodMs: timing.controlPeriodMs,
    maxTelemetryAgeMs: timing.maxTelemetryAgeMs,
    ...(meters ? { sitePowerKw: meters.kw, sitePowerTime: meters.time } : {}),
    ...plannerSettings(reads.config, reads.signals),
    ...(governing.site ? { instruction: toPlan(governing.site) } : {}),
    batteryInstructions: [...governing.devices.entries()].filter(([id]) => ids.has(id)).map(([, i]) => toPlan(i)),
    batteries: reads.batteries.map(({ device, reading: r, override }) => {
      const bess = device.bess!;
      const o = override && overrideInForce(override, at) ? override : undefined;
      return {
        deviceId: device.id,
        ratedChargePowerKw: bess.ratedChargePowerKw,
        ratedDischargePowerKw: bess.ratedDischargePowerKw,
        capacityKwh: bess.capacityKwh,
        minSoePercent: bess.minSoePercent,
        maxSoePercent: bess.maxSoePercent,
        inverterBlockCount: bess.inverterBlockCount,
        rampRateKwPerS: bess.rampRateKwPerS,
        previousSetpointKw: reads.deliveredKw(device.id),
        ...(r?.soe != null ? { soePercent: r.soe } : {}),
        ...(r?.available_inverter_blocks != null ? { availableInverterBlocks: r.available_inverter_blocks } : {}),
        ...(r ? { telemetryTime: r.time } : {}),
        ...(o ? { manual: { powerKw: o.powerKw, expireTime: o.expireTime } } : {}),
      };
    }),
  };
}
