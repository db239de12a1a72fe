import { Code, ConnectError, type Interceptor } from '@connectrpc/connect';
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
import { onStreamError } from './stream-errors.ts';

/** Codes of PostgreSQL and socket errors that mean "the database is not reachable now". */
const DATABASE_DOWN = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', '57P01', '57P02', '57P03', '53300']);

/**
 * Maps errors from domains to Connect codes, in one place: no credentials Unauthenticated,
 * not allowed PermissionDenied, bad input InvalidArgument,
 * unknown id NotFound, duplicate AlreadyExists, outside an envelope OutOfRange, wrong
 * state FailedPrecondition, database or device down Unavailable. Anything else becomes a
 * masked Internal, logged here with its cause, so no SQL, stack or socket detail reaches
 * a caller.
 */
export function createErrorInterceptor(log: Logger): Interceptor {
  return (next) => async (req) => {
    let res;
    try {
      res = await next(req);
    } catch (err) {
      throw toConnectError(err, req.method.name, log);
    }
    if (!res.stream) return res;
    // Mapped here too rather than becoming connect's masked INTERNAL.
    return onStreamError(res, (err) => toConnectError(err, req.method.name, log));
  };
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
