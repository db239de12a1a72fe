import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { timestampDate, timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { HandlerContext, ServiceImpl } from '@connectrpc/connect';
import {
  BatteryControlStateSchema,
  ControlMode,
  DispatchAction as PbAction,
  DispatchInstructionSchema,
  DispatchService,
  DispatchState as PbState,
  MarketDataPointSchema,
  SetpointPhase,
  SubmitDispatchResponseSchema,
  type DispatchInstruction,
  type SetpointEvent,
} from '../../gen/powerplane/v1/dispatch_pb.ts';
import { CommandSource as PbSource } from '../../gen/powerplane/v1/telemetry_pb.ts';
import { auditRecorded } from '../rpc/audit-recorded.ts';
import { principalOf, stableIdentity, type PrincipalNames } from '../rpc/principal.ts';
import type { SiteAccess } from '../rpc/site-access.ts';
import { InvalidArgumentError } from '../errors.ts';
import { DEFAULT_PAGE_BYTES } from '../page-token.ts';
import { responseSizer } from '../response-size.ts';
import { requireUuid } from '../uuid.ts';
import { withinSites } from '../storage/site-scope.ts';
import { optionalDate, requireDate } from '../timestamp.ts';
import { COMMAND_SOURCE_CODES } from './command-source.ts';
import type { ControlState } from './control-state.ts';
import type { Caller, Dispatch } from './dispatch.ts';
import { DISPATCH_ACTIONS, instructionState, type DispatchState, type Instruction } from './instruction.ts';
import type { MarketData, MarketPoint } from './market-data.ts';
import type { SetpointBus, SetpointPhaseName, SetpointRecord } from './setpoint-events.ts';
import type { SiteConfig, SiteConfigs } from './site-settings.ts';

/** What the dispatch RPCs call. */
export interface DispatchServiceDeps {
  readonly dispatch: Dispatch;
  readonly marketData: MarketData;
  readonly controlState: ControlState;
  readonly bus: SetpointBus;
  readonly siteConfigs: SiteConfigs;
  readonly access: SiteAccess;
  readonly now?: () => Date;
  /** Most bytes of rows on one ListDispatches or ListMarketData page; default `DEFAULT_PAGE_BYTES` (1 MiB). */
  readonly pageBytes?: number;
  /** The names of the principals who submitted instructions (`principal_name`); without it, their ids. */
  readonly principalNames?: PrincipalNames;
}

/** The DispatchService RPCs: decode and check, call the domain, encode. */
export function createDispatchService(deps: DispatchServiceDeps): ServiceImpl<typeof DispatchService> {
  const now = deps.now ?? (() => new Date());
  const { access } = deps;
  const callerOf = (ctx: HandlerContext): Caller => {
    const principal = principalOf(ctx);
    return { principal: principal.id, owner: stableIdentity(principal), sites: access.scope(ctx) };
  };
  const toPb = (i: Instruction, names?: ReadonlyMap<string, string>) => toPbInstruction(i, now(), names?.get(i.principal));
  /** The instructions as the API answers them, their submitters' names looked up together. */
  const answered = async (list: readonly Instruction[]) => {
    const names = deps.principalNames ? await deps.principalNames(list.map((i) => i.principal)) : undefined;
    return list.map((i) => toPb(i, names));
  };
  const pageBytes = deps.pageBytes ?? DEFAULT_PAGE_BYTES;
  const codec = {
    encode: (list: Instruction[]) =>
      toBinary(SubmitDispatchResponseSchema, create(SubmitDispatchResponseSchema, { instructions: list.map((i) => toPb(i)) })),
    decode: (bytes: Uint8Array) => fromBinary(SubmitDispatchResponseSchema, bytes).instructions.map(fromPbInstruction),
  };
  return {
    async publishMarketData(req) {
      const points = req.points.map((p, i) => ({
        time: requireDate(`points[${i}].time`, p.time),
        type: p.type,
        value: p.value,
        ...(p.metadata ? { metadata: p.metadata as never } : {}),
      }));
      const result = await deps.marketData.publish(points);
      return { storedCount: result.stored, unchangedCount: result.unchanged, revisedCount: result.revised };
    },

    async listMarketData(req, ctx) {
      const filter = { types: req.types, start: requireDate('start_time', req.startTime), end: requireDate('end_time', req.endTime) };
      const toPbPoint = (p: MarketPoint) => ({
        time: timestampFromDate(p.time),
        type: p.type,
        value: p.value,
        ...(p.metadata ? { metadata: p.metadata } : {}),
      });
      const size = responseSizer(ctx, MarketDataPointSchema);
      const page = await deps.marketData.list(filter, req.pageSize, req.pageToken, { bytes: pageBytes, sizeOf: (p) => size(toPbPoint(p)) });
      return { points: page.points.map(toPbPoint), nextPageToken: page.nextPageToken };
    },

    async submitDispatch(req, ctx) {
      if (req.target.case === undefined) throw new InvalidArgumentError('target', undefined, 'is required (site or device_id)');
      if (req.target.case === 'site') access.site(ctx, req.target.value, 'site');
      const target = req.target.case === 'site' ? { site: req.target.value } : { deviceId: req.target.value };
      const intervals = req.intervals.map((interval, i) => ({
        ...(interval.startTime ? { startTime: optionalDate(`intervals[${i}].start_time`, interval.startTime) } : {}),
        ...(interval.endTime ? { endTime: optionalDate(`intervals[${i}].end_time`, interval.endTime) } : {}),
        ...commandFromPb(interval.command, `intervals[${i}]`),
      }));
      const instructions = await deps.dispatch.submit(
        { requestId: req.requestId, target, intervals, priority: req.priority },
        callerOf(ctx),
        codec,
        () => auditRecorded(ctx),
      );
      return { instructions: await answered(instructions) };
    },

    async cancelDispatch(req, ctx) {
      const [instruction] = await answered([await deps.dispatch.cancel(req.id, req.reason, callerOf(ctx))]);
      return { instruction };
    },

    async getDispatch(req, ctx) {
      const [instruction] = await answered([await deps.dispatch.get(req.id, access.scope(ctx))]);
      return { instruction };
    },

    async listDispatches(req, ctx) {
      const site = req.deviceId && !req.site ? undefined : access.listSite(ctx, req.site, 'site');
      const state = req.state === PbState.UNSPECIFIED ? undefined : (PbState[req.state] as DispatchState | undefined);
      if (req.state !== PbState.UNSPECIFIED && !state) throw new InvalidArgumentError('state', req.state, 'is not a known dispatch state');
      const filter = {
        ...(site ? { site } : {}),
        ...(req.deviceId ? { deviceId: req.deviceId } : {}),
        ...(state ? { state } : {}),
        ...(req.startTime ? { start: optionalDate('start_time', req.startTime) } : {}),
        ...(req.endTime ? { end: optionalDate('end_time', req.endTime) } : {}),
      };
      const size = responseSizer(ctx, DispatchInstructionSchema);
      const page = await deps.dispatch.list(filter, req.pageSize, req.pageToken, access.scope(ctx), {
        bytes: pageBytes,
        // Sized with the id in place of the name: a name is at most 200 characters longer.
        sizeOf: (i) => size(toPb(i)) + NAME_BYTES,
      });
      return { instructions: await answered(page.instructions), nextPageToken: page.nextPageToken };
    },

    async setControlMode(req, ctx) {
      const deviceId = requireUuid('device_id', req.deviceId);
      const caller = callerOf(ctx);
      switch (req.mode) {
        case ControlMode.MANUAL:
          await deps.dispatch.setControlMode(
            {
              deviceId,
              mode: 'MANUAL',
              powerKw: req.manualPowerKw,
              ...(req.expireTime ? { expireTime: optionalDate('expire_time', req.expireTime) } : {}),
              reason: req.reason,
            },
            caller,
          );
          break;
        case ControlMode.AUTOMATIC:
          await deps.dispatch.setControlMode({ deviceId, mode: 'AUTOMATIC', reason: req.reason }, caller);
          break;
        case ControlMode.UNSPECIFIED:
          throw new InvalidArgumentError('mode', 'CONTROL_MODE_UNSPECIFIED', 'must be CONTROL_MODE_AUTOMATIC or CONTROL_MODE_MANUAL');
        default:
          throw new InvalidArgumentError('mode', req.mode, 'is not a known control mode');
      }
      const [state] = await deps.controlState.get({ deviceIds: [deviceId] }, caller.sites);
      return { state: state ? toPbState(state) : undefined };
    },

    async *watchSetpoints(req, context) {
      const deviceId = req.deviceId ? requireUuid('device_id', req.deviceId) : undefined;
      const site = deviceId && !req.site ? undefined : access.listSite(context, req.site, 'site');
      // Events carry their battery's site: a battery outside the caller's sites streams
      // nothing, as an unknown one does (no lookup for either).
      const sites = access.scope(context);
      const phases = new Set(
        req.phases.map((p, i) => {
          const name = SetpointPhase[p] as SetpointPhaseName | undefined;
          if (p === SetpointPhase.UNSPECIFIED || name === undefined)
            throw new InvalidArgumentError(`phases[${i}]`, p, 'must be a known setpoint phase');
          return name;
        }),
      );
      const filter = (r: SetpointRecord) =>
        (!deviceId || r.deviceId === deviceId) &&
        (!site || r.site === site) &&
        withinSites(sites, r.site) &&
        (phases.size === 0 || phases.has(r.phase));
      for await (const batch of deps.bus.subscribe(filter, context.signal)) yield { events: batch.map(toPbEvent) };
    },

    async getControlState(req, ctx) {
      if (req.site) access.site(ctx, req.site, 'site');
      const selector = req.deviceIds.length
        ? { deviceIds: req.deviceIds.map((id, i) => requireUuid(`device_ids[${i}]`, id)) }
        : req.site
          ? { site: req.site }
          : undefined;
      if (!selector) throw new InvalidArgumentError('site', '', 'is required (or device_ids)');
      if (req.deviceIds.length > 1000) throw new InvalidArgumentError('device_ids', req.deviceIds.length, 'must hold at most 1000 ids');
      const states = await deps.controlState.get(selector, access.scope(ctx));
      return { states: states.map(toPbState) };
    },

    async setSiteConfig(req, ctx) {
      const pb = req.config;
      if (!pb) throw new InvalidArgumentError('config', undefined, 'is required');
      access.site(ctx, pb.site, 'config.site');
      const config: SiteConfig = {
        site: pb.site,
        ...(pb.importLimitKw !== undefined ? { importLimitKw: pb.importLimitKw } : {}),
        ...(pb.exportLimitKw !== undefined ? { exportLimitKw: pb.exportLimitKw } : {}),
        ...(pb.nivChase
          ? {
              nivChase: {
                enabled: pb.nivChase.enabled,
                nivThresholdMw: pb.nivChase.nivThresholdMw,
                shortPriceThreshold: pb.nivChase.shortPriceThreshold,
                longPriceThreshold: pb.nivChase.longPriceThreshold,
                ...(pb.nivChase.shortTargetSoePercent !== undefined ? { shortTargetSoePercent: pb.nivChase.shortTargetSoePercent } : {}),
                ...(pb.nivChase.longTargetSoePercent !== undefined ? { longTargetSoePercent: pb.nivChase.longTargetSoePercent } : {}),
              },
            }
          : {}),
        ...(pb.soeTarget
          ? { soeTarget: { enabled: pb.soeTarget.enabled, soePercent: pb.soeTarget.soePercent, maxPowerKw: pb.soeTarget.maxPowerKw } }
          : {}),
        avoidImport: pb.avoidImport,
        avoidExport: pb.avoidExport,
      };
      return { config: await deps.siteConfigs.set(config, principalOf(ctx).id) };
    },

    async getSiteConfig(req, ctx) {
      access.site(ctx, req.site, 'site');
      return { config: await deps.siteConfigs.get(req.site) };
    },
  };
}

function commandFromPb(
  command: DispatchInstruction['interval'] extends infer I ? (I extends { command: infer C } ? C : never) : never,
  field: string,
) {
  switch (command.case) {
    case 'powerKw':
      return { command: { powerKw: command.value } };
    case 'action': {
      const name = PbAction[command.value] as (typeof DISPATCH_ACTIONS)[number] | undefined;
      if (command.value === PbAction.UNSPECIFIED || !name || !DISPATCH_ACTIONS.includes(name)) {
        throw new InvalidArgumentError(
          `${field}.action`,
          PbAction[command.value] ?? command.value,
          `must be one of ${DISPATCH_ACTIONS.join(' | ')}`,
        );
      }
      return { command: { action: name } };
    }
    case undefined:
      return {};
    default: {
      const unknown: never = command;
      return unknown;
    }
  }
}

/** Bytes a principal's name may add to an instruction: a token name of up to 200 characters, in UTF-8 and escaped in JSON. */
const NAME_BYTES = 1_200;

function toPbInstruction(i: Instruction, now: Date, principalName = i.principal): DispatchInstruction {
  return create(DispatchInstructionSchema, {
    id: i.id,
    requestId: i.requestId,
    target: 'site' in i.target ? { case: 'site', value: i.target.site } : { case: 'deviceId', value: i.target.deviceId },
    interval: {
      startTime: timestampFromDate(i.startTime),
      endTime: timestampFromDate(i.endTime),
      command:
        'powerKw' in i.command ? { case: 'powerKw', value: i.command.powerKw } : { case: 'action', value: PbAction[i.command.action] },
    },
    priority: i.priority,
    state: PbState[instructionState(i, now)],
    principal: i.principal,
    principalName,
    createTime: timestampFromDate(i.createdAt),
    ...(i.cancelledAt ? { cancelTime: timestampFromDate(i.cancelledAt) } : {}),
    cancelReason: i.cancelReason ?? '',
  });
}

function fromPbInstruction(pb: DispatchInstruction): Instruction {
  const command = pb.interval?.command;
  return {
    id: pb.id,
    requestId: pb.requestId,
    target: pb.target.case === 'site' ? { site: pb.target.value } : { deviceId: pb.target.value ?? '' },
    startTime: timestampDate(pb.interval!.startTime!),
    endTime: timestampDate(pb.interval!.endTime!),
    command: command?.case === 'powerKw' ? { powerKw: command.value } : { action: PbAction[command?.value ?? 0] as never },
    priority: pb.priority,
    principal: pb.principal,
    createdAt: timestampDate(pb.createTime!),
    ...(pb.cancelTime ? { cancelledAt: timestampDate(pb.cancelTime) } : {}),
    ...(pb.cancelReason ? { cancelReason: pb.cancelReason } : {}),
  };
}

/**
 * A setpoint record as the API's SetpointEvent, built as a literal rather than through
 * `create`: a burst is thousands of events, and `create` walks the schema for each of them
 * and its two timestamps. Every field is given, as `create` would fill it.
 */
function toPbEvent(r: SetpointRecord): SetpointEvent {
  const atMs = r.at.getTime();
  const seconds = Math.floor(atMs / 1000);
  const elapsedMs = Math.round(r.elapsedMs);
  const elapsedSeconds = Math.trunc(elapsedMs / 1000);
  return {
    $typeName: 'powerplane.v1.SetpointEvent',
    setpointId: r.setpointId,
    deviceId: r.deviceId,
    site: r.site,
    phase: SetpointPhase[r.phase],
    targetPowerKw: r.targetPowerKw,
    commandSource: COMMAND_SOURCE_CODES[r.source] as PbSource,
    instructionId: r.instructionId ?? '',
    time: { $typeName: 'google.protobuf.Timestamp', seconds: BigInt(seconds), nanos: (atMs - seconds * 1000) * 1_000_000 },
    // As durationFromMs: the nanos take the sign of the whole, and are never -0.
    elapsed: {
      $typeName: 'google.protobuf.Duration',
      seconds: BigInt(elapsedSeconds),
      nanos: (elapsedMs - elapsedSeconds * 1000) * 1_000_000 || 0,
    },
    reason: r.reason ?? '',
  };
}

/** A battery's control state as the API carries it (GetControlState, and GetFleetSummary's battery rows). */
export function toPbState(s: Awaited<ReturnType<ControlState['get']>>[number]) {
  return create(BatteryControlStateSchema, {
    deviceId: s.deviceId,
    site: s.site,
    intendedSource: (s.intendedSource ? COMMAND_SOURCE_CODES[s.intendedSource] : PbSource.UNSPECIFIED) as PbSource,
    reportedSource: (s.reportedSource ?? PbSource.UNSPECIFIED) as PbSource,
    sourceMismatch: s.sourceMismatch,
    targetPowerKw: s.targetPowerKw,
    activeInstructionId: s.activeInstructionId ?? '',
    reason: s.reason,
    ...(s.manualExpireTime ? { manualExpireTime: timestampFromDate(s.manualExpireTime) } : {}),
    ...(s.lastTelemetryTime ? { lastTelemetryTime: timestampFromDate(s.lastTelemetryTime) } : {}),
    ...(s.lastEvent ? { lastEvent: toPbEvent(s.lastEvent) } : {}),
    ownerReplica: s.ownerReplica ?? '',
    epoch: BigInt(s.epoch),
  });
}
