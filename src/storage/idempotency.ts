import { createHash } from 'node:crypto';
import type { Kysely, Transaction } from 'kysely';
import { AlreadyExistsError } from '../errors.ts';

interface IdempotencyTables {
  'powerplane.idempotency_keys': {
    principal: string;
    method: string;
    request_id: string;
    payload_sha256: string;
    response: Uint8Array;
  };
}

/**
 * A retry key: who asks, the RPC, the caller's request id and what the call asked for.
 * Request ids are per principal and method: another caller's use of the same id is never
 * seen (no ALREADY_EXISTS, no stored answer), so it tells nothing about that caller.
 */
export interface IdempotencyKey {
  /** The caller's stable identity (`stableIdentity` in rpc/principal.ts), e.g. `token:<id>`, `jwt:<iss> <sub>`. */
  readonly principal: string;
  readonly method: string;
  readonly requestId: string;
  /** The request's content, without the request id; hashed canonically (key order ignored). */
  readonly payload: unknown;
}

/** How a response is kept between the first call and its retries. */
export interface ResponseCodec<T> {
  encode(value: T): Uint8Array;
  decode(bytes: Uint8Array): T;
}

/**
 * The stored response of an earlier call with this key, if there is one; throws
 * {@link AlreadyExistsError} when the request id was used with another payload. Lets a
 * retry be answered before the request is validated again (a retry after its window has
 * passed must still get its original answer).
 */
export async function findIdempotentResponse<DB, T>(db: Kysely<DB>, key: IdempotencyKey, codec: ResponseCodec<T>): Promise<T | undefined> {
  const previous = await findStored(db as unknown as Kysely<IdempotencyTables>, key, payloadHash(key.payload));
  return previous ? codec.decode(previous) : undefined;
}

/** The stored response bytes for `key`; AlreadyExistsError when the payload differs. */
async function findStored(keys: Kysely<IdempotencyTables>, key: IdempotencyKey, payloadSha256: string): Promise<Uint8Array | undefined> {
  const previous = await keys
    .selectFrom('powerplane.idempotency_keys')
    .select(['payload_sha256', 'response'])
    .where('principal', '=', key.principal)
    .where('method', '=', key.method)
    .where('request_id', '=', key.requestId)
    .executeTakeFirst();
  if (!previous) return undefined;
  if (previous.payload_sha256 !== payloadSha256) {
    throw new AlreadyExistsError('request_id', key.requestId, 'was already used for a different request');
  }
  return previous.response;
}

function payloadHash(payload: unknown): string {
  return createHash('sha256').update(stableStringify(payload)).digest('hex');
}

/**
 * Runs `run` in a transaction that also stores its response under `key`, so the work and
 * the key commit together or not at all. No lock is taken: when a concurrent call with the
 * same key commits first, this one's insert of the key fails as a unique violation, its
 * work is rolled back with it, and the stored response is returned (ALREADY_EXISTS when
 * the payload differs). Two round trips fewer than locking and re-reading every time;
 * callers that must answer a retry before validating look it up first with
 * {@link findIdempotentResponse}.
 */
export async function withIdempotency<DB, T>(
  db: Kysely<DB>,
  key: IdempotencyKey,
  codec: ResponseCodec<T>,
  run: (trx: Transaction<DB>) => Promise<T>,
): Promise<T> {
  const payloadSha256 = payloadHash(key.payload);
  try {
    return await db.transaction().execute(async (trx) => {
      const result = await run(trx);
      await (trx as unknown as Transaction<IdempotencyTables>)
        .insertInto('powerplane.idempotency_keys')
        .values({
          principal: key.principal,
          method: key.method,
          request_id: key.requestId,
          payload_sha256: payloadSha256,
          response: codec.encode(result),
        })
        .execute();
      return result;
    });
  } catch (err) {
    if ((err as { code?: unknown }).code !== UNIQUE_VIOLATION) throw err;
    const previous = await findStored(db as unknown as Kysely<IdempotencyTables>, key, payloadSha256);
    if (previous) return codec.decode(previous);
    throw err;
  }
}

/** The row that marks a request as done, for a statement that stores it with its work. */
export interface IdempotencyKeyRow {
  readonly principal: string;
  readonly method: string;
  readonly requestId: string;
  readonly payloadSha256: string;
  readonly response: Uint8Array;
}

/**
 * Like {@link withIdempotency} for work that is one statement: `write` stores the work and
 * `key` together (a data-modifying CTE), so no transaction is opened and the call costs
 * one round trip, not four. `result` is the response, known before the statement runs.
 */
export async function storeIdempotently<DB, T>(
  db: Kysely<DB>,
  key: IdempotencyKey,
  codec: ResponseCodec<T>,
  result: T,
  write: (row: IdempotencyKeyRow) => Promise<void>,
): Promise<T> {
  const payloadSha256 = payloadHash(key.payload);
  try {
    await write({ principal: key.principal, method: key.method, requestId: key.requestId, payloadSha256, response: codec.encode(result) });
    return result;
  } catch (err) {
    if ((err as { code?: unknown }).code !== UNIQUE_VIOLATION) throw err;
    const previous = await findStored(db as unknown as Kysely<IdempotencyTables>, key, payloadSha256);
    if (previous) return codec.decode(previous);
    throw err;
  }
}

/** SQLSTATE of a unique-constraint violation. */
const UNIQUE_VIOLATION = '23505';

/** JSON with object keys sorted at every level, so equal content hashes equally. */
export function stableStringify(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Date)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : typeof v === 'bigint'
        ? v.toString()
        : v,
  );
}
