/**
 * The control loop's per-battery writers: one setpoint writer per battery a plan covers,
 * made on its first plan and made again when its Modbus settings change; the setpoint it
 * carries out and the setpoints it still owes an end to; the power it last verified (the
 * planner's ramp start); and the writer's lease, which ends when no plan has covered the
 * battery for a while. Every step of every setpoint becomes a {@link SetpointRecord}.
 */
import { randomUUID } from 'node:crypto';
import type { Fence } from '../cluster/cluster.types.ts';
import type { Logger } from '../logger.ts';
import type { SetpointWriter } from '../modbus/setpoint-writer.ts';
import type { SetpointEvent } from '../modbus/types.ts';
import type { Device } from '../registry/registered-device.ts';
import type { Clock } from '../clock.ts';
import type { CommandSource } from '../dispatch/command-source.ts';
import type { IntendedSource } from './intended-source.ts';
import type { BatterySetpoint } from '../planner/planner.types.ts';
import type { SetpointPhaseName, SetpointRecord } from '../dispatch/setpoint-events.ts';

/**
 * Makes the writer of one battery; tests and relay mode may supply their own. `mayWrite`,
 * when given, says whether the lease the battery is written under still holds; a Modbus
 * writer asks it before every register write.
 */
export type WriterFactory = (device: Device, onEvent: (e: SetpointEvent) => void, mayWrite?: () => boolean) => SetpointWriter;

/** The per-battery writers of one control loop. */
export interface BatteryRuntimes {
  /**
   * Hands one planned setpoint to the battery's writer (making the writer if needed) and
   * renews the writer's lease. Nothing is sent when the battery already holds (or is being
   * given) the same thing for the same cause; a setpoint that failed or expired is sent
   * again. A battery's first plan always sends, so after a restart an idle battery is
   * released rather than left with whatever an earlier process wrote. `change` is this
   * period's command-source change of the battery, if any: its principal and words explain
   * a setpoint that follows nothing (a release after a cancel). `fence` is the lease the
   * battery is written under; every record of its setpoints carries it, and a new fence (the
   * shard lost and taken again) makes a new writer. Does nothing once stopped.
   */
  apply(
    device: Device,
    setpoint: BatterySetpoint,
    intended: IntendedSource,
    change?: { reason: string; principal?: string },
    fence?: Fence,
  ): void;
  /** The power the battery was last verified to hold, kW; 0 when unknown, failed or expired. */
  deliveredKw(deviceId: string): number;
  /**
   * Stops the writer of every battery no plan has covered within the lease: heartbeats stop
   * and the battery falls back on its own reversion timeout. Touches no database.
   */
  expireLeases(): void;
  /**
   * Stops the writers of every battery of the sites `matches` names, at once: their shard is
   * no longer this replica's. Resolves when they have stopped (a write in flight ends first).
   */
  stopSites(matches: (site: string) => boolean): Promise<void>;
  /** Stops every writer and takes no more setpoints. */
  stopAll(): Promise<void>;
}

/** Dependencies of {@link createBatteryRuntimes}. */
export interface BatteryRuntimesDeps {
  readonly makeWriter: WriterFactory;
  /** Receives every step of every setpoint, in order (the bus and the audit table). */
  readonly onRecord: (record: SetpointRecord) => void;
  /** How long a writer lives after the last plan that covered its battery, ms. */
  readonly leaseMs: number;
  /** Monotonic time: leases and each record's `elapsedMs`. */
  readonly clock: Clock;
  /** Wall time of each record's `at`. */
  readonly now: () => Date;
  readonly log: Logger;
  /** Whether `fence` is still this replica's lease on `site` now; writers made under a fence ask it before every write. */
  readonly fenceHolds?: (site: string, fence: Fence) => boolean;
}

/** One setpoint of a battery, what it was for, and how far it got. */
interface Setpoint {
  setpointId: string;
  kw: number;
  source: CommandSource;
  /** What drives the battery (see {@link IntendedSource.cause}); a new cause is a new setpoint. */
  cause: string;
  instructionId?: string;
  principal?: string;
  plannedAt: number;
  seq: number;
  released: boolean;
  phase: SetpointPhaseName;
}

interface BatteryRuntime {
  writer: SetpointWriter;
  site: string;
  /** The Modbus settings (and lease) the writer was made with; a change makes a new writer. */
  configKey: string;
  /** The lease the battery is written under. */
  fence?: Fence;
  /** When a plan last covered this battery (clock time); the lease of its writer. */
  plannedAt: number;
  /**
   * The power the battery was last verified to hold, kW: the ramp's starting point. A
   * setpoint that failed or expired leaves it at 0, since the device may have fallen back;
   * ramping from a planned value it never reached would let the step grow every period.
   */
  deliveredKw: number;
  /** The setpoint being carried out, what it was for, and how far it got. */
  current?: Setpoint;
  /**
   * Setpoints handed to the writer and not yet ended, by writer sequence number: one that
   * is superseded still ends (verified, or expired when dropped) and its end is recorded
   * like any other step. Bounded: the oldest is forgotten beyond {@link MAX_OPEN_SETPOINTS}.
   */
  open: Map<number, Setpoint>;
}

/** Setpoints of one battery kept open for their end event at most. */
export const MAX_OPEN_SETPOINTS = 16;

const PHASES: Partial<Record<SetpointEvent['phase'], SetpointPhaseName>> = {
  written: 'WRITTEN',
  verified: 'VERIFIED',
  failed: 'FAILED',
  dropped: 'EXPIRED',
};

/** Creates the writers' bookkeeping; no writer exists until a battery's first plan. */
export function createBatteryRuntimes(deps: BatteryRuntimesDeps): BatteryRuntimes {
  const { clock, log } = deps;
  const batteries = new Map<string, BatteryRuntime>();
  // The writer settings of each device object, serialised once: the control loop hands the
  // same objects every period until the registry row is read again.
  const settingsKeys = new WeakMap<Device, string>();
  let stopped = false;

  function record(
    runtime: BatteryRuntime,
    deviceId: string,
    phase: SetpointPhaseName,
    reason: string | undefined,
    setpoint: Setpoint,
  ): void {
    deps.onRecord({
      setpointId: setpoint.setpointId,
      deviceId,
      site: runtime.site,
      phase,
      targetPowerKw: setpoint.kw,
      source: setpoint.source,
      ...(setpoint.instructionId ? { instructionId: setpoint.instructionId } : {}),
      ...(setpoint.principal ? { principal: setpoint.principal } : {}),
      ...(reason ? { reason } : {}),
      at: deps.now(),
      elapsedMs: clock.now() - setpoint.plannedAt,
      ...(runtime.fence ? { replica: runtime.fence.replica, shard: runtime.fence.shard, epoch: runtime.fence.epoch } : {}),
    });
  }

  /** Turns one writer event into the end or step of the setpoint it belongs to. */
  function onEvent(runtime: BatteryRuntime, deviceId: string, event: SetpointEvent): void {
    const phase = PHASES[event.phase];
    // The current setpoint may be written and verified again (reasserted after a
    // reconnection, refreshed through a relay) and fail later; a superseded one ends once.
    const current = runtime.current;
    const setpoint = current?.seq === event.seq ? current : runtime.open.get(event.seq);
    if (!phase || !setpoint) return;
    if (event.phase === 'failed' && event.willRetry) return;
    setpoint.phase = phase;
    if (setpoint !== current && phase !== 'WRITTEN') runtime.open.delete(event.seq);
    if (phase === 'VERIFIED') runtime.deliveredKw = setpoint.released ? 0 : setpoint.kw;
    else if (phase === 'FAILED' || phase === 'EXPIRED') runtime.deliveredKw = 0;
    record(runtime, deviceId, phase, event.reason, setpoint);
  }

  function runtimeOf(device: Device, fence: Fence | undefined): BatteryRuntime {
    const bess = device.bess!;
    // A relay writer sends through its site's agent, so for one the site is part of the key.
    // The epoch is too: a writer made under an earlier lease never writes under a later one.
    let settings = settingsKeys.get(device);
    if (settings === undefined) {
      settings = JSON.stringify([bess.modbus, bess.reversionTimeoutS, bess.modbus.relay ? device.site : '']);
      settingsKeys.set(device, settings);
    }
    const configKey = `${settings}#${fence?.epoch ?? ''}`;
    let runtime = batteries.get(device.id);
    if (runtime && runtime.configKey !== configKey) {
      // New endpoint, profile or timeout: the old writer goes, the new one arms afresh.
      void runtime.writer.stop();
      batteries.delete(device.id);
      runtime = undefined;
    }
    if (!runtime) {
      const created: BatteryRuntime = {
        site: device.site,
        configKey,
        ...(fence ? { fence } : {}),
        plannedAt: clock.now(),
        deliveredKw: 0,
        open: new Map(),
        writer: deps.makeWriter(
          device,
          (event) => onEvent(created, device.id, event),
          fence && deps.fenceHolds ? () => deps.fenceHolds!(device.site, fence) : undefined,
        ),
      };
      runtime = created;
      batteries.set(device.id, runtime);
    }
    runtime.site = device.site;
    runtime.plannedAt = clock.now();
    return runtime;
  }

  return {
    apply(device, setpoint, intended, change, fence) {
      if (stopped) return;
      const runtime = runtimeOf(device, fence);
      const release = intended.released;
      const kw = release ? 0 : setpoint.targetPowerKw;
      const current = runtime.current;
      const failed = current?.phase === 'FAILED' || current?.phase === 'EXPIRED';
      if (
        current &&
        !failed &&
        current.kw === kw &&
        current.released === release &&
        current.source === intended.source &&
        current.cause === intended.cause &&
        current.instructionId === intended.instructionId
      )
        return;
      const principal = intended.principal ?? change?.principal;
      const planned: Setpoint = {
        setpointId: randomUUID(),
        kw,
        source: intended.source,
        cause: intended.cause,
        ...(intended.instructionId ? { instructionId: intended.instructionId } : {}),
        ...(principal ? { principal } : {}),
        plannedAt: clock.now(),
        released: release,
        seq: -1,
        phase: 'PLANNED',
      };
      runtime.current = planned;
      const reason = [change?.reason ?? intended.reason, ...(setpoint.held ? [] : setpoint.reasons)].join('; ');
      record(runtime, device.id, 'PLANNED', reason || undefined, planned);
      // The setpoint replaced stays open only while it has not ended: it still may.
      if (current && current.phase !== 'PLANNED' && current.phase !== 'WRITTEN') runtime.open.delete(current.seq);
      // Telling the writer may end the previous setpoint at once (dropped, still open here);
      // the new one can only end later, once it is open under its sequence number.
      planned.seq = release ? runtime.writer.clear() : runtime.writer.setTarget(kw);
      runtime.open.set(planned.seq, planned);
      if (runtime.open.size > MAX_OPEN_SETPOINTS) runtime.open.delete(runtime.open.keys().next().value!);
    },
    deliveredKw: (deviceId) => batteries.get(deviceId)?.deliveredKw ?? 0,
    expireLeases() {
      const limit = clock.now() - deps.leaseMs;
      for (const [deviceId, runtime] of batteries) {
        if (runtime.plannedAt >= limit) continue;
        log.warn(
          { deviceId, site: runtime.site, leaseMs: deps.leaseMs },
          'battery not planned within its lease: writer stopped, the battery falls back on its own',
        );
        batteries.delete(deviceId);
        void runtime.writer.stop();
      }
    },
    async stopSites(matches) {
      const stopping: Promise<void>[] = [];
      for (const [deviceId, runtime] of batteries) {
        if (!matches(runtime.site)) continue;
        batteries.delete(deviceId);
        stopping.push(runtime.writer.stop());
      }
      await Promise.all(stopping);
    },
    async stopAll() {
      stopped = true;
      await Promise.all([...batteries.values()].map((b) => b.writer.stop()));
    },
  };
}
