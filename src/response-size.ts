/**
 * The size of a listed row as the response will carry it, for page byte budgets
 * (`PageBudget` in `page-token.ts`). Shared by every service that pages a listing.
 */
import { create, ScalarType, toBinary, toJsonString, type DescMessage, type MessageInitShape } from '@bufbuild/protobuf';
import type { HandlerContext } from '@connectrpc/connect';

/** How a response is encoded: protobuf, JSON, or not known from the request (a Connect GET). */
export type Encoding = 'binary' | 'json' | 'either';

/** The encoding of the response to the call of `ctx`, from its request's content type. */
export function encodingOf(ctx: Pick<HandlerContext, 'requestHeader'>): Encoding {
  const contentType = ctx.requestHeader.get('content-type') ?? '';
  if (contentType === '') return 'either';
  return /json/i.test(contentType) ? 'json' : 'binary';
}

function sizeIn<Desc extends DescMessage>(encoding: Encoding, schema: Desc, init: MessageInitShape<Desc>): number {
  const message = create(schema, init);
  const binary = () => toBinary(schema, message).length;
  const json = () => Buffer.byteLength(toJsonString(schema, message), 'utf8');
  if (encoding === 'either') return Math.max(binary(), json());
  return encoding === 'json' ? json() : binary();
}

/**
 * Returns a function giving the bytes one message of `schema` takes in the response to
 * the call of `ctx`: its JSON for a call in a JSON encoding (Connect JSON, `+json`), its
 * protobuf encoding otherwise, and the larger of the two when the request says neither
 * (a Connect GET). JSON can be several times the protobuf size (long field names) and
 * protobuf several times the JSON (a number is 9 bytes and more inside a Struct), so the
 * encoding the caller chose is the one measured. Encoding each row costs about as much as
 * encoding the response again: for rows of variable size (devices, instructions, tokens,
 * market data, datum readings); fixed-shape rows use {@link largestSize}.
 */
export function responseSizer<Desc extends DescMessage>(
  ctx: Pick<HandlerContext, 'requestHeader'>,
  schema: Desc,
): (init: MessageInitShape<Desc>) => number {
  const encoding = encodingOf(ctx);
  return (init) => sizeIn(encoding, schema, init);
}

/** Longest values of the scalar types: the most bytes in protobuf and the most characters in JSON. */
const LONGEST: Partial<Record<ScalarType, unknown>> = {
  [ScalarType.DOUBLE]: -2.2250738585072014e-308,
  [ScalarType.FLOAT]: -2.2250738585072014e-308,
  [ScalarType.INT32]: -2_147_483_648,
  [ScalarType.SINT32]: -2_147_483_648,
  [ScalarType.SFIXED32]: -2_147_483_648,
  [ScalarType.UINT32]: 4_294_967_295,
  [ScalarType.FIXED32]: 4_294_967_295,
  [ScalarType.INT64]: -9_223_372_036_854_775_808n,
  [ScalarType.SINT64]: -9_223_372_036_854_775_808n,
  [ScalarType.SFIXED64]: -9_223_372_036_854_775_808n,
  [ScalarType.UINT64]: 18_446_744_073_709_551_615n,
  [ScalarType.FIXED64]: 18_446_744_073_709_551_615n,
  [ScalarType.BOOL]: true,
};

const largest = new Map<string, number>();

/**
 * The bytes the largest message of `schema` takes in the response to the call of `ctx`:
 * every scalar and enum field set to its longest value, every Timestamp to its longest,
 * and the string fields to `strings` (by local name, e.g. a UUID for `deviceId`). For
 * listings of many rows of one fixed shape (readings, aggregates), where it bounds every
 * row at the cost of one encoding per process. Throws for a schema with fields of other
 * kinds (lists, maps, other messages), whose size has no such bound.
 */
export function largestSize<Desc extends DescMessage>(
  ctx: Pick<HandlerContext, 'requestHeader'>,
  schema: Desc,
  strings: Readonly<Record<string, string>>,
): number {
  const encoding = encodingOf(ctx);
  const key = `${schema.typeName}|${encoding}|${JSON.stringify(strings)}`;
  const known = largest.get(key);
  if (known !== undefined) return known;
  const init: Record<string, unknown> = {};
  for (const field of schema.fields) {
    if (field.fieldKind === 'scalar' && field.scalar === ScalarType.STRING) init[field.localName] = strings[field.localName] ?? '';
    else if (field.fieldKind === 'scalar' && field.scalar === ScalarType.BYTES) init[field.localName] = new Uint8Array(0);
    else if (field.fieldKind === 'scalar') init[field.localName] = LONGEST[field.scalar];
    // The zero value of an enum is not sent at all, so it is never the longest.
    else if (field.fieldKind === 'enum')
      init[field.localName] = field.enum.values
        .filter((v) => v.number !== 0)
        .reduce<{ name: string; number: number } | undefined>((a, b) => (a && a.name.length >= b.name.length ? a : b), undefined)?.number;
    else if (field.fieldKind === 'message' && field.message.typeName === 'google.protobuf.Timestamp')
      init[field.localName] = { seconds: 253_402_300_799n, nanos: 999_999_999 };
    else throw new Error(`${schema.typeName}.${field.name} has no largest value`);
  }
  const size = sizeIn(encoding, schema, init as MessageInitShape<Desc>);
  largest.set(key, size);
  return size;
}
