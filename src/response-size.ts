/**
 * The size of a listed row as the response will carry it, for page byte budgets
 * (`PageBudget` in `page-token.ts`). Shared by every service that pages a listing.
 */
import { create, toBinary, toJsonString, type DescMessage, type MessageInitShape } from '@bufbuild/protobuf';
import type { HandlerContext } from '@connectrpc/connect';

/**
 * Returns a function giving the bytes one message of `schema` takes in the response to
 * the call of `ctx`: its JSON for a call in a JSON encoding (Connect JSON, `+json`), its
 * protobuf encoding otherwise, and the larger of the two when the request says neither
 * (a Connect GET). JSON can be several times the protobuf size (long field names) and
 * protobuf several times the JSON (a number is 9 bytes and more inside a Struct), so the
 * encoding the caller chose is the one measured.
 */
export function responseSizer<Desc extends DescMessage>(ctx: Pick<HandlerContext, 'requestHeader'>, schema: Desc): (init: MessageInitShape<Desc>) => number {
  const contentType = ctx.requestHeader.get('content-type') ?? '';
  const binary = (init: MessageInitShape<Desc>) => toBinary(schema, create(schema, init)).length;
  const json = (init: MessageInitShape<Desc>) => Buffer.byteLength(toJsonString(schema, create(schema, init)), 'utf8');
  if (contentType === '') return (init) => Math.max(binary(init), json(init));
  return /json/i.test(contentType) ? json : binary;
}
