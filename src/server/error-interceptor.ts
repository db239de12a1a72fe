import { setImmediate as nextTurn } from 'node:timers/promises';
import { Code, ConnectError, type ContextValues, type Interceptor } from '@connectrpc/connect';
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  OutOfRangeError,
  PermissionDeniedError,
  UnauthenticatedError,
  UnavailableError,
} from '../errors.ts';
import type { Logger } from '../logger.ts';
import { clientGone } from './cancellation.ts';
import { onStreamError } from '../rpc/stream-errors.ts';

/** The domains' typed errors: each says what went wrong, so none is a symptom of a client going away. */
const TYPED_ERRORS = [
  InvalidArgumentError,
  NotFoundError,
  AlreadyExistsError,
  OutOfRangeError,
  FailedPreconditionError,
  UnavailableError,
  UnauthenticatedError,
  PermissionDeniedError,
];

/**
 * Codes connect fails a call with when its request is cut short: no message at all
 * ("missing input message", Unimplemented), part of one ("incomplete envelope",
 * InvalidArgument), or a torn stream (Internal, Unknown, Aborted, Canceled).
 */
const CUT_SHORT_CODES = new Set([Code.Unimplemented, Code.InvalidArgument, Code.Internal, Code.Unknown, Code.Aborted, Code.Canceled]);

/** Codes of PostgreSQL and socket errors that mean "the database is not reachable now". */
const DATABASE_DOWN = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', '57P01', '57P02', '57P03', '53300']);

/**
 * Maps errors from domains to Connect codes, in one place: no credentials Unauthenticated,
 * not allowed PermissionDenied, bad input InvalidArgument,
 * unknown id NotFound, duplicate AlreadyExists, outside an envelope OutOfRange, wrong
 * state FailedPrecondition, database or device down Unavailable. Anything else becomes a
 * masked Internal, logged here with its cause, so no SQL, stack or socket detail reaches
 * a caller.
 *
 * Whatever a call fails with after its client has gone away (see `cancellation.ts`) is
 * Canceled, logged at debug: nobody receives the answer, and a client cancelling is
 * neither a fault of the server nor a database outage.
 */
export function createErrorInterceptor(log: Logger): Interceptor {
  return (next) => async (req) => {
    const mapError = async (err: unknown) =>
      (await hasClientGone(err, req.contextValues))
        ? cancelledByClient(err, req.method.name, log)
        : toConnectError(err, req.method.name, log);
    let res;
    try {
      res = await next(req);
    } catch (err) {
      throw await mapError(err);
    }
    if (!res.stream) return res;
    // Mapped here too rather than becoming connect's masked INTERNAL.
    return onStreamError(res, mapError);
  };
}

/**
 * Whether `err` is the symptom of the call's client going away. A Node client (grpc-js,
 * connect-node) cancels a stream by ending its side and then resetting it; the server
 * reads the end first, and fails the call for a missing or incomplete message, before it
 * handles the reset. So an error that a cut-short request could cause waits up to two
 * turns of the event loop (the reset may come in the next read from the socket) for the
 * reset to arrive; typed domain errors never wait. A reset delayed longer than that by
 * the network leaves the error as connect reported it.
 */
async function hasClientGone(err: unknown, values: ContextValues): Promise<boolean> {
  if (clientGone(values)) return true;
  const mayBeCutShort = err instanceof ConnectError ? CUT_SHORT_CODES.has(err.code) : !TYPED_ERRORS.some((type) => err instanceof type);
  if (!mayBeCutShort) return false;
  for (let turn = 0; turn < 2; turn++) {
    await nextTurn();
    if (clientGone(values)) return true;
  }
  return false;
}

function cancelledByClient(err: unknown, method: string, log: Logger): ConnectError {
  log.debug({ method, err: errorSummary(err) }, 'call cancelled: the client went away');
  return new ConnectError('the client cancelled the call', Code.Canceled);
}

/** Converts one thrown value to the ConnectError the caller sees. */
export function toConnectError(err: unknown, method: string, log: Logger): ConnectError {
  if (err instanceof ConnectError) return err;
  if (err instanceof InvalidArgumentError) return new ConnectError(err.message, Code.InvalidArgument);
  // The domain error stays the cause: the audit reads whether the id was outside the caller's sites.
  if (err instanceof NotFoundError) return new ConnectError(err.message, Code.NotFound, undefined, undefined, err);
  if (err instanceof AlreadyExistsError) return new ConnectError(err.message, Code.AlreadyExists);
  if (err instanceof OutOfRangeError) return new ConnectError(err.message, Code.OutOfRange);
  if (err instanceof FailedPreconditionError) return new ConnectError(err.message, Code.FailedPrecondition);
  if (err instanceof UnavailableError) return new ConnectError(err.message, Code.Unavailable);
  if (err instanceof UnauthenticatedError) return new ConnectError(err.message, Code.Unauthenticated);
  if (err instanceof PermissionDeniedError) return new ConnectError(err.message, Code.PermissionDenied);
  if (isDatabaseDown(err)) {
    log.warn({ method, err: errorSummary(err) }, 'database unavailable');
    return new ConnectError('database unavailable - retry later', Code.Unavailable);
  }
  log.error({ method, err }, 'internal error');
  return new ConnectError('internal error', Code.Internal);
}

function isDatabaseDown(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && (DATABASE_DOWN.has(code) || code.startsWith('08'))) return true;
  return /Connection terminated|connection timeout|Client has encountered a connection error/i.test(err.message);
}

function errorSummary(err: unknown): string {
  return err instanceof Error ? `${(err as { code?: string }).code ?? err.name}: ${err.message}` : String(err);
}
