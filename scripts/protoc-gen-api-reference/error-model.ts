/**
 * The "Error model" section of the API reference: what each gRPC status code means in this
 * API, and which codes each service and method names in its proto comment.
 */
import type { DescService } from '@bufbuild/protobuf';
import { anchor, cell, code, commentOf, linkTo, methodId } from './markdown.ts';

/** One gRPC status code: its canonical name, number, meaning here and whether to retry. */
interface StatusCode {
  readonly name: string;
  readonly number: number;
  readonly meaning: string;
  readonly retry: string;
}

/**
 * Every canonical gRPC status code but OK, in number order, with what it means when this API
 * returns it (src/server/error-interceptor.ts is the one place typed errors become codes).
 * Codes the server never returns keep gRPC's own meaning, so a comment naming one still gets
 * a row.
 */
const STATUS_CODES: readonly StatusCode[] = [
  { name: 'CANCELLED', number: 1, meaning: 'the client cancelled the call or closed the stream.', retry: '—' },
  { name: 'UNKNOWN', number: 2, meaning: 'gRPC: an error of unknown kind.', retry: '—' },
  {
    name: 'INVALID_ARGUMENT',
    number: 3,
    meaning:
      'bad input: a missing or malformed field, an enum left `UNSPECIFIED`, a value out of range, unknown JSON fields, ' +
      'a deadline above the server maximum. The message names the field and the value.',
    retry: 'no: fix the request',
  },
  {
    name: 'DEADLINE_EXCEEDED',
    number: 4,
    meaning: "the call's deadline passed (a unary call sent without one gets the server default).",
    retry: 'yes, the same request (with the same `request_id` for a write)',
  },
  {
    name: 'NOT_FOUND',
    number: 5,
    meaning: "an unknown id, site or battery; also another site's, for a caller bound to sites.",
    retry: 'no',
  },
  { name: 'ALREADY_EXISTS', number: 6, meaning: 'a `request_id` reused with another payload.', retry: 'no: use a new `request_id`' },
  { name: 'PERMISSION_DENIED', number: 7, meaning: "the caller's scopes or sites do not cover the call.", retry: 'no' },
  {
    name: 'RESOURCE_EXHAUSTED',
    number: 8,
    meaning:
      "the caller's rate limit (the error carries a `google.rpc.RetryInfo` detail and `retry-after`), " +
      "or a message above the server's size limit.",
    retry: 'after the `RetryInfo` delay',
  },
  {
    name: 'FAILED_PRECONDITION',
    number: 9,
    meaning: "the target's state does not allow the change, e.g. cancelling a completed instruction.",
    retry: 'no',
  },
  { name: 'ABORTED', number: 10, meaning: 'gRPC: a concurrency conflict aborted the operation.', retry: '—' },
  { name: 'OUT_OF_RANGE', number: 11, meaning: "a value outside a device's envelope.", retry: 'no' },
  { name: 'UNIMPLEMENTED', number: 12, meaning: 'a method this server does not serve.', retry: 'no' },
  {
    name: 'INTERNAL',
    number: 13,
    meaning: 'anything unexpected; the message is masked and the cause is logged on the server.',
    retry: 'no',
  },
  {
    name: 'UNAVAILABLE',
    number: 14,
    meaning: 'the database (or, for a write, its audit row) cannot be reached.',
    retry: 'yes, the same request (with the same `request_id` for a write)',
  },
  { name: 'DATA_LOSS', number: 15, meaning: 'gRPC: unrecoverable data loss.', retry: '—' },
  { name: 'UNAUTHENTICATED', number: 16, meaning: 'no credential, or one that is invalid, expired or revoked.', retry: 'no' },
];

/** Codes any call can end with, whether or not a comment names them. */
const ANY_CALL = ['CANCELLED', 'DEADLINE_EXCEEDED', 'INTERNAL'];

const CODE_PATTERN = new RegExp(`\\b(${STATUS_CODES.map((c) => c.name).join('|')})\\b`, 'g');

/** The status codes a comment names, in number order, each once. */
export function codesNamedIn(comment: string): string[] {
  const named = new Set(comment.match(CODE_PATTERN) ?? []);
  return STATUS_CODES.filter((c) => named.has(c.name)).map((c) => c.name);
}

/** The anchor of a service's table in the error model. */
export function errorsAnchor(service: DescService): string {
  return `errors.${service.typeName}`;
}

/** The errors line of a method's section: the codes its comment names, and a link to its service's. */
export function methodErrors(service: DescService, methodComment: string): string {
  const own = codesNamedIn(methodComment).map(code);
  const serviceWide = linkTo(errorsAnchor(service), `the codes of ${service.name}`);
  return own.length > 0 ? `${own.join(', ')} named here; see also ${serviceWide}` : `see ${serviceWide}`;
}

/** The "Error model" section for the given services. */
export function renderErrorModel(services: readonly DescService[]): string[] {
  const used = new Set(ANY_CALL);
  for (const service of services) {
    for (const name of codesNamedIn(commentOf(service))) used.add(name);
    for (const method of service.methods) for (const name of codesNamedIn(commentOf(method))) used.add(name);
  }
  const lines = [
    '## Error model',
    '',
    'A failed call ends with a standard gRPC status code (Connect spells the same codes in lower',
    'case, `invalid_argument`) and a message that names the field and the value, e.g.',
    '`device.bess.min_soe_percent must not be above max_soe_percent (20) (got 80)`. These are the',
    'codes the API returns: the ones its comments name, and the ones any call can end with.',
    'How calls behave around them: [the API](api.md#errors).',
    '',
    '| code | number | meaning | retry |',
    '| --- | --- | --- | --- |',
    ...STATUS_CODES.filter((c) => used.has(c.name)).map((c) => `| ${code(c.name)} | ${c.number} | ${cell(c.meaning)} | ${cell(c.retry)} |`),
    '',
    '### Codes by method',
    '',
    "A service's comment names the codes its methods return (and says which methods, where only",
    "some do); a method's comment names the ones particular to it.",
  ];
  for (const service of services) {
    const serviceWide = codesNamedIn(commentOf(service)).map(code);
    lines.push(
      '',
      anchor(errorsAnchor(service)),
      `#### ${service.name} errors`,
      '',
      `The service's comment names: ${serviceWide.length > 0 ? serviceWide.join(', ') : 'none'}.`,
      '',
      '| method | codes its comment names |',
      '| --- | --- |',
      ...service.methods.map((method) => {
        const own = codesNamedIn(commentOf(method)).map(code);
        return `| ${linkTo(methodId(method), method.name)} | ${own.length > 0 ? own.join(', ') : '—'} |`;
      }),
    );
  }
  return lines;
}
