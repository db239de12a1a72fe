import type { Kysely } from 'kysely';
import type { ChangeNotices } from '../cluster/change-notices.ts';
import type { ChangeReason } from '../cluster/cluster.types.ts';
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from '../errors.ts';
import { decodePageToken, encodePageToken, pageSize, takePage, type PageBudget } from '../page-token.ts';
import type { Device } from '../registry/registered-device.ts';
import { requireUuid } from '../uuid.ts';
import type { Registry } from '../registry/registry.ts';
import { findIdempotentResponse, storeIdempotently, type ResponseCodec } from '../storage/idempotency.ts';
import { withinSites, type SiteScope } from '../storage/site-scope.ts';
import * as repo from './dispatch.repository.ts';
import type { DispatchTables } from './dispatch.table.ts';
import { validateSubmit, type Instruction, type SubmitInput } from './instruction.ts';

/** Longest manual override an operator may set. */
export const MAX_OVERRIDE_MS = 7 * 24 * 3_600_000;

/** An operator's control-mode request. */
export type ControlModeRequest =
  | { readonly deviceId: string; readonly mode: 'AUTOMATIC'; readonly reason: string }
  | { readonly deviceId: string; readonly mode: 'MANUAL'; readonly powerKw: number; readonly expireTime?: Date; readonly reason: string };

/** Who a change is made for. */
export interface Caller {
  /** Recorded with what the call stores and changes, e.g. `token:<id>`. */
  readonly principal: string;
  /** Owns the call's request id: a retry is matched only among this owner's (its stable identity). */
  readonly owner: string;
  /**
   * The sites the caller may see: a battery or instruction outside them is answered as
   * one that does not exist (NOT_FOUND with the same message, after the same queries).
   */
  readonly sites: SiteScope;
}

/**
 * Dispatch instructions and operator overrides: validation, storage and audit. Every id a
 * caller passes is judged within `caller.sites` / `sites` (see `storage/site-scope.ts`).
 */
export interface Dispatch {
  /** `beforeWrite` is awaited after the reads and checks, right before anything is stored (the audit record, see `auditRecorded`). */
  submit(
    input: SubmitInput,
    caller: Caller,
    codec: ResponseCodec<Instruction[]>,
    beforeWrite?: () => Promise<void>,
  ): Promise<Instruction[]>;
  cancel(id: string, reason: string, caller: Caller): Promise<Instruction>;
  get(id: string, sites: SiteScope): Promise<Instruction>;
  /** One page, newest first; with `budget`, a page also ends before the row that would pass its bytes. */
  list(
    filter: repo.InstructionFilter,
    requestedPageSize: number,
    pageToken: string,
    sites: SiteScope,
    budget?: PageBudget<Instruction>,
  ): Promise<{ instructions: Instruction[]; nextPageToken: string }>;
  setControlMode(request: ControlModeRequest, caller: Caller): Promise<Device>;
  /** All active batteries of a site, ordered by id. */
  siteBatteries(site: string): Promise<Device[]>;
}

/** Dependencies of {@link createDispatch}. */
export interface DispatchDeps {
  readonly db: Kysely<object>;
  readonly registry: Registry;
  /**
   * Called after anything that changes what a site's batteries should do, to replan now:
   * `instruction` after a submit or cancel, `override` after a control-mode change.
   */
  readonly onChange: (site: string, reason: Extract<ChangeReason, 'instruction' | 'override'>) => void;
  /**
   * A submit's two steps, when given (in place of `onChange` for it): `submitting` once the
   * site it acts on is known, before its checks and writes (the site's owner may read
   * what planning needs meanwhile), returning a mark; `submitted` with the instructions
   * this call stored and that mark. A submit answered with another call's stored
   * response (a retry, or a concurrent call with the same request id) calls `onChange`
   * instead: what that call stored may have changed since.
   */
  readonly onSubmit?: {
    readonly submitting: (site: string) => number;
    readonly submitted: (site: string, instructions: readonly Instruction[], since: number) => void;
  };
  /** Tells every replica of those changes, in the statement that makes each; without it, no one is told. */
  readonly notices?: ChangeNotices;
  /** How far ahead of now an instruction may end, ms; default 7 days (`DEFAULT_MAX_INSTRUCTION_AHEAD_MS`). */
  readonly maxInstructionAheadMs?: number;
  readonly now?: () => Date;
}

/** Creates the dispatch domain. */
export function createDispatch(deps: DispatchDeps): Dispatch {
  const db = deps.db.withTables<DispatchTables>();
  const now = deps.now ?? (() => new Date());

  async function siteBatteries(site: string): Promise<Device[]> {
    const batteries: Device[] = [];
    let pageToken = '';
    for (let page = 0; page < 100; page++) {
      const result = await deps.registry.listDevices({ site, type: 'bess', active: true }, 1_000, pageToken);
      batteries.push(...result.devices);
      pageToken = result.nextPageToken;
      if (pageToken === '') break;
    }
    return batteries.sort((a, b) => (a.id < b.id ? -1 : 1));
  }

  async function activeBattery(id: string, field: string, sites: SiteScope): Promise<Device> {
    const device = await deps.registry.getDevice(requireUuid(field, id), sites).catch((err: unknown) => {
      if (err instanceof NotFoundError) throw new NotFoundError('battery', id, field, { outsideSites: err.outsideSites });
      throw err;
    });
    if (device.type !== 'bess' || !device.bess) throw new InvalidArgumentError(field, id, 'is not a battery');
    if (!device.active) throw new InvalidArgumentError(field, id, 'is an inactive battery');
    return device;
  }

  /** The instruction and the site it acts on; one query whether or not that site is within `sites`. */
  async function mustFind(id: string, sites: SiteScope): Promise<{ instruction: Instruction; site: string | null }> {
    const found = await repo.findInstructionWithSite(db, requireUuid('id', id));
    if (!found) throw new NotFoundError('dispatch instruction', id);
    if (!withinSites(sites, found.site)) throw new NotFoundError('dispatch instruction', id, 'id', { outsideSites: true });
    return found;
  }

  return {
    siteBatteries,

    async submit(input, caller, codec, beforeWrite) {
      if (input.requestId.trim() === '') throw new InvalidArgumentError('request_id', input.requestId, 'is required');
      const target = 'deviceId' in input.target ? { deviceId: requireUuid('device_id', input.target.deviceId) } : input.target;
      input = { ...input, target };
      const payload = {
        ...input,
        intervals: input.intervals.map((i) => ({ ...i, startTime: i.startTime?.toISOString(), endTime: i.endTime?.toISOString() })),
      };
      const key = { principal: caller.owner, method: 'SubmitDispatch', requestId: input.requestId, payload };
      if ('site' in target && target.site.trim() === '') throw new InvalidArgumentError('site', target.site, 'is required (or device_id)');
      // The retry lookup and the target's rating are read together (one round trip); a
      // retry is answered from its stored response before the target is judged, so a
      // retried call gets its first answer even after the window has passed. A site's
      // rating is summed in the database: one row, however many batteries it has.
      // A site target's owner reads its latest readings while this call checks and stores.
      let since = 'site' in target ? deps.onSubmit?.submitting(target.site) : undefined;
      const [answered, found] = await Promise.allSettled([
        findIdempotentResponse(db, key, codec),
        // A site target was checked against the caller's binding before this call.
        'site' in target
          ? deps.registry.siteRating(target.site).then((rating) => ({ site: target.site, rating }))
          : activeBattery(target.deviceId, 'device_id', caller.sites).then((b) => ({ site: b.site, rating: { ...b.bess!, batteries: 1 } })),
      ]);
      if (answered.status === 'rejected') throw answered.reason;
      if (answered.value) return answered.value;
      if (found.status === 'rejected') throw found.reason;
      const { site, rating } = found.value;
      if ('deviceId' in target) since = deps.onSubmit?.submitting(site);
      if (rating.batteries === 0) throw new NotFoundError('site with active batteries', site, 'site');
      validateSubmit(input, [rating], now(), deps.maxInstructionAheadMs);
      const fresh = repo.newInstructions(input, caller.principal, now());
      await beforeWrite?.();
      const notice = deps.notices?.change(site, 'instruction');
      const instructions = await storeIdempotently(db, key, codec, fresh, (row) => repo.insertInstructions(db, fresh, row, notice));
      // Only what this call stored is known as stored; another call's response is read again.
      if (deps.onSubmit && since !== undefined && instructions === fresh) deps.onSubmit.submitted(site, instructions, since);
      else deps.onChange(site, 'instruction');
      return instructions;
    },

    async cancel(id, reason, caller) {
      const { instruction, site } = await mustFind(id, caller.sites);
      if (instruction.cancelledAt) return instruction;
      if (instruction.endTime <= now()) {
        throw new FailedPreconditionError(`id ${id} names an instruction that already completed at ${instruction.endTime.toISOString()}`);
      }
      const cancelled = await repo.cancelInstruction(
        db,
        instruction.id,
        reason || `cancelled by ${caller.principal}`,
        now(),
        caller.principal,
        site !== null ? deps.notices?.change(site, 'instruction') : undefined,
      );
      // A battery gone from the registry has no site left to replan.
      if (site !== null) deps.onChange(site, 'instruction');
      return cancelled!;
    },

    get: async (id, sites) => (await mustFind(id, sites)).instruction,

    async list(filter, requestedPageSize, pageToken, sites, budget) {
      if (filter.deviceId !== undefined) requireUuid('device_id', filter.deviceId);
      const limit = pageSize(requestedPageSize, 100, 1_000);
      const tokenFilter = { ...filter, start: filter.start?.getTime(), end: filter.end?.getTime() };
      const after = decodePageToken<[number, string]>(pageToken, tokenFilter, ['millis', 'uuid']);
      const { page, more } = takePage(await repo.listInstructions(db, filter, sites, now(), limit + 1, after), limit, budget);
      const last = page.at(-1);
      return { instructions: page, nextPageToken: more && last ? encodePageToken([last.createdAt.getTime(), last.id], tokenFilter) : '' };
    },

    async setControlMode(request, caller) {
      const principal = caller.principal;
      const battery = await activeBattery(request.deviceId, 'device_id', caller.sites);
      const notice = deps.notices?.change(battery.site, 'override');
      if (request.mode === 'MANUAL') {
        const spec = battery.bess!;
        if (!Number.isFinite(request.powerKw))
          throw new InvalidArgumentError('manual_power_kw', request.powerKw, 'must be a finite number');
        if (request.powerKw > spec.ratedDischargePowerKw || -request.powerKw > spec.ratedChargePowerKw) {
          throw new InvalidArgumentError(
            'manual_power_kw',
            request.powerKw,
            `must be within the battery's rating (-${spec.ratedChargePowerKw} to ${spec.ratedDischargePowerKw} kW)`,
          );
        }
        if (!request.expireTime) throw new InvalidArgumentError('expire_time', undefined, 'is required for MANUAL');
        const ahead = request.expireTime.getTime() - now().getTime();
        if (ahead <= 0) throw new InvalidArgumentError('expire_time', request.expireTime.toISOString(), 'must be in the future');
        if (ahead > MAX_OVERRIDE_MS)
          throw new InvalidArgumentError('expire_time', request.expireTime.toISOString(), 'must be at most 7 days ahead');
        if (request.reason.trim() === '') throw new InvalidArgumentError('reason', request.reason, 'is required for MANUAL');
        await repo.upsertOverride(
          db,
          {
            deviceId: battery.id,
            powerKw: request.powerKw,
            expireTime: request.expireTime,
            reason: request.reason,
            principal,
          },
          notice,
        );
      } else {
        await repo.releaseOverride(db, battery.id, principal, now(), notice);
      }
      deps.onChange(battery.site, 'override');
      return battery;
    },
  };
}
