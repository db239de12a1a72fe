/**
 * Batch upsert of devices, for onboarding a fleet from a file: each device of the batch is
 * matched to a registered one by (site, name), then created, updated or left alone, all in
 * one transaction of a few set-based statements. The checks and the matching are pure
 * functions ({@link checkBatch}, {@link planBatch}); {@link createBatchUpsert} runs them
 * against the database.
 */
import { sql, type Kysely, type Transaction } from 'kysely';
import type { ChangeNotices } from '../cluster/change-notices.ts';
import { InvalidArgumentError } from '../errors.ts';
import { withIdempotency, findIdempotentResponse, type ResponseCodec } from '../storage/idempotency.ts';
import { validateDevice, type Device, type DeviceInput, type JsonObject, type JsonValue } from './registered-device.ts';
import * as batchRepo from './registry-batch.repository.ts';
import { toDevice, toMetadata } from './registry.repository.ts';
import type { DeviceRow, RegistryTables } from './registry.table.ts';

/** Most devices one batch may hold. */
export const MAX_BATCH_DEVICES = 10_000;

/** What a batch did (or, validating only, would do) to one device. */
export type UpsertOutcome = 'created' | 'updated' | 'unchanged';

/**
 * A device as a batch left it, or as it would leave it: a device a validate-only batch
 * would create has the id `''` and no `createdAt`.
 */
export type UpsertedDevice = Omit<Device, 'createdAt'> & { readonly createdAt?: Date };

/** The outcome for one device of a batch. */
export interface DeviceUpsert {
  readonly device: UpsertedDevice;
  readonly outcome: UpsertOutcome;
}

/** What a batch did, device by device in the batch's order, and counted. */
export interface BatchUpsertResult {
  readonly results: readonly DeviceUpsert[];
  readonly created: number;
  readonly updated: number;
  readonly unchanged: number;
  /** The batch was only validated: nothing was written. */
  readonly validateOnly: boolean;
}

/** How a batch is run. */
export interface BatchUpsertOptions {
  /** Makes the call safe to retry: `''` for none, else at most 100 characters. Not used with `validateOnly`. */
  readonly requestId: string;
  /** The caller's stable identity, whose request ids these are. */
  readonly owner: string;
  /** Validate and report what would happen, writing nothing. */
  readonly validateOnly: boolean;
  /** How the result is kept for retries by request id. */
  readonly codec: ResponseCodec<BatchUpsertResult>;
  /**
   * Called with the result before it commits; throwing rolls the whole batch back (e.g. a
   * result too large to send: the caller must never be refused the answer to a batch
   * that was written).
   */
  readonly check?: (result: BatchUpsertResult) => void;
}

/** Throws INVALID_ARGUMENT naming `devices` unless a batch of `count` devices is within 1–{@link MAX_BATCH_DEVICES}. */
export function checkBatchSize(count: number): void {
  if (count < 1 || count > MAX_BATCH_DEVICES) {
    throw new InvalidArgumentError('devices', count, `must hold 1 to ${MAX_BATCH_DEVICES} devices`);
  }
}

/**
 * Checks a batch on its own, throwing INVALID_ARGUMENT for the first bad device with the
 * field named `devices[i].…`: its size, every device as CreateDevice checks it, and a
 * (site, name) repeated in the batch. Pure.
 */
export function checkBatch(inputs: readonly DeviceInput[]): void {
  checkBatchSize(inputs.length);
  const seen = new Map<string, number>();
  inputs.forEach((input, i) => {
    validateDevice(input, `devices[${i}]`);
    const key = siteNameKey(input);
    const first = seen.get(key);
    if (first !== undefined) {
      throw new InvalidArgumentError(
        `devices[${i}].name`,
        input.name,
        `repeats devices[${first}] at site ${JSON.stringify(input.site)} (a batch names each device once)`,
      );
    }
    seen.set(key, i);
  });
}

/** The plan for one device of a batch. */
export interface PlannedUpsert {
  readonly input: DeviceInput;
  readonly outcome: UpsertOutcome;
  /** The registered device it matched; absent for one to create. */
  readonly match?: DeviceRow;
  /** Its metadata as it will be stored, typed specification included. */
  readonly metadata: JsonObject;
}

/**
 * Matches each device of a checked batch to `registered` (every device, active or not,
 * at the batch's (site, name) pairs) and says what to do with it: an active device first,
 * else the most recently created inactive one (reactivated); unmatched devices are
 * created, matched ones updated when they differ or are inactive, else left alone.
 * Throws INVALID_ARGUMENT for a name matching several active devices and for a change of
 * a matched device's type. Pure.
 */
export function planBatch(inputs: readonly DeviceInput[], registered: readonly DeviceRow[]): PlannedUpsert[] {
  const bySiteName = new Map<string, DeviceRow[]>();
  for (const row of registered) {
    const key = siteNameKey(row);
    bySiteName.set(key, [...(bySiteName.get(key) ?? []), row]);
  }
  return inputs.map((input, i) => {
    const metadata = toMetadata(input);
    const match = matchOf(input, bySiteName.get(siteNameKey(input)) ?? [], i);
    if (!match) return { input, outcome: 'created', metadata };
    if (match.type !== input.type) {
      throw new InvalidArgumentError(
        `devices[${i}].type`,
        input.type,
        `cannot change from ${match.type} (device ${match.id} has this site and name) - deactivate it or use another name`,
      );
    }
    const same = match.active !== false && sameJson(match.metadata ?? {}, metadata);
    return { input, outcome: same ? 'unchanged' : 'updated', match, metadata };
  });
}

function matchOf(input: DeviceInput, candidates: readonly DeviceRow[], i: number): DeviceRow | undefined {
  const active = candidates.filter((row) => row.active !== false);
  if (active.length > 1) {
    throw new InvalidArgumentError(
      `devices[${i}].name`,
      input.name,
      `matches ${active.length} active devices at site ${JSON.stringify(input.site)} ` +
        `(${active.map((row) => row.id).join(' ')}) - deactivate all but one`,
    );
  }
  if (active.length === 1) return active[0];
  // Newest first; the id breaks a tie so the choice never depends on the row order read.
  return [...candidates].sort((a, b) => b.created_at.getTime() - a.created_at.getTime() || (a.id < b.id ? 1 : -1))[0];
}

/**
 * Whether two JSON values are equal as `jsonb` compares them: object keys in any order,
 * arrays in order. Several times faster than comparing canonical texts, which matters
 * when a batch compares 10,000 devices.
 */
export function sameJson(a: JsonValue, b: JsonValue): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((value, i) => sameJson(value, b[i]!));
  }
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  return keys.every((key) => Object.hasOwn(b, key) && sameJson(a[key]!, b[key]!));
}

function siteNames(inputs: readonly DeviceInput[]): batchRepo.SiteName[] {
  return inputs.map(({ site, name }) => ({ site, name }));
}

function siteNameKey(device: { readonly site: string; readonly name: string }): string {
  return JSON.stringify([device.site, device.name]);
}

/**
 * The result a plan would give, without writing: matched devices as they would be
 * stored, devices to create with the id `''`.
 */
export function predictResult(plan: readonly PlannedUpsert[]): BatchUpsertResult {
  return summarize(
    plan.map(({ input, outcome, match, metadata }) => {
      if (!match) return { outcome, device: { ...input, id: '', active: true } };
      const device = outcome === 'unchanged' ? toDevice(match) : toDevice({ ...match, metadata, active: true });
      return { outcome, device };
    }),
    true,
  );
}

function summarize(results: DeviceUpsert[], validateOnly: boolean): BatchUpsertResult {
  const count = (outcome: UpsertOutcome) => results.filter((r) => r.outcome === outcome).length;
  return { results, created: count('created'), updated: count('updated'), unchanged: count('unchanged'), validateOnly };
}

/** Dependencies of {@link createBatchUpsert}, as the registry's. */
export interface BatchUpsertDeps {
  readonly db: Kysely<RegistryTables>;
  readonly notices?: ChangeNotices;
  readonly onChange?: (site: string) => void;
}

/** Sites told of per statement: one `pg_notify` column each, well under PostgreSQL's 1664-column limit. */
const NOTICES_PER_STATEMENT = 500;

/**
 * Creates the batch upsert: checks the batch, answers a retry from its stored response,
 * then in one transaction (under a lock batches share, so concurrent batches naming the
 * same devices never both create them) reads the matching devices with their rows
 * locked, plans, inserts the new devices in one statement and updates the changed ones
 * in another, tells every replica once per site it changed, and stores the response
 * under the request id. A validate-only batch reads and plans, and writes nothing.
 */
export function createBatchUpsert(deps: BatchUpsertDeps) {
  const { db, notices } = deps;

  async function write(trx: Transaction<RegistryTables>, inputs: readonly DeviceInput[], options: BatchUpsertOptions) {
    await batchRepo.lockBatchUpserts(trx);
    const plan = planBatch(inputs, await batchRepo.findDevicesByName(trx, siteNames(inputs), true));
    const created = await batchRepo.insertDevices(
      trx,
      plan.filter((p) => !p.match).map(({ input, metadata }) => ({ name: input.name, site: input.site, type: input.type, metadata })),
    );
    const updated = await batchRepo.updateDevices(
      trx,
      plan.filter((p) => p.outcome === 'updated').map(({ match, metadata }) => ({ id: match!.id, metadata })),
    );
    const createdBySiteName = new Map(created.map((row) => [siteNameKey(row), row]));
    const updatedById = new Map(updated.map((row) => [row.id, row]));
    const result = summarize(
      plan.map(({ input, outcome, match }) => {
        const row = match ? (outcome === 'updated' ? updatedById.get(match.id) : match) : createdBySiteName.get(siteNameKey(input));
        if (!row) throw new Error(`the batch lost ${siteNameKey(input)} between writing and reading it back`);
        return { outcome, device: toDevice(row) };
      }),
      false,
    );
    options.check?.(result);
    const sites = [...new Set(result.results.filter((r) => r.outcome !== 'unchanged').map((r) => r.device.site))];
    if (notices) {
      for (let i = 0; i < sites.length; i += NOTICES_PER_STATEMENT) {
        const told = sites.slice(i, i + NOTICES_PER_STATEMENT).map((site) => notices.change(site, 'registry'));
        await sql`select ${sql.join(told)}`.execute(trx);
      }
    }
    return { result, sites };
  }

  return async function batchUpsertDevices(inputs: readonly DeviceInput[], options: BatchUpsertOptions): Promise<BatchUpsertResult> {
    checkBatch(inputs);
    if (options.requestId.length > 100) {
      throw new InvalidArgumentError('request_id', options.requestId, 'must be at most 100 characters');
    }
    if (options.validateOnly) {
      const result = predictResult(planBatch(inputs, await batchRepo.findDevicesByName(db, siteNames(inputs), false)));
      options.check?.(result);
      return result;
    }
    let changedSites: string[] = [];
    const run = async (trx: Transaction<RegistryTables>) => {
      const { result, sites } = await write(trx, inputs, options);
      changedSites = sites;
      return result;
    };
    let result: BatchUpsertResult;
    if (options.requestId === '') {
      result = await db.transaction().execute(run);
    } else {
      const key = { principal: options.owner, method: 'BatchUpsertDevices', requestId: options.requestId, payload: inputs };
      // A retry is answered from the stored response before the batch is matched again:
      // the devices may have changed since, and the first call's answer stands.
      result = (await findIdempotentResponse(db, key, options.codec)) ?? (await withIdempotency(db, key, options.codec, run));
    }
    for (const site of changedSites) deps.onChange?.(site);
    return result;
  };
}
