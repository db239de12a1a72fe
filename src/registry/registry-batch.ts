/**
 * Batch upsert of devices, for onboarding a fleet from a file: each device of the batch is
 * matched to a registered one by (site, name), then created, updated or left alone, all in
 * one transaction of a few set-based statements. The checks and the matching are pure
 * functions ({@link checkBatch}, {@link planBatch}); {@link createBatchUpsert} runs them
 * against the database.
 */
import { createHash } from 'node:crypto';
import { sql, type Kysely, type Transaction } from 'kysely';
import type { ChangeNotices } from '../cluster/change-notices.ts';
import { InvalidArgumentError } from '../errors.ts';
import { withIdempotency, findIdempotentResponse, type ResponseCodec } from '../storage/idempotency.ts';
import { validateDevice, type Device, type DeviceInput, type JsonObject, type JsonValue, type ModbusAccess } from './registered-device.ts';
import * as batchRepo from './registry-batch.repository.ts';
import { toMetadata } from './registry.repository.ts';
import type { RegistryTables } from './registry.table.ts';

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
  readonly match?: batchRepo.NameMatch;
}

/**
 * Matches each device of a checked batch to `registered` (every device, active or not,
 * at the batch's (site, name) pairs) and says what to do with it: an active device first,
 * else the most recently created inactive one (reactivated); unmatched devices are
 * created, matched ones updated when they differ or are inactive, else left alone.
 * Throws INVALID_ARGUMENT for a name matching several active devices and for a change of
 * a matched device's type. Pure.
 */
export function planBatch(inputs: readonly DeviceInput[], registered: readonly batchRepo.NameMatch[]): PlannedUpsert[] {
  const bySiteName = new Map<string, batchRepo.NameMatch[]>();
  for (const row of registered) {
    const key = siteNameKey(row);
    const rows = bySiteName.get(key);
    if (rows) rows.push(row);
    else bySiteName.set(key, [row]);
  }
  return inputs.map((input, i) => {
    const match = matchOf(input, bySiteName.get(siteNameKey(input)) ?? [], i);
    if (!match) return { input, outcome: 'created' };
    if (match.type !== input.type) {
      throw new InvalidArgumentError(
        `devices[${i}].type`,
        input.type,
        match.active === false
          ? `cannot change from ${match.type} (inactive device ${match.id} has this site and name) - use another name`
          : `cannot change from ${match.type} (device ${match.id} has this site and name) - deactivate it or use another name`,
      );
    }
    return { input, outcome: match.active !== false && match.same ? 'unchanged' : 'updated', match };
  });
}

function matchOf(input: DeviceInput, candidates: readonly batchRepo.NameMatch[], i: number): batchRepo.NameMatch | undefined {
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

function wantedDevices(inputs: readonly DeviceInput[]): batchRepo.WantedDevice[] {
  return inputs.map((input) => ({ site: input.site, name: input.name, type: input.type, metadata: toMetadata(input) }));
}

function siteNameKey(device: { readonly site: string; readonly name: string }): string {
  return JSON.stringify([device.site, device.name]);
}

/**
 * A device of the batch as stored under `id`: what a read of its row would give, since
 * a matched device is left with, or changed to, exactly the batch's fields.
 */
function stored(input: DeviceInput, id: string, createdAt: Date): Device {
  return { ...input, id, active: true, createdAt };
}

/**
 * The result a plan would give, without writing: matched devices as they would be
 * stored, devices to create with the id `''`.
 */
export function predictResult(plan: readonly PlannedUpsert[]): BatchUpsertResult {
  return summarize(
    plan.map(({ input, outcome, match }) => ({
      outcome,
      device: match ? stored(input, match.id, match.created_at) : { ...input, id: '', active: true },
    })),
    true,
  );
}

function summarize(results: DeviceUpsert[], validateOnly: boolean): BatchUpsertResult {
  const count = (outcome: UpsertOutcome) => results.filter((r) => r.outcome === outcome).length;
  return { results, created: count('created'), updated: count('updated'), unchanged: count('unchanged'), validateOnly };
}

/**
 * What a request id's retry must repeat exactly: the devices as the batch gives them,
 * with the keys of free-form JSON (metadata, register maps) sorted, so a retry that
 * orders them otherwise is the same request. Everything else is built in one fixed order
 * by the service, so plain `JSON.stringify` (fast, native) is canonical for it.
 */
export function batchDigest(inputs: readonly DeviceInput[]): string {
  const canonical = inputs.map((input) => ({
    ...input,
    metadata: sortKeys(input.metadata),
    ...(input.bess ? { bess: { ...input.bess, modbus: canonicalModbus(input.bess.modbus) } } : {}),
    ...(input.meter ? { meter: { modbus: canonicalModbus(input.meter.modbus) } } : {}),
  }));
  return createHash('sha256').update(JSON.stringify(canonical)).digest('hex');
}

function canonicalModbus(modbus: ModbusAccess): ModbusAccess {
  return modbus.registerMap ? { ...modbus, registerMap: sortKeys(modbus.registerMap) as JsonObject } : modbus;
}

function sortKeys(value: JsonValue): JsonValue {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map(sortKeys);
  const keys = Object.keys(value);
  if (keys.length === 0) return value;
  return Object.fromEntries(keys.sort().map((key) => [key, sortKeys(value[key]!)]));
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
    const wanted = wantedDevices(inputs);
    const plan = planBatch(inputs, await batchRepo.findDevicesByName(trx, wanted, true));
    const inserted = await batchRepo.insertDevices(
      trx,
      wanted.filter((_, i) => !plan[i]!.match),
    );
    const changes = plan.flatMap((p, i) => (p.outcome === 'updated' ? [{ id: p.match!.id, metadata: wanted[i]!.metadata }] : []));
    if ((await batchRepo.updateDevices(trx, changes)) !== changes.length) {
      throw new Error(`a batch changed fewer than its ${changes.length} matched devices, which its row locks should prevent`);
    }
    const insertedBySiteName = new Map(inserted.map((row) => [siteNameKey(row), row]));
    const result = summarize(
      plan.map(({ input, outcome, match }) => {
        const row = match ?? insertedBySiteName.get(siteNameKey(input));
        if (!row) throw new Error(`a batch lost ${siteNameKey(input)} between inserting it and reading its id`);
        return { outcome, device: stored(input, row.id, row.created_at) };
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
      const result = predictResult(planBatch(inputs, await batchRepo.findDevicesByName(db, wantedDevices(inputs), false)));
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
      const key = { principal: options.owner, method: 'BatchUpsertDevices', requestId: options.requestId, payload: batchDigest(inputs) };
      // A retry is answered from the stored response before the batch is matched again:
      // the devices may have changed since, and the first call's answer stands.
      result = (await findIdempotentResponse(db, key, options.codec)) ?? (await withIdempotency(db, key, options.codec, run));
    }
    for (const site of changedSites) deps.onChange?.(site);
    return result;
  };
}
