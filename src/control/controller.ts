/**
 * The control loop: each period, for each site, read → plan → record source changes →
 * apply → schedule. Its parts each hold one job: `scheduler.ts` (when a site is planned),
 * `plan-input.ts` (the planner's input from the period's reads), `planner.ts` (the pure
 * plan), `source-changes.ts` (what the plan means for each battery's command source) and
 * `battery-runtimes.ts` (the writers, their leases and each setpoint's steps).
 */
import type { Kysely } from 'kysely';
import type { ChangeReason, Fence, LeaseListener } from '../cluster/cluster.types.ts';
import type { Registry as MetricsRegistry } from 'prom-client';
import type { Logger } from '../logger.ts';
import { registerProfileFor } from '../modbus/register-profile.ts';
import { createSetpointWriter } from '../modbus/setpoint-writer.ts';
import { createBatteryRuntimes, type WriterFactory } from './battery-runtimes.ts';
import { SYSTEM_CLOCK, type Clock } from '../clock.ts';
import { createPlanReport } from './controller-report.ts';
import * as repo from '../dispatch/dispatch.repository.ts';
import type { DispatchTables } from '../dispatch/dispatch.table.ts';
import type { Instruction } from '../dispatch/instruction.ts';
import type { MarketData } from '../dispatch/market-data.ts';
import { MAX_MARKET_SIGNAL_AGE_MS, marketSignalTypes, planInput } from './plan-input.ts';
import { planSite } from '../planner/planner.ts';
import { startScheduler } from './scheduler.ts';
import type { SetpointBus } from '../dispatch/setpoint-events.ts';
import { handOver } from './hand-over.ts';
import { createEventRecorder } from './setpoint-bus.ts';
import { createSiteStates } from './site-state.ts';
import { findSitesWithBatteries } from './site-state.repository.ts';
import { createFenceRefusals } from '../cluster/fence-refusals.ts';
import type { SiteConfigs } from '../dispatch/site-settings.ts';
import { intendedSources, sourceChanges, sourceMismatches } from './source-changes.ts';

export type { WriterFactory };

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
  /**
   * A site's state held in memory (registry rows, settings, overrides, instructions, stored
   * sources) is read whole again once in this many periods, whatever changes were
   * announced. Default 15.
   */
  readonly stateRefreshPeriods: number;
}

/** Defaults of {@link ControllerOptions}. */
export const CONTROLLER_DEFAULTS: ControllerOptions = Object.freeze({
  controlPeriodMs: 4_000,
  maxTelemetryAgeMs: 30_000,
  heartbeatIntervalMs: 1_000,
  modbusTimeoutMs: 1_000,
  stateRefreshPeriods: 15,
});

/** The control loop: plans every site of its shards each period and drives one writer per battery. */
export interface Controller {
  /** Plans `site` as soon as possible if its shard is this replica's. */
  poke(site: string): void;
  /**
   * What `reason` names of `site` changed (an instruction submitted or cancelled, an override,
   * its settings, its devices): read again from the database, and the site planned at once
   * if its shard is this replica's.
   */
  refresh(site: string, reason: ChangeReason): void;
  /**
   * A submit for `site` has begun: if its shard is this replica's, the site's latest
   * readings are read meanwhile, for the planning that follows the submit to use. Returns
   * the mark to hand to {@link submitted}.
   */
  submitting(site: string): number;
  /**
   * Instructions for `site` stored on this replica by the submit that took `since`: kept in
   * memory as stored (no read back, unless the site's instructions changed since), and the
   * site planned at once if its shard is this replica's. Other replicas learn of them by
   * the notice stored with them.
   */
  submitted(site: string, instructions: readonly Instruction[], since: number): void;
  /** Plans at once every site of this replica's shards whose settings follow market signals (market data was published). */
  marketChanged(): void;
  /** Reads every site whole again and plans at once every site of this replica's shards (changes may have been missed). */
  pokeOwned(): void;
  /** What the lease manager tells the controller: a shard to drive, or to stop driving at once. */
  readonly leases: LeaseListener;
  /** Stops the loop and every writer; batteries then revert on their own timeout. */
  stop(): Promise<void>;
}

/** Dependencies of {@link startController}. */
export interface ControllerDeps {
  readonly db: Kysely<object>;
  /**
   * The lease a site's batteries may be written under now, undefined when its shard is not
   * this replica's (or not yet, or no longer, writable). Asked at the start of each planning
   * and again right before its setpoints go to the writers.
   */
  readonly fenceOf: (site: string) => Fence | undefined;
  /** The shard of a site. */
  readonly shardOf: (site: string) => number;
  /** This replica's id: with it, each batch of setpoint events is announced to the other replicas' watchers. */
  readonly replicaId?: string;
  readonly bus: SetpointBus;
  readonly siteConfigs: SiteConfigs;
  readonly marketData: MarketData;
  readonly log: Logger;
  readonly options?: Partial<ControllerOptions>;
  readonly writerFactory?: WriterFactory;
  /**
   * Makes the writer of a battery flagged `relay` (setpoints through the site's agent); without it
   * such a battery gets a Modbus writer too.
   */
  readonly relayWriterFactory?: WriterFactory;
  /** Wall time of each period and setpoint record; default the system's. */
  readonly now?: () => Date;
  /** Monotonic time and timers of periods, leases, boundaries and the stop; default {@link SYSTEM_CLOCK}. */
  readonly clock?: Clock;
  /** Where the controller's gauges are registered (the server's /metrics). */
  readonly metricsRegistry?: MetricsRegistry;
}

/** Writers' lease, in control periods: a battery no plan covered for this long loses its writer. */
const LEASE_PERIODS = 3;

/** How long a stop waits for planning in flight and the last events (after the writers have stopped). */
const STOP_PLANNING_WAIT_MS = 5_000;

/**
 * Starts the control loop. Every period (and at once after a poke or a refresh) it plans
 * each site with active batteries: reads the batteries' latest telemetry and the site
 * meters' power (the site's registry rows, settings, overrides and instructions are held in
 * memory, see `site-state.ts`), runs the pure planner, records changes of intended command
 * source (with who caused them), and hands each setpoint to the battery's writer. A battery
 * going back to local control is released (0 kW, setpoint disabled); a held battery (stale
 * telemetry) too. Every setpoint step is appended to `powerplane.setpoint_events` with its
 * instruction and principal, and published on the bus. What a site's plan cannot deliver
 * is exported as gauges and logged when it changes. A battery no plan has covered for
 * three periods (database down, battery deactivated or moved, planning failing) loses its
 * writer, on a timer that touches no database: heartbeats stop and it falls back on its own.
 */
export function startController(deps: ControllerDeps): Controller {
  const options = { ...CONTROLLER_DEFAULTS, ...deps.options };
  const db = deps.db.withTables<DispatchTables>();
  const now = deps.now ?? (() => new Date());
  const clock = deps.clock ?? SYSTEM_CLOCK;
  const log = deps.log;
  const report = createPlanReport(deps.metricsRegistry, log);
  // Refused controller writes (a lease lost meanwhile) are logged and counted, never thrown.
  const refusals = createFenceRefusals({ log, ...(deps.metricsRegistry ? { metricsRegistry: deps.metricsRegistry } : {}) });
  const recorder = createEventRecorder(
    (records, notifyFrom) => repo.insertSetpointEvents(db, records, { refusals, ...(notifyFrom ? { notifyFrom } : {}) }),
    log,
    clock,
    deps.replicaId ? { replicaId: deps.replicaId } : {},
  );
  const states = createSiteStates({ db: deps.db, siteConfigs: deps.siteConfigs, fullRefreshPeriods: options.stateRefreshPeriods });
  const runtimes = createBatteryRuntimes({
    makeWriter: writerFactoryOf(deps, options),
    onRecord: (record) => {
      deps.bus.publish(record);
      recorder.add(record);
    },
    leaseMs: LEASE_PERIODS * options.controlPeriodMs,
    clock,
    now,
    log,
    fenceHolds: (site, fence) => sameFence(deps.fenceOf(site), fence),
  });

  async function plan(site: string): Promise<void> {
    const fence = deps.fenceOf(site);
    if (!fence) return;
    const at = now();
    // The site's state is in memory; the period reads its devices' latest readings (and
    // whatever part of the state a change made stale), all in one round.
    const state = await states.read(site, at);
    const { instructions, meters, config } = state;
    for (const { device: d } of state.batteries) {
      if (!d.bess) log.warn({ deviceId: d.id, site }, 'battery has no bess specification in its metadata; not planned');
    }
    const batteries = state.batteries.filter((s) => s.device.bess);
    if (batteries.length === 0) return;
    const types = marketSignalTypes(config);
    const signals = types.length > 0 ? await deps.marketData.latestAt(types, at, MAX_MARKET_SIGNAL_AGE_MS) : undefined;
    const reads = { site, at, batteries, instructions, meters, config, ...(signals ? { signals } : {}), deliveredKw: runtimes.deliveredKw };
    const input = planInput(reads, options);
    const result = planSite(input);
    const intended = intendedSources(result.setpoints, batteries, instructions, at);
    const changes = sourceChanges(batteries, intended, at);
    report.mismatches(site, sourceMismatches(batteries, intended));
    report.plan(result);
    const byId = new Map(batteries.map((s) => [s.device.id, s.device]));
    const changeOf = new Map(changes.map((c) => [c.deviceId, c]));
    // Each battery's intended source is stored before its setpoint goes to its writer, so
    // the audit never lags the battery; a large site goes in chunks (`hand-over.ts`).
    const handedOver = await handOver(result.setpoints, changes, {
      // Under the lease, so a replica that lost the site changes neither the audit nor a battery.
      async record(chunk) {
        const applied = await repo.recordSourceChanges(db, chunk, fence, refusals);
        states.recorded(site, applied);
        return applied.length === chunk.length;
      },
      // The lease may have been lost while this planning read and recorded: checked again in
      // the same turn as each chunk's hand-over to the writers, which a loss stops synchronously.
      mayApply: () => sameFence(deps.fenceOf(site), fence),
      apply: (sp) => runtimes.apply(byId.get(sp.deviceId)!, sp, intended.get(sp.deviceId)!, changeOf.get(sp.deviceId), fence),
    });
    if (!handedOver) {
      log.warn({ site, shard: fence.shard, epoch: fence.epoch }, 'shard lost while planning: setpoints not applied');
      return;
    }
    // Replans the site at its next instruction start or end or override expiry, not a period late.
    const ids = [...byId.keys()];
    scheduler.boundary(site, state.nextBoundary(ids, at));
  }

  // Every site with active batteries as of the last period, whichever shard: a shard taken
  // over is planned at once from it, without waiting for the next period's read.
  let knownSites = new Set<string>();
  const scheduler = startScheduler({
    plan,
    sites: async () => {
      knownSites = await findSitesWithBatteries(deps.db);
      return [...knownSites].filter((site) => deps.fenceOf(site) !== undefined);
    },
    onPeriod: () => {
      runtimes.expireLeases();
      states.period();
    },
    periodMs: options.controlPeriodMs,
    clock,
    now,
    log,
  });

  let stopped = false;
  const mine = (site: string) => deps.fenceOf(site) !== undefined;
  return {
    poke: (site) => {
      if (mine(site)) void scheduler.schedule(site);
    },
    refresh(site, reason) {
      states.refresh(site, reason);
      if (mine(site)) void scheduler.schedule(site);
    },
    submitting(site) {
      const since = states.submitMark();
      if (mine(site)) states.readAhead(site, now());
      return since;
    },
    submitted(site, instructions, since) {
      states.submitted(site, instructions, since);
      if (mine(site)) void scheduler.schedule(site);
    },
    pokeOwned() {
      states.refreshAll();
      for (const site of knownSites) if (mine(site)) void scheduler.schedule(site);
    },
    marketChanged() {
      // Settings come from memory; a site whose settings are not there (yet, or stale) is
      // planned anyway, and its planning reads them.
      for (const site of knownSites) {
        if (!mine(site)) continue;
        const config = states.knownConfig(site);
        if (!config || marketSignalTypes(config).length > 0) void scheduler.schedule(site);
      }
    },
    leases: {
      acquired(shard, epoch) {
        const sites = [...knownSites].filter((site) => deps.shardOf(site) === shard);
        // The lease manager logs each claim as shard ranges; a line here only where sites are.
        if (sites.length > 0) log.info({ shard, epoch, sites: sites.length }, 'shard acquired: planning its sites');
        else log.debug({ shard, epoch }, 'shard acquired: no known site in it');
        // Another replica may have driven these sites meanwhile: their state is read afresh.
        states.forget((site) => deps.shardOf(site) === shard);
        for (const site of sites) void scheduler.schedule(site);
      },
      async lost(shard, epoch, why) {
        // The writers stop first, synchronously started; then the events they recorded are
        // flushed while the fence may still hold (a release), so the audit keeps them.
        const inShard = (site: string) => deps.shardOf(site) === shard;
        log.debug({ shard, epoch, why }, 'shard lost: its writers stop');
        states.forget(inShard);
        await runtimes.stopSites(inShard);
        await recorder.stop();
      },
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      scheduler.stop();
      // Writers first: planning in flight may hang on a database that is gone (that is often
      // why we stop), and a writer left running would keep heartbeating a battery another
      // replica now drives. Planning that finishes later hands nothing on.
      await runtimes.stopAll();
      // Bounded: a query hung on a silent database must not keep the stop (and the hand-over) waiting.
      // The last setpoint events are flushed under the same bound: if the database does not
      // answer in time they are not recorded (the writers' own logs still show the writes).
      let timer: unknown;
      await Promise.race([
        scheduler.idle().then(() => recorder.stop()),
        new Promise((resolve) => (timer = clock.setTimeout(() => resolve(undefined), STOP_PLANNING_WAIT_MS))),
      ]);
      clock.clearTimeout(timer);
    },
  };
}

/** Whether two fences are the same lease. */
function sameFence(a: Fence | undefined, b: Fence): boolean {
  return a !== undefined && a.replica === b.replica && a.shard === b.shard && a.epoch === b.epoch;
}

/** The writer of each battery: the relay factory for a relay battery when given, else a Modbus setpoint writer. */
function writerFactoryOf(deps: ControllerDeps, options: ControllerOptions): WriterFactory {
  const modbusWriter: WriterFactory =
    deps.writerFactory ??
    ((device, onEvent, mayWrite) =>
      createSetpointWriter({
        deviceKey: device.id,
        endpoint: { host: device.bess!.modbus.host, port: device.bess!.modbus.port, unitId: device.bess!.modbus.unitId },
        profile: registerProfileFor(device.bess!.modbus),
        reversionTimeoutS: device.bess!.reversionTimeoutS,
        heartbeatIntervalMs: options.heartbeatIntervalMs,
        requestTimeoutMs: options.modbusTimeoutMs,
        onEvent,
        log: deps.log.child({ module: 'writer' }),
        ...(mayWrite ? { mayWrite } : {}),
      }));
  const relayWriter = deps.relayWriterFactory;
  return (device, onEvent, mayWrite) => (device.bess!.modbus.relay && relayWriter ? relayWriter : modbusWriter)(device, onEvent, mayWrite);
}
