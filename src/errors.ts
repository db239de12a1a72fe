/**
 * The typed errors domains throw. One interceptor (`server/error-interceptor.ts`) maps
 * them to Connect codes; messages name the field and the value and never carry SQL,
 * stacks or socket details.
 *
 * Messages avoid the URI-reserved characters `; / ? : @ & = + $ , #` in their own text:
 * connect-es percent-encodes grpc-message with encodeURIComponent and grpc-js decodes it
 * with decodeURI, which leaves those characters encoded (`:` would arrive as `%3A`).
 */

/** Bad input: a field whose value is missing, malformed or out of its allowed set. */
export class InvalidArgumentError extends Error {
  override readonly name = 'InvalidArgumentError';
  constructor(
    readonly field: string,
    readonly value: unknown,
    readonly reason: string,
  ) {
    super(`${field} ${reason} (got ${formatValue(value)})`);
  }
}

/**
 * An id that names nothing stored, or (`outsideSites`) something at a site the caller is
 * not bound to: both have the same message, so the caller cannot tell them apart; the
 * flag is for the audit trail only.
 */
export class NotFoundError extends Error {
  override readonly name = 'NotFoundError';
  /** The id names something at a site outside the caller's binding (never shown to the caller). */
  readonly outsideSites: boolean;
  constructor(
    readonly entity: string,
    readonly id: string,
    readonly field = 'id',
    options: { readonly outsideSites?: boolean } = {},
  ) {
    super(`${field} names no ${entity} (got ${JSON.stringify(id)})`);
    this.outsideSites = options.outsideSites === true;
  }
}

/** A key that already exists with other content (e.g. a reused request id). */
export class AlreadyExistsError extends Error {
  override readonly name = 'AlreadyExistsError';
  constructor(
    readonly field: string,
    readonly value: string,
    readonly reason: string,
  ) {
    super(`${field} ${reason} (got ${JSON.stringify(value)})`);
  }
}

/** A value outside a device's or site's envelope (e.g. power beyond its rating). */
export class OutOfRangeError extends Error {
  override readonly name = 'OutOfRangeError';
  constructor(
    readonly field: string,
    readonly value: unknown,
    readonly reason: string,
  ) {
    super(`${field} ${reason} (got ${formatValue(value)})`);
  }
}

/** A request the current state forbids (e.g. cancelling a completed instruction). */
export class FailedPreconditionError extends Error {
  override readonly name = 'FailedPreconditionError';
}

/** A dependency (database, Modbus device) that cannot be reached now; retrying may work. */
export class UnavailableError extends Error {
  override readonly name = 'UnavailableError';
}

/** A call without valid credentials (no token, unknown, expired or revoked token, bad JWT). */
export class UnauthenticatedError extends Error {
  override readonly name = 'UnauthenticatedError';
}

/** A caller that lacks the scope, or is not bound to the site, a call needs. */
export class PermissionDeniedError extends Error {
  override readonly name = 'PermissionDeniedError';
}

/** Formats a value for an error message: strings quoted, numbers as JS prints them. */
export function formatValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 200 ? `${value.slice(0, 200)}…` : value);
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') return String(value);
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  try {
    const text = JSON.stringify(value);
    return text.length > 200 ? `${text.slice(0, 200)}…` : text;
  } catch {
    return String(value);
  }
}
