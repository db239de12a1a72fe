/**
 * Which calls the client may send more than once. A call is retried only when sending it
 * twice leaves the same state as sending it once:
 *
 * - reads: every unary `Get*` and `List*` method;
 * - writes carrying a `request_id`: the server answers a repeated id with the first call's
 *   response and writes nothing new (`SubmitDispatch`, `CreateDevice`,
 *   `BatchUpsertDevices`), so the client fills in one id per call and sends it on every
 *   attempt;
 * - `PublishMarketData`: a point identical to the latest stored revision of its (time,
 *   type) is a no-op on the server, so publishing the same points again stores no new
 *   row. Only the counts differ: a retry whose first attempt was stored reports the points
 *   as `unchanged_count`.
 *
 * Everything else (`CancelDispatch`, `SetControlMode`, `SetSiteConfig`, `UpdateDevice`,
 * `DeactivateDevice`, `CreateToken`, `RevokeToken`, `WriteReadings`) and every stream is
 * sent once: a second attempt could act twice or on a state another caller changed
 * in between.
 */
import { ScalarType, type DescField, type DescMethod } from '@bufbuild/protobuf';

/** Writes that are idempotent by the server's design although they carry no `request_id`, as `package.Service/Method`. */
const IDEMPOTENT_WRITES: ReadonlySet<string> = new Set(['powerplane.v1.DispatchService/PublishMarketData']);

/** The `request_id` string field of a method's request, if it has one. */
export function requestIdField(method: DescMethod): DescField | undefined {
  return method.input.fields.find((f) => f.name === 'request_id' && f.fieldKind === 'scalar' && f.scalar === ScalarType.STRING);
}

/** Whether `method` may be sent again after UNAVAILABLE (see the module comment for the rule). */
export function isRetryable(method: DescMethod): boolean {
  if (method.methodKind !== 'unary') return false;
  if (/^(Get|List)[A-Z]/.test(method.name)) return true;
  if (requestIdField(method)) return true;
  return IDEMPOTENT_WRITES.has(`${method.parent.typeName}/${method.name}`);
}

/**
 * `input` with its `request_id` set to `newId()` when `method` has one and the caller left
 * it empty; otherwise `input` itself. The caller's object is never changed.
 */
export function withRequestId<T extends object>(method: DescMethod, input: T, newId: () => string): T {
  const field = requestIdField(method);
  if (!field) return input;
  const current = (input as Record<string, unknown>)[field.localName];
  if (typeof current === 'string' && current !== '') return input;
  return { ...input, [field.localName]: newId() };
}
