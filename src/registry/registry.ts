import { sql, type Kysely } from 'kysely';
import type { ChangeNotices } from '../cluster/change-notices.ts';
import { InvalidArgumentError, NotFoundError } from '../errors.ts';
import { decodePageToken, encodePageToken, pageSize, takePage, type PageBudget } from '../page-token.ts';
import { withIdempotency, type ResponseCodec } from '../storage/idempotency.ts';
import { EVERY_SITE, withinSites, type SiteScope } from '../storage/site-scope.ts';
import { validateDevice, type Device, type DeviceInput } from './registered-device.ts';
import { requireUuid } from '../uuid.ts';
import * as repo from './registry.repository.ts';
import { createBatchUpsert, type BatchUpsertOptions, type BatchUpsertResult } from './registry-batch.ts';

import type { RegistryTables } from './registry.table.ts';

/** The fields an update may name. `type` is immutable. */
export const UPDATABLE_FIELDS = ['name', 'site', 'metadata', 'bess', 'meter', 'active'] as const;
export type UpdatableField = (typeof UPDATABLE_FIELDS)[number];

/** A page of devices. */
export interface DevicePage {
  readonly devices: Device[];
  readonly nextPageToken: string;
}

/** The device registry: validation and storage of batteries and meters. */
export interface Registry {
  /**
   * Creates a device; with a request id, a retry by the same `owner` (the caller's stable
   * identity) returns the first call's device. Other owners' request ids are never seen.
   */
  createDevice(input: DeviceInput, requestId: string, owner: string, codec: ResponseCodec<Device>): Promise<Device>;
  /** The device `id` names; NOT_FOUND when it names none, or one outside `sites` (the same answer). */
  getDevice(id: string, sites: SiteScope): Promise<Device>;
  /**
   * The devices of `ids`, in their order, read in one query; NOT_FOUND as {@link getDevice}
   * naming `${field}[i]` for the first one missing or outside `sites`.
   */
  getDevices(ids: readonly string[], sites: SiteScope, field: string): Promise<Device[]>;
  /**
   * One page of devices in (site, name, id) order; with `budget`, a page also ends before
   * the row that would take it past the budget's bytes (a single larger row comes alone).
   */
  listDevices(filter: repo.DeviceFilter, requestedPageSize: number, pageToken: string, budget?: PageBudget<Device>): Promise<DevicePage>;
  /** Applies the fields named in `mask` from `patch` and validates the result whole. */
  updateDevice(id: string, patch: Omit<DeviceInput, 'type'> & { active: boolean }, mask: readonly string[]): Promise<Device>;
  /** Marks a device inactive; NOT_FOUND as {@link getDevice} for one outside `sites`. */
  deactivateDevice(id: string, sites: SiteScope): Promise<Device>;
  /**
   * Creates, updates or leaves alone each of `inputs` (1–10,000 devices), matched to the
   * registered devices by (site, name), all or nothing (`registry-batch.ts`).
   */
  batchUpsertDevices(inputs: readonly DeviceInput[], options: BatchUpsertOptions): Promise<BatchUpsertResult>;
  /** How many active batteries `site` has and their summed ratings: one row read, however many batteries. */
  siteRating(site: string): Promise<repo.SiteRating>;
}

/** Dependencies of {@link createRegistry}. */
export interface RegistryDeps {
  readonly db: Kysely<object>;
  /**
   * Tells every replica which sites' devices were created, changed (a moved device: both
   * sites) or deactivated, in the statement or transaction making the change; without it,
   * no one is told and changes take no transaction of their own.
   */
  readonly notices?: ChangeNotices;
  /**
   * Called with the site of every device created, changed (a moved device: both sites) or
   * deactivated, once stored: this replica's own fast path (it ignores its own notices).
   */
  readonly onChange?: (site: string) => void;
}

type Db = Kysely<RegistryTables>;

/** Creates the registry over `db`. */
export function createRegistry(deps: RegistryDeps): Registry {
  const db = deps.db.withTables<RegistryTables>();
  const notices = deps.notices;

  /**
   * One lookup whether or not the device is within `sites`: another site's device costs
   * what an unknown one does. With `lock` its row is locked until `q`'s transaction ends.
   */
  async function mustFind(q: Db, id: string, sites: SiteScope, field = 'id', lock = false): Promise<Device> {
    return found(await repo.findDeviceById(q, requireUuid(field, id), lock), id, field, sites);
  }

  /** `device`, or NOT_FOUND naming `field` when it is missing or outside `sites`. */
  function found(device: Device | undefined, id: string, field: string, sites: SiteScope): Device {
    if (!device) throw new NotFoundError('device', id, field);
    if (!withinSites(sites, device.site)) throw new NotFoundError('device', id, field, { outsideSites: true });
    return device;
  }

  /**
   * Runs `change` in a transaction that also tells of the sites it returns, or alone
   * without notices. `lock` tells `change` to lock the device it reads, so the site it
   * reads is the one the change moves the device from.
   */
  async function changing(change: (q: Db, lock: boolean) => Promise<{ device: Device; sites: string[] }>): Promise<Device> {
    const { device, sites } = notices
      ? await db.transaction().execute(async (trx) => {
          const made = await change(trx, true);
          const told = [...new Set(made.sites)].map((site) => notices.change(site, 'registry'));
          await sql`select ${sql.join(told)}`.execute(trx);
          return made;
        })
      : await change(db, false);
    for (const site of new Set(sites)) deps.onChange?.(site);
    return device;
  }

  /** Tells this replica of a device just created. */
  const created = (device: Device): Device => {
    deps.onChange?.(device.site);
    return device;
  };

  return {
    async createDevice(input, requestId, owner, codec) {
      validateDevice(input);
      if (requestId.length > 100) throw new InvalidArgumentError('request_id', requestId, 'must be at most 100 characters');
      const notice = notices?.change(input.site, 'registry');
      if (requestId === '') return created(await repo.insertDevice(db, input, notice));
      return created(
        await withIdempotency(db, { principal: owner, method: 'CreateDevice', requestId, payload: input }, codec, (trx) =>
          repo.insertDevice(trx, input, notice),
        ),
      );
    },

    getDevice: (id, sites) => mustFind(db, id, sites),

    async getDevices(ids, sites, field) {
      const wanted = ids.map((id, i) => requireUuid(`${field}[${i}]`, id));
      const byId = new Map((await repo.findDevicesByIds(db, wanted)).map((d) => [d.id, d]));
      return wanted.map((id, i) => found(byId.get(id), ids[i]!, `${field}[${i}]`, sites));
    },

    async listDevices(filter, requestedPageSize, pageToken, budget) {
      const limit = pageSize(requestedPageSize, 100, 1_000);
      const after = decodePageToken<repo.DeviceCursor>(pageToken, filter, ['string', 'string', 'uuid']);
      const { page, more } = takePage(await repo.listDevices(db, filter, limit + 1, after), limit, budget);
      const last = page.at(-1);
      const nextPageToken = more && last ? encodePageToken([last.site, last.name, last.id], filter) : '';
      return { devices: page, nextPageToken };
    },

    async updateDevice(id, patch, mask) {
      if (mask.length === 0) throw new InvalidArgumentError('update_mask', '', `must name at least one of ${UPDATABLE_FIELDS.join(' | ')}`);
      for (const path of mask) {
        if (path === 'type') throw new InvalidArgumentError('update_mask', path, 'type cannot change (create a new device instead)');
        if (!(UPDATABLE_FIELDS as readonly string[]).includes(path)) {
          throw new InvalidArgumentError('update_mask', path, `must name only ${UPDATABLE_FIELDS.join(' | ')}`);
        }
      }
      return changing(async (q, lock) => {
        // Only callers of every site change devices (the service refuses the others).
        const current = await mustFind(q, id, EVERY_SITE, 'device.id', lock);
        const has = (field: UpdatableField) => mask.includes(field);
        const next = {
          name: has('name') ? patch.name : current.name,
          type: current.type,
          site: has('site') ? patch.site : current.site,
          metadata: has('metadata') ? patch.metadata : current.metadata,
          bess: has('bess') ? patch.bess : current.bess,
          meter: has('meter') ? patch.meter : current.meter,
          active: has('active') ? patch.active : current.active,
        };
        validateDevice(next, 'device', { metadata: has('metadata'), spec: has('bess') || has('meter') });
        const updated = await repo.updateDevice(q, current.id, next);
        if (!updated) throw new NotFoundError('device', id, 'device.id');
        return { device: updated, sites: [current.site, updated.site] };
      });
    },

    siteRating: (site) => repo.findSiteRating(db, site),

    batchUpsertDevices: createBatchUpsert({ db, ...(notices ? { notices } : {}), ...(deps.onChange ? { onChange: deps.onChange } : {}) }),

    deactivateDevice: (id, sites) =>
      changing(async (q, lock) => {
        await mustFind(q, id, sites, 'id', lock);
        const device = await repo.deactivateDevice(q, id.toLowerCase());
        if (!device) throw new NotFoundError('device', id);
        return { device, sites: [device.site] };
      }),
  };
}
