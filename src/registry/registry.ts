import type { Kysely } from 'kysely';
import { InvalidArgumentError, NotFoundError } from '../errors.ts';
import { decodePageToken, encodePageToken, pageSize, takePage, type PageBudget } from '../page-token.ts';
import { withIdempotency, type ResponseCodec } from '../storage/idempotency.ts';
import { requireUuid, validateDevice, type Device, type DeviceInput } from './device.ts';
import * as repo from './registry.repository.ts';

import type { RegistryTables } from './registry.table.ts';
import { isUuid } from '../uuid.ts';

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
  /** Creates a device; with a request id, a retry returns the first call's device. */
  createDevice(input: DeviceInput, requestId: string, codec: ResponseCodec<Device>): Promise<Device>;
  getDevice(id: string): Promise<Device>;
  /** The site of each id that names a device; ids that are not UUIDs or name nothing are absent. */
  sitesOf(ids: readonly string[]): Promise<Map<string, string>>;
  /**
   * One page of devices in (site, name, id) order; with `budget`, a page also ends before
   * the row that would take it past the budget's bytes (a single larger row comes alone).
   */
  listDevices(filter: repo.DeviceFilter, requestedPageSize: number, pageToken: string, budget?: PageBudget<Device>): Promise<DevicePage>;
  /** Applies the fields named in `mask` from `patch` and validates the result whole. */
  updateDevice(id: string, patch: Omit<DeviceInput, 'type'> & { active: boolean }, mask: readonly string[]): Promise<Device>;
  deactivateDevice(id: string): Promise<Device>;
}

/** Creates the registry over `db`. */
export function createRegistry(deps: { db: Kysely<object> }): Registry {
  const db = deps.db.withTables<RegistryTables>();

  async function mustFind(id: string, field = 'id'): Promise<Device> {
    const device = await repo.findDeviceById(db, requireUuid(field, id));
    if (!device) throw new NotFoundError('device', id, field);
    return device;
  }

  return {
    async createDevice(input, requestId, codec) {
      validateDevice(input);
      if (requestId === '') return repo.insertDevice(db, input);
      if (requestId.length > 100) throw new InvalidArgumentError('request_id', requestId, 'must be at most 100 characters');
      return withIdempotency(db, { method: 'CreateDevice', requestId, payload: input }, codec, (trx) => repo.insertDevice(trx, input));
    },

    getDevice: (id) => mustFind(id),

    async sitesOf(ids) {
      const uuids = [...new Set(ids.map((id) => id.toLowerCase()).filter((id) => isUuid(id)))];
      return repo.findSites(db, uuids);
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
      const current = await mustFind(id, 'device.id');
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
      const updated = await repo.updateDevice(db, current.id, next);
      if (!updated) throw new NotFoundError('device', id, 'device.id');
      return updated;
    },

    async deactivateDevice(id) {
      await mustFind(id);
      const device = await repo.deactivateDevice(db, id.toLowerCase());
      if (!device) throw new NotFoundError('device', id);
      return device;
    },
  };
}
