import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Registry as MetricsRegistry } from 'prom-client';
import type { Logger } from '../logger.ts';
import { parseRegisterMap } from '../modbus/register-map.ts';
import { createSetpointWriter, type SetpointWriter } from '../modbus/setpoint-writer.ts';
import type { RegisterProfile, SetpointEvent } from '../modbus/types.ts';
import type { Device } from '../registry/device.ts';
import type { Registry } from '../registry/registry.ts';
import {
  commandSourceFromCode,
  intendedSource,
  isRemote,
  overrideInForce,
  sourceChange,
  type CommandSource,
  type Departure,
  type IntendedSource,
} from './command-source.ts';
import { findBatteryStates, type BatteryState } from './battery-state.repository.ts';
import * as repo from './dispatch.repository.ts';
import type { DispatchTables } from './dispatch.table.ts';
import { createPlanReport } from './controller-report.ts';
import { governingByTarget, type Instruction } from './instruction.ts';
import { SETTLEMENT_PERIOD_MS } from './niv-chase.ts';
import { planSite } from './planner.ts';
import type { BatterySetpoint, SitePlanInput } from './planner.types.ts';
import type { MarketData } from './market-data.ts';
import { createEventRecorder, type SetpointBus, type SetpointPhaseName, type SetpointRecord } from './setpoint-bus.ts';
import type { SiteConfig, SiteConfigs } from './site-config.ts';

/** Timing of the control loop. */
export interface ControllerOptions {
  /** How often every site is planned. Default 4000 ms. */
  readonly controlPeriodMs: number;
  /** Battery telemetry older than this holds the battery at its safe fallback. Default 30 s. */
  readonly maxTelemetryAgeMs: number;
  /** Heartbeat interval of the setpoint writers. Default 1000 ms. */
  readonly heartbeatIntervalMs: number;
  /** Per-request Modbus timeout. Default 1000 ms. */
  readonly modbusTimeoutMs: number;
}

/**
 * Oldest NIV estimate or imbalance price NIV chase acts on: one settlement period. An
 * older value describes a period already settled, so it is ignored (NIV chase then notes
 * the signal as missing) rather than left to drive the batteries for days.
 */
export const MAX_MARKET_SIGNAL_AGE_MS = SETTLEMENT_PERIOD_MS;

/** Defaults of {@link ControllerOptions}. */
export const CONTROLLER_DEFAULTS: ControllerOptions = Object.freeze({
  controlPeriodMs: 4_000,
  maxTelemetryAgeMs: 30_000,
  heartbeatIntervalMs: 1_000,
  modbusTimeoutMs: 1_000,
});

/** Makes the writer of one battery; tests and relay mode may supply their own. */
export type WriterFactory = (device: Device, onEvent: (e: SetpointEvent) => void) => SetpointWriter;

/** The control loop: plans every site each period and drives one writer per battery. */
export interface Controller {
  /** Plans `site` as soon as possible (after a submit, cancel or override). */
  poke(site: string): void;
  /** Stops the loop and every writer; batteries then revert on their own timeout. */
  stop(): Promise<void>;
}

/** Dependencies of {@link startController}. */
export interface ControllerDeps {
  readonly db: Kysely<object>;
  readonly registry: Registry;
  readonly bus: SetpointBus;
  readonly siteConfigs: SiteConfigs;
  readonly marketData: MarketData;
  readonly log: Logger;
  readonly options?: Partial<ControllerOptions>;
  readonly writerFactory?: WriterFactory;
  /** Makes the writer of a battery flagged `relay` (setpoints through the site's agent); without it such a battery gets a Modbus writer too. */
  readonly relayWriterFactory?: WriterFactory;
  readonly now?: () => Date;
  /** Where the controller's gauges are registered (the server's /metrics). */
  readonly metrics?: MetricsRegistry;
}

interface BatteryRuntime {
  writer: SetpointWriter;
  site: string;
  /** The Modbus settings the writer was made with; a change rebuilds the writer. */
  configKey: string;
  /** When a plan last covered this battery (performance.now()); the lease of its writer. */
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

const MAX_OPEN_SETPOINTS = 16;

const PHASES: Partial<Record<SetpointEvent['phase'], SetpointPhaseName>> = {
  written: 'WRITTEN',
  verified: 'VERIFIED',
  failed: 'FAILED',
  dropped: 'EXPIRED',
};

/** How long a stop waits for planning in flight and the last events (after the writers have stopped). */
const STOP_PLANNING_WAIT_MS = 5_000;

/**
 * Starts the control loop. Every period (and at once after a poke) it plans each site with
 * active batteries: reads the batteries' latest telemetry, the site meter, overrides and
 * the governing instruction, runs the pure planner, records changes of intended command
 * source (with who caused them), and hands each setpoint to the battery's writer. A battery
 * going back to local control is released (0 kW, setpoint disabled); a held battery (stale
 * telemetry) too. Every setpoint step is appended to `powerplane.setpoint_events` with its
 * instruction and principal, and published on the bus. What a site's plan cannot deliver
 * is exported as gauges and logged when it changes.
 */
export function startController(deps: ControllerDeps): Controller {
  const options = { ...CONTROLLER_DEFAULTS, ...deps.options };
  const db = deps.db.withTables<DispatchTables>();
  const now = deps.now ?? (() => new Date());
  const log = deps.log;
  const batteries = new Map<string, BatteryRuntime>();
  const running = new Map<string, Promise<void>>();
  const dirty = new Set<string>();
  const boundaries = new Map<string, NodeJS.Timeout>();
  let stopped = false;
  const report = createPlanReport(deps.metrics, log);
  const recorder = createEventRecorder((records) => repo.insertSetpointEvents(db, records), log);

  const modbusWriter: WriterFactory =
    deps.writerFactory ??
    ((device, onEvent) =>
      createSetpointWriter({
        deviceKey: device.id,
        endpoint: { host: device.bess!.modbus.host, port: device.bess!.modbus.port, unitId: device.bess!.modbus.unitId },
        profile: profileOf(device),
        reversionTimeoutS: device.bess!.reversionTimeoutS,
        heartbeatIntervalMs: options.heartbeatIntervalMs,
        requestTimeoutMs: options.modbusTimeoutMs,
        onEvent,
        log: log.child({ module: 'writer' }),
      }));
  const makeWriter: WriterFactory = (device, onEvent) =>
    (device.bess!.modbus.relay && deps.relayWriterFactory ? deps.relayWriterFactory : modbusWriter)(device, onEvent);

  function record(runtime: BatteryRuntime, deviceId: string, phase: SetpointPhaseName, reason?: string, current = runtime.current): void {
    if (!current) return;
    const rec: SetpointRecord = {
      setpointId: current.setpointId,
      deviceId,
      site: runtime.site,
      phase,
      targetPowerKw: current.kw,
      source: current.source,
      ...(current.instructionId ? { instructionId: current.instructionId } : {}),
      ...(current.principal ? { principal: current.principal } : {}),
      ...(reason ? { reason } : {}),
      at: now(),
      elapsedMs: performance.now() - current.plannedAt,
    };
    deps.bus.publish(rec);
    recorder.add(rec);
  }

  function runtimeOf(device: Device): BatteryRuntime {
    // A relay writer sends through its site's agent, so for one the site is part of the key.
    const configKey = JSON.stringify([device.bess!.modbus, device.bess!.reversionTimeoutS, device.bess!.modbus.relay ? device.site : '']);
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
        plannedAt: performance.now(),
        deliveredKw: 0,
        open: new Map(),
        writer: makeWriter(device, (event) => {
          const phase = PHASES[event.phase];
          // The current setpoint may be written and verified again (reasserted after a
          // reconnection, refreshed through a relay) and fail later; a superseded one ends once.
          const current = created.current;
          const setpoint = current?.seq === event.seq ? current : created.open.get(event.seq);
          if (!phase || !setpoint) return;
          if (event.phase === 'failed' && event.willRetry) return;
          setpoint.phase = phase;
          if (setpoint !== current && phase !== 'WRITTEN') created.open.delete(event.seq);
          if (phase === 'VERIFIED') created.deliveredKw = setpoint.released ? 0 : setpoint.kw;
          else if (phase === 'FAILED' || phase === 'EXPIRED') created.deliveredKw = 0;
          record(created, device.id, phase, event.reason, setpoint);
        }),
      };
      runtime = created;
      batteries.set(device.id, runtime);
    }
    runtime.site = device.site;
    runtime.plannedAt = performance.now();
    return runtime;
  }

  /**
   * Hands one planned setpoint to the battery's writer. Nothing is sent when the battery
   * already holds (or is being given) the same thing for the same cause; a setpoint that
   * failed is sent again. A battery's first plan always sends, so after a restart an idle
   * battery is released rather than left with whatever an earlier process wrote.
   * `change` is this period's command-source change of the battery, if any: its principal
   * and words explain a setpoint that follows nothing (a release after a cancel).
   */
  function apply(device: Device, setpoint: BatterySetpoint, intended: IntendedSource, change?: { reason: string; principal?: string }): void {
    if (stopped) return;
    const runtime = runtimeOf(device);
    const release = intended.released;
    const kw = release ? 0 : setpoint.targetPowerKw;
    const current = runtime.current;
    const failed = current?.phase === 'FAILED' || current?.phase === 'EXPIRED';
    if (current && !failed && current.kw === kw && current.released === release && current.source === intended.source && current.cause === intended.cause && current.instructionId === intended.instructionId) return;
    const principal = intended.principal ?? change?.principal;
    runtime.current = {
      setpointId: randomUUID(),
      kw,
      source: intended.source,
      cause: intended.cause,
      ...(intended.instructionId ? { instructionId: intended.instructionId } : {}),
      ...(principal ? { principal } : {}),
      plannedAt: performance.now(),
      released: release,
      seq: -1,
      phase: 'PLANNED',
    };
    const reason = [change?.reason ?? intended.reason, ...(setpoint.held ? [] : setpoint.reasons)].join('; ');
    record(runtime, device.id, 'PLANNED', reason || undefined);
    // The setpoint replaced stays open only while it has not ended: it still may.
    if (current && current.phase !== 'PLANNED' && current.phase !== 'WRITTEN') runtime.open.delete(current.seq);
    const planned = runtime.current;
    // Telling the writer may end the previous setpoint at once (dropped, still open here);
    // the new one can only end later, once it is open under its sequence number.
    planned.seq = release ? runtime.writer.clear() : runtime.writer.setTarget(kw);
    runtime.open.set(planned.seq, planned);
    if (runtime.open.size > MAX_OPEN_SETPOINTS) runtime.open.delete(runtime.open.keys().next().value!);
  }

  async function plan(site: string): Promise<void> {
    const at = now();
    // Every read of the period at once, each battery's state in a single query.
    const [states, instructions, meters, config] = await Promise.all([
      findBatteryStates(deps.db, site),
      repo.findGoverningInstructions(db, site, { site }, at),
      siteMeterPower(site),
      deps.siteConfigs.get(site),
    ]);
    for (const { device: d } of states) if (!d.bess) log.warn({ deviceId: d.id, site }, 'battery has no bess specification in its metadata; not planned');
    const planned = states.filter((s) => s.device.bess);
    if (planned.length === 0) return;
    const devices = planned.map((s) => s.device);
    const ids = devices.map((d) => d.id);
    const siteSettings = await plannerSettings(config, at);
    const reading = new Map(planned.flatMap((s) => (s.reading ? [[s.device.id, s.reading] as const] : [])));
    const override = new Map(planned.flatMap((s) => (s.override && overrideInForce(s.override, at) ? [[s.device.id, s.override] as const] : [])));
    const governing = governingByTarget(instructions, at);
    const toPlan = (i: Instruction) => ({ id: i.id, target: i.target, command: i.command });
    const input: SitePlanInput = {
      site,
      now: at,
      controlPeriodMs: options.controlPeriodMs,
      maxTelemetryAgeMs: options.maxTelemetryAgeMs,
      ...(meters ? { sitePowerKw: meters.kw, sitePowerTime: meters.time } : {}),
      ...siteSettings,
      ...(governing.site ? { instruction: toPlan(governing.site) } : {}),
      batteryInstructions: [...governing.devices.entries()].filter(([id]) => ids.includes(id)).map(([, i]) => toPlan(i)),
      batteries: devices.map((d) => {
        const r = reading.get(d.id);
        const o = override.get(d.id);
        return {
          deviceId: d.id,
          ratedChargePowerKw: d.bess!.ratedChargePowerKw,
          ratedDischargePowerKw: d.bess!.ratedDischargePowerKw,
          capacityKwh: d.bess!.capacityKwh,
          minSoePercent: d.bess!.minSoePercent,
          maxSoePercent: d.bess!.maxSoePercent,
          inverterBlockCount: d.bess!.inverterBlockCount,
          rampRateKwPerS: d.bess!.rampRateKwPerS,
          previousSetpointKw: batteries.get(d.id)?.deliveredKw ?? 0,
          ...(r?.soe != null ? { soePercent: r.soe } : {}),
          ...(r?.available_inverter_blocks != null ? { availableInverterBlocks: r.available_inverter_blocks } : {}),
          ...(r ? { telemetryTime: r.time } : {}),
          ...(o ? { manual: { powerKw: o.powerKw, expireTime: o.expireTime } } : {}),
        };
      }),
    };
    const result = planSite(input);
    const submitter = new Map(instructions.map((i) => [i.id, i.principal]));
    const intended = new Map(
      result.setpoints.map((sp) => {
        const o = override.get(sp.deviceId);
        const instructionPrincipal = sp.instructionId ? submitter.get(sp.instructionId) : undefined;
        return [sp.deviceId, intendedSource(sp, { ...(o ? { override: o } : {}), ...(instructionPrincipal ? { instructionPrincipal } : {}) })];
      }),
    );
    const changes = sourceChanges(planned, intended, at);
    // The intended source is stored before any write, so the audit never lags the battery.
    await repo.recordSourceChanges(db, changes);
    report.mismatches(
      site,
      result.setpoints.filter((sp) => {
        const reported = commandSourceFromCode(reading.get(sp.deviceId)?.command_source);
        return reported !== undefined && isRemote(reported) !== isRemote(intended.get(sp.deviceId)!.source);
      }).length,
    );
    report.plan(result);
    const byId = new Map(devices.map((d) => [d.id, d]));
    const changeOf = new Map(changes.map((c) => [c.deviceId, c]));
    for (const setpoint of result.setpoints) apply(byId.get(setpoint.deviceId)!, setpoint, intended.get(setpoint.deviceId)!, changeOf.get(setpoint.deviceId));
    await scheduleBoundary(site, ids, at);
  }

  /**
   * The command-source changes of a site's batteries this period, each naming who caused
   * it: a released or expired override, or a cancelled or ended instruction, is told apart
   * from a battery simply moving on (the battery states carry how each stood).
   */
  function sourceChanges(states: readonly BatteryState[], intended: ReadonlyMap<string, IntendedSource>, at: Date): repo.SourceChange[] {
    return states.flatMap(({ device, stored, override, storedInstruction }) => {
      const next = intended.get(device.id);
      if (!next) return [];
      const departure: Departure = { ...(override ? { override } : {}), ...(storedInstruction ? { instruction: storedInstruction } : {}) };
      const change = sourceChange(stored, next, departure, at);
      return change ? [{ deviceId: device.id, ...change }] : [];
    });
  }

  /** Replans `site` at its next instruction start or end or override expiry, not a period late. */
  async function scheduleBoundary(site: string, ids: string[], at: Date): Promise<void> {
    const next = await repo.findNextBoundary(db, site, ids, at);
    clearTimeout(boundaries.get(site));
    boundaries.delete(site);
    if (!next || stopped) return;
    const delay = Math.max(0, next.getTime() - now().getTime()) + 5;
    if (delay > 24 * 3_600_000) return;
    const timer = setTimeout(() => {
      boundaries.delete(site);
      void schedule(site);
    }, delay);
    timer.unref();
    boundaries.set(site, timer);
  }


  /** The planner's view of a site's settings, with the market signals NIV chase needs. */
  async function plannerSettings(config: SiteConfig, at: Date): Promise<Partial<SitePlanInput>> {
    const niv = config.nivChase;
    const signals = niv?.enabled ? await deps.marketData.latestAt(['imbalance_price', 'niv_estimate'], at, MAX_MARKET_SIGNAL_AGE_MS) : undefined;
    const imbalancePrice = signals?.get('imbalance_price')?.value;
    const nivEstimateMw = signals?.get('niv_estimate')?.value;
    return {
      ...(config.importLimitKw !== undefined ? { importLimitKw: config.importLimitKw } : {}),
      ...(config.exportLimitKw !== undefined ? { exportLimitKw: config.exportLimitKw } : {}),
      ...(config.avoidImport || config.avoidExport ? { avoidance: { avoidImport: config.avoidImport, avoidExport: config.avoidExport } } : {}),
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

  async function siteMeterPower(site: string): Promise<{ kw: number; time: Date } | undefined> {
    const rows = await repo.findSiteMeterPower(deps.db, site);
    const usable = rows.filter((r) => r.power_total_active !== null);
    if (usable.length === 0) return undefined;
    const oldest = usable.reduce((t, r) => (r.time < t ? r.time : t), usable[0]!.time);
    return { kw: usable.reduce((sum, r) => sum + r.power_total_active!, 0), time: oldest };
  }

  function schedule(site: string): Promise<void> {
    if (stopped) return Promise.resolve();
    const inFlight = running.get(site);
    if (inFlight) {
      dirty.add(site);
      return inFlight;
    }
    const run = plan(site)
      .catch((err: Error) => log.error({ site, err: err.message }, 'planning failed'))
      .finally(() => {
        running.delete(site);
        if (dirty.delete(site) && !stopped) void schedule(site);
      });
    running.set(site, run);
    return run;
  }

  async function tick(): Promise<void> {
    if (stopped) return;
    try {
      const sites = new Set<string>();
      let pageToken = '';
      for (let page = 0; page < 100; page++) {
        const result = await deps.registry.listDevices({ type: 'bess', active: true }, 1_000, pageToken);
        result.devices.forEach((d) => sites.add(d.site));
        pageToken = result.nextPageToken;
        if (pageToken === '') break;
      }
      await Promise.all([...sites].map(schedule));
    } catch (err) {
      log.error({ err: (err as Error).message }, 'control period failed');
    }
  }

  /**
   * The writers' lease. A battery no plan has covered for three periods (database down,
   * battery deactivated or moved, planning failing) loses its writer: heartbeats stop and
   * the battery falls back on its own reversion timeout. This runs on its own timer and
   * touches no database, so it works when nothing else does.
   */
  function expireLeases(): void {
    const limit = performance.now() - 3 * options.controlPeriodMs;
    for (const [deviceId, runtime] of batteries) {
      if (runtime.plannedAt >= limit) continue;
      log.warn({ deviceId, site: runtime.site }, 'battery not planned for three periods: writer stopped, the battery falls back on its own');
      batteries.delete(deviceId);
      void runtime.writer.stop();
    }
  }

  let ticking: Promise<void> = tick();
  const periodic = setInterval(() => {
    expireLeases();
    ticking = ticking.then(tick);
  }, options.controlPeriodMs);

  return {
    poke: (site) => void schedule(site),
    async stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(periodic);
      for (const timer of boundaries.values()) clearTimeout(timer);
      // Writers first: planning in flight may hang on a database that is gone (that is often
      // why we stop), and a writer left running would keep heartbeating a battery another
      // replica now drives. Planning that finishes later hands nothing on (`stopped`).
      await Promise.all([...batteries.values()].map((b) => b.writer.stop()));
      // Bounded: a query hung on a silent database must not keep leadership from moving on.
      // The last setpoint events are flushed under the same bound: if the database does not
      // answer in time they are not recorded (the writers' own logs still show the writes).
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.allSettled([ticking, ...running.values()]).then(() => recorder.stop()),
        new Promise((resolve) => (timer = setTimeout(resolve, STOP_PLANNING_WAIT_MS))),
      ]);
      clearTimeout(timer);
    },
  };
}

function profileOf(device: Device): RegisterProfile {
  const modbus = device.bess!.modbus;
  switch (modbus.registerProfile) {
    case 'sunspec':
      return { kind: 'sunspec' };
    case 'tesla-powerpack':
      return { kind: 'tesla-powerpack' };
    case 'custom':
      return { kind: 'custom', map: parseRegisterMap(modbus.registerMap) };
    default: {
      const unknown: never = modbus.registerProfile;
      throw new Error(`unknown register profile ${String(unknown)}`);
    }
  }
}
