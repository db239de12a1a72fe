import { createHash, randomUUID } from 'node:crypto';
import { toBinary, toJson, type DescMessage, type MessageShape } from '@bufbuild/protobuf';
import { Code, ConnectError, type Interceptor } from '@connectrpc/connect';
import { policyOf, PUBLIC } from '../rpc/policy.ts';
import { principalKey } from '../rpc/principal.ts';
import { NotFoundError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { auditRecordedKey } from '../rpc/audit-recorded.ts';
import { onStreamError } from '../rpc/stream-errors.ts';
import type { AuditLog } from './audit.ts';

/** Codes that mean the call was not allowed (rather than failed): audited for every method. */
const REFUSALS = new Set([Code.PermissionDenied, Code.ResourceExhausted, Code.Unauthenticated]);

/**
 * A NOT_FOUND whose id names something at a site the caller is not bound to: the caller
 * was told "names no …", as for an unknown id, but it was a refusal (the error
 * interceptor keeps the domain's error as the cause).
 */
function outsideSites(err: ConnectError): boolean {
  return err.code === Code.NotFound && err.cause instanceof NotFoundError && err.cause.outsideSites;
}

/**
 * Audits changes. An audited method (`rpc/policy.ts`: market data, dispatches,
 * cancellations, control-mode and site settings, registry and token changes) is recorded
 * as `requested`, with its principal and request, before it changes anything — so before
 * any Modbus write it leads to; if that record cannot be written the call fails UNAVAILABLE
 * and nothing is changed. Most handlers run only once the record is stored; one whose
 * policy has `auditOverlapsReads` (SubmitDispatch) runs its reads meanwhile and awaits
 * {@link auditRecorded} before writing, which takes a database round trip off the
 * dispatch's latency. Its outcome is recorded after (`completed` or `failed` with the
 * code). Any other call refused inside (a site the caller is not bound to) is recorded as
 * `refused`, and so is a NOT_FOUND for an id of another site's device or instruction
 * (folded per second like every refusal, and written off the answer's path).
 *
 * Runs after authentication (it needs the principal) and the rate limiter (a call over
 * the limit is refused, not requested), outside the error interceptor (it records the
 * code the caller sees).
 */
export function createAuditInterceptor(deps: { audit: AuditLog; log: Logger }): Interceptor {
  return (next) => async (req) => {
    const policy = policyOf(req.service.typeName, req.method.name);
    if (policy === PUBLIC || policy === undefined) return next(req);
    const method = `${req.service.typeName}/${req.method.name}`;
    const principal = req.contextValues.get(principalKey).id;
    const callId = randomUUID();
    const audited = policy.audited === true && !req.stream;
    let requested: Promise<void> = Promise.resolve();
    if (audited) {
      requested = deps.audit
        .record({ callId, principal, method, phase: 'requested', request: auditedRequest(req.method.input, req.message as never) })
        .catch((err: Error) => {
          deps.log.error({ err: err.message, method }, 'cannot audit a change; refusing it');
          throw new ConnectError('the audit trail cannot be written - retry later', Code.Unavailable);
        });
      if (policy.auditOverlapsReads === true) {
        requested.catch(() => undefined); // Awaited below in every case; this only marks it handled.
        req.contextValues.set(auditRecordedKey, () => requested);
      } else {
        await requested;
      }
    }
    try {
      const res = await next(req);
      // A handler that wrote nothing (a replayed retry) may not have waited for the record.
      await requested;
      if (audited) await recordQuietly(deps, { callId, principal, method, phase: 'completed' });
      if (!res.stream) return res;
      return onStreamError(res, async (err) => {
        const e = ConnectError.from(err);
        if (REFUSALS.has(e.code)) await deps.audit.refused({ principal, method, code: Code[e.code], message: e.rawMessage });
        return err;
      });
    } catch (err) {
      // No `requested` record, no outcome record: the call fails UNAVAILABLE, whatever the
      // handler said (it changed nothing: it could not pass auditRecorded).
      await requested;
      const e = ConnectError.from(err);
      if (audited) await recordQuietly(deps, { callId, principal, method, phase: 'failed', code: Code[e.code], message: e.rawMessage });
      else if (REFUSALS.has(e.code)) await deps.audit.refused({ principal, method, code: Code[e.code], message: e.rawMessage });
      // Recorded without waiting: an unknown id is answered without this insert, and the
      // answer for another site's id must not take longer. `refused` never throws.
      if (outsideSites(e)) void deps.audit.refused({ principal, method, code: Code[e.code], message: e.rawMessage });
      throw err;
    }
  };
}

/** Largest request kept whole in an audit row; a larger one is kept as its size and digest. */
const MAX_AUDITED_REQUEST_BYTES = 16 * 1024;

/**
 * The request as stored: whole up to {@link MAX_AUDITED_REQUEST_BYTES} of JSON, else its
 * size and SHA-256 with its first characters, so an append-only table cannot be filled by
 * a few huge requests and a stored digest still identifies what was sent. A request JSON
 * cannot express (a timestamp beyond year 9999) is kept as the size and SHA-256 of its
 * binary encoding: the call is still audited, and its handler answers for the bad field.
 */
function auditedRequest<Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>): unknown {
  let json: unknown;
  try {
    json = toJson(schema, message);
  } catch (err) {
    const binary = toBinary(schema, message);
    return {
      unencodable: (err as Error).message.slice(0, 200),
      bytes: binary.byteLength,
      sha256: createHash('sha256').update(binary).digest('hex'),
    };
  }
  const text = JSON.stringify(json);
  const bytes = Buffer.byteLength(text);
  if (bytes <= MAX_AUDITED_REQUEST_BYTES) return json;
  return { truncated: true, bytes, sha256: createHash('sha256').update(text).digest('hex'), start: text.slice(0, 1_000) };
}

/** The outcome is best effort: the change happened, and failing the call now would invite a retry. */
async function recordQuietly(deps: { audit: AuditLog; log: Logger }, entry: Parameters<AuditLog['record']>[0]): Promise<void> {
  try {
    await deps.audit.record(entry);
  } catch (err) {
    deps.log.warn({ err: (err as Error).message, method: entry.method, callId: entry.callId }, 'could not audit the outcome of a change');
  }
}
