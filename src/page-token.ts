import { createHash } from 'node:crypto';
import { InvalidArgumentError } from './errors.ts';
import { textProblem } from './text.ts';
import { isUuid } from './uuid.ts';

/**
 * Opaque page tokens for keyset pagination. A token carries the last key of a page and a
 * hash of the filters it was made under, so a token reused with other filters is refused
 * instead of silently skipping or repeating rows.
 */
export function encodePageToken(key: readonly unknown[], filters: unknown): string {
  return Buffer.from(JSON.stringify({ k: key, f: filterHash(filters) })).toString('base64url');
}

/**
 * The type of each key of a page token, checked when it is decoded: `string` is text
 * PostgreSQL can store, of at most {@link MAX_KEY_LENGTH} characters; `number` a safe
 * integer; `int32` one PostgreSQL's `integer` holds; `millis` a whole number of
 * milliseconds a Date can hold; `uuid` a UUID.
 */
export type PageKeyShape = ReadonlyArray<'string' | 'number' | 'int32' | 'millis' | 'uuid'>;

/** Longest text key of a page token: the longest name the API stores. */
const MAX_KEY_LENGTH = 200;
/** Largest distance from the epoch a Date holds, in milliseconds. */
const MAX_DATE_MS = 8.64e15;

/**
 * Decodes a token made by {@link encodePageToken}; empty means the first page. A token
 * whose keys do not have `shape` (edited by hand, or from another listing) is refused as
 * INVALID_ARGUMENT, never passed to the database.
 */
export function decodePageToken<K extends readonly unknown[]>(
  token: string,
  filters: unknown,
  shape: PageKeyShape,
  field = 'page_token',
): K | undefined {
  if (token === '') return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    throw new InvalidArgumentError(field, token, 'is not a page token from this API');
  }
  const body = parsed as { k?: unknown; f?: unknown };
  if (!body || !Array.isArray(body.k) || typeof body.f !== 'string') {
    throw new InvalidArgumentError(field, token, 'is not a page token from this API');
  }
  if (body.f !== filterHash(filters)) {
    throw new InvalidArgumentError(field, token, 'was made for a listing with other filters');
  }
  // A token is text from outside: its hash of the filters is no signature, so a key that
  // reaches SQL is checked as strictly as a request field.
  const keysFit =
    body.k.length === shape.length &&
    shape.every((kind, i) => {
      const key = (body.k as unknown[])[i];
      if (kind === 'number') return Number.isSafeInteger(key);
      if (kind === 'int32') return Number.isInteger(key) && (key as number) >= -2_147_483_648 && (key as number) <= 2_147_483_647;
      if (kind === 'millis') return Number.isSafeInteger(key) && Math.abs(key as number) <= MAX_DATE_MS;
      if (typeof key !== 'string') return false;
      return kind === 'uuid' ? isUuid(key) : textProblem(key, MAX_KEY_LENGTH) === undefined;
    });
  if (!keysFit) throw new InvalidArgumentError(field, token, 'is not a page token from this API');
  return body.k as unknown as K;
}

/** Resolves a requested page size: 0 means `fallback`; otherwise 1..max. */
export function pageSize(requested: number, fallback: number, max: number, field = 'page_size'): number {
  if (requested === 0) return fallback;
  if (!Number.isInteger(requested) || requested < 1 || requested > max) {
    throw new InvalidArgumentError(field, requested, `must be from 1 to ${max} (0 means ${fallback})`);
  }
  return requested;
}

/**
 * A byte budget for one page of a listing, so that a page stays well under the message
 * limit however large its rows are: a page ends early, with a next page token, when the
 * next row would take it past `bytes`.
 */
export interface PageBudget<T> {
  /** Most bytes of rows on one page (see {@link pageBytesFor}). */
  readonly bytes: number;
  /** The bytes one row takes in the response, as the response will encode it. */
  readonly sizeOf: (row: T) => number;
}

/**
 * Share of the message limit (`POWERPLANE_MAX_MESSAGE_BYTES`) one page's rows may take:
 * a quarter, which leaves room for the rest of the response and for a row whose size was
 * measured in the other encoding.
 */
export const PAGE_BYTES_FRACTION = 0.25;

/** The page byte budget under a message limit of `maxMessageBytes`. */
export function pageBytesFor(maxMessageBytes: number): number {
  return Math.max(1, Math.floor(maxMessageBytes * PAGE_BYTES_FRACTION));
}

/** The page byte budget under the default message limit of 4 MiB: 1 MiB. */
export const DEFAULT_PAGE_BYTES = pageBytesFor(4 * 1024 * 1024);

/**
 * Takes one page from `rows`, which a listing fetched as `limit + 1` rows in its order:
 * at most `limit` rows and, with a budget, no more bytes than it allows, but always at
 * least one row, so a row larger than the budget (stored before its field was bounded)
 * comes alone on its page instead of blocking the listing. `more` says whether rows
 * remain after the page, i.e. whether the page needs a next page token.
 */
export function takePage<T>(rows: readonly T[], limit: number, budget?: PageBudget<T>): { page: T[]; more: boolean } {
  let count = Math.min(rows.length, limit);
  if (budget) {
    let bytes = 0;
    for (let i = 0; i < count; i++) {
      bytes += budget.sizeOf(rows[i]!);
      if (i > 0 && bytes > budget.bytes) {
        count = i;
        break;
      }
    }
  }
  return { page: rows.slice(0, count), more: rows.length > count };
}

function filterHash(filters: unknown): string {
  return createHash('sha256')
    .update(JSON.stringify(filters ?? null))
    .digest('base64url')
    .slice(0, 16);
}
