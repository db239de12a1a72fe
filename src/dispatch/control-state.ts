import type { Kysely } from 'kysely';
import { findShardOwners } from '../cluster/shard-owners.ts';
import { NotFoundError } from '../errors.ts';
import type { Device } from '../registry/registered-device.ts';
import type { Registry } from '../registry/registry.ts';
import type { SiteScope } from '../storage/site-scope.ts';
import { commandSourceFromCode, isRemote, overrideInForce, type CommandSource } from './command-source.ts';
import type { Dispatch } from './dispatch.ts';
import * as repo from './dispatch.repository.ts';
import type { DispatchTables } from './dispatch.table.ts';
import type { SetpointRecord } from './setpoint-events.ts';

/** Who controls a battery, what it was told, and why. */
export interface BatteryState {
  readonly deviceId: string;
  readonly site: string;
  readonly intendedSource?: CommandSource;
  /** When the intended source was last stored as changed. */
  readonly intendedSince?: Date;
  /** The `command_source` number of the latest reading (the CommandSource enum). */
  readonly reportedSource?: number;
  readonly sourceMismatch: boolean;
  readonly targetPowerKw: number;
  readonly activeInstructionId?: string;
  readonly reason: string;
  readonly manualExpireTime?: Date;
  readonly lastTelemetryTime?: Date;
  /** The latest reading's state of energy, %; absent without a reading or a value. */
  readonly soePercent?: number;
  /** The latest reading's `target_power`: the setpoint the battery reports holding, kW, positive = discharge. */
  readonly reportedPowerKw?: number;
  /** The latest reading's available inverter blocks; absent when it did not say. */
  readonly availableInverterBlocks?: number;
  readonly lastEvent?: SetpointRecord;
  /** The replica holding the lease of the battery's site's shard now, the one that writes it; absent when none does. */
  readonly ownerReplica?: string;
  /** That lease's epoch; 0 when no replica holds it. */
  readonly epoch: number;
}

/** Reads the control state of batteries. */
export interface ControlState {
  /**
   * The state of a site's batteries, or of the batteries named. A named battery outside
   * `sites` is NOT_FOUND exactly as an unknown one; a site is checked by the caller.
   */
  get(selector: { site: string } | { deviceIds: readonly string[] }, sites: SiteScope): Promise<BatteryState[]>;
  /**
   * The state of batteries already read from the registry (any number, any sites), in the
   * same few set-based queries whatever their number; ordered as {@link get} orders.
   */
  ofDevices(devices: readonly Device[]): Promise<BatteryState[]>;
}

/**
 * Creates the control-state reader. The reported source is compared with the intended one
 * only when both are known, by remote versus own control ({@link isRemote}); a mismatch
 * means the battery is not doing what Powerplane intends (e.g. it reverted to local
 * control) and is shown, never hidden.
 */
export function createControlState(deps: { db: Kysely<object>; registry: Registry; dispatch: Dispatch; now?: () => Date }): ControlState {
  const db = deps.db.withTables<DispatchTables>();
  const now = deps.now ?? (() => new Date());

  async function ofDevices(devices: readonly Device[]): Promise<BatteryState[]> {
    if (devices.length === 0) return [];
    const ids = devices.map((d) => d.id);
    const [sources, readings, overrides, events, owners] = await Promise.all([
      repo.findSourceStates(db, ids),
      repo.findLatestBessReadings(deps.db, ids),
      repo.findOverrides(db, ids),
      repo.findLatestSetpointEvents(db, ids),
      findShardOwners(deps.db, [...new Set(devices.map((d) => d.site))]),
    ]);
    const source = new Map(sources.map((s) => [s.device_id, s]));
    const reading = new Map(readings.map((r) => [r.device_id, r]));
    const at = now();
    const override = new Map(overrides.filter((o) => overrideInForce(o, at)).map((o) => [o.deviceId, o]));
    const event = new Map(events.map((e) => [e.deviceId, e]));
    return devices
      .map((device): BatteryState => {
        const intended = source.get(device.id);
        const intendedSource = commandSourceFromCode(intended?.source);
        const r = reading.get(device.id);
        const reported = r?.command_source ?? undefined;
        const reportedSource = commandSourceFromCode(reported);
        const lastEvent = event.get(device.id);
        const owner = owners.get(device.site);
        return {
          deviceId: device.id,
          site: device.site,
          ...(intendedSource ? { intendedSource, intendedSince: intended!.changed_at } : {}),
          ...(reported !== undefined ? { reportedSource: reported } : {}),
          sourceMismatch:
            intendedSource !== undefined && reportedSource !== undefined && isRemote(intendedSource) !== isRemote(reportedSource),
          targetPowerKw: lastEvent?.targetPowerKw ?? 0,
          ...(intended?.instruction_id ? { activeInstructionId: intended.instruction_id } : {}),
          reason: intended?.reason ?? 'not planned yet',
          ...(override.get(device.id) ? { manualExpireTime: override.get(device.id)!.expireTime } : {}),
          ...(r ? { lastTelemetryTime: r.time } : {}),
          ...(r?.soe != null ? { soePercent: r.soe } : {}),
          ...(r?.target_power != null ? { reportedPowerKw: r.target_power } : {}),
          ...(r?.available_inverter_blocks != null ? { availableInverterBlocks: r.available_inverter_blocks } : {}),
          ...(lastEvent ? { lastEvent } : {}),
          ...(owner?.replica !== undefined ? { ownerReplica: owner.replica } : {}),
          epoch: owner?.epoch ?? 0,
        };
      })
      .sort((a, b) => (a.site < b.site ? -1 : a.site > b.site ? 1 : a.deviceId < b.deviceId ? -1 : 1));
  }

  return {
    async get(selector, sites) {
      let devices: Device[];
      if ('site' in selector) {
        devices = await deps.dispatch.siteBatteries(selector.site);
        if (devices.length === 0) throw new NotFoundError('site with active batteries', selector.site, 'site');
      } else {
        // One query for every id: the console asks for a thousand batteries at a time.
        devices = await deps.registry.getDevices(selector.deviceIds, sites, 'device_ids').catch((err: unknown) => {
          if (err instanceof NotFoundError) throw new NotFoundError('battery', err.id, err.field, { outsideSites: err.outsideSites });
          throw err;
        });
      }
      return ofDevices(devices);
    },
    ofDevices,
  };
}
