import { sql, type RawBuilder } from 'kysely';
import { CLUSTER_CHANNEL, type ChangeReason, type ClusterMessage } from './cluster.types.ts';

/**
 * Largest payload sent, in UTF-8 bytes: PostgreSQL refuses a NOTIFY payload of 8000 bytes
 * or more; the margin keeps a message clear of it whatever the server's build.
 */
export const MAX_PAYLOAD_BYTES = 7_900;

/** A message too large for one NOTIFY: refused whole, never cut short. */
export class MessageTooLargeError extends Error {
  constructor(
    readonly kind: string,
    readonly bytes: number,
  ) {
    super(`a '${kind}' cluster message of ${bytes} bytes is over the ${MAX_PAYLOAD_BYTES}-byte NOTIFY limit`);
    this.name = 'MessageTooLargeError';
  }
}

/** The payload of `message`: its JSON; throws {@link MessageTooLargeError} past {@link MAX_PAYLOAD_BYTES}. */
export function encodeClusterMessage(message: ClusterMessage): string {
  const payload = JSON.stringify(message);
  const bytes = Buffer.byteLength(payload, 'utf8');
  if (bytes > MAX_PAYLOAD_BYTES) throw new MessageTooLargeError(message.k, bytes);
  return payload;
}

/**
 * The SQL expression `pg_notify('powerplane', <payload>)` that sends `message`, for a
 * statement or transaction that makes the change it tells of: PostgreSQL delivers it once
 * that commits, and never if it rolls back. Throws as {@link encodeClusterMessage}.
 */
export function notifyExpression(message: ClusterMessage): RawBuilder<unknown> {
  return sql`pg_notify(${CLUSTER_CHANNEL}, ${encodeClusterMessage(message)})`;
}

const REASONS: ReadonlySet<string> = new Set<ChangeReason>(['instruction', 'override', 'config', 'registry']);

type Check = (value: unknown) => boolean;
const text: Check = (v) => typeof v === 'string' && v !== '';
const anyText: Check = (v) => typeof v === 'string';
const number: Check = (v) => typeof v === 'number' && Number.isFinite(v);
const integer: Check = (v) => Number.isSafeInteger(v);
const boolean: Check = (v) => typeof v === 'boolean';

/** The fields each kind of message must have, besides `k` and `from`. */
const FIELDS: Record<ClusterMessage['k'], Record<string, Check>> = {
  change: { site: anyText, reason: (v) => typeof v === 'string' && REASONS.has(v) },
  market: {},
  leases: {},
  events: { min: integer, max: integer },
  streams: {},
  relay: {
    to: text,
    site: anyText,
    setpointId: text,
    deviceId: text,
    targetPowerKw: number,
    release: boolean,
    expireAt: number,
    epoch: integer,
  },
  'relay-outcome': { to: text, setpointId: text, verified: boolean, reason: anyText },
};

/**
 * The message a payload holds, or what is wrong with it: JSON of an object with a known
 * `k`, a non-empty `from`, every field of its kind with the right type, and `to`, when
 * present, a non-empty string. Unknown extra fields are allowed (a newer replica may add some).
 */
export function parseClusterMessage(payload: string): { message: ClusterMessage } | { problem: string } {
  let value: unknown;
  try {
    value = JSON.parse(payload);
  } catch {
    return { problem: 'is not JSON' };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { problem: 'is not a JSON object' };
  const record = value as Record<string, unknown>;
  const kind = record.k;
  if (typeof kind !== 'string' || !Object.hasOwn(FIELDS, kind)) return { problem: `has an unknown kind k=${JSON.stringify(kind)}` };
  if (!text(record.from)) return { problem: `'${kind}' has no from` };
  if (record.to !== undefined && !text(record.to)) return { problem: `'${kind}' has a to that is not a replica id` };
  for (const [field, check] of Object.entries(FIELDS[kind as ClusterMessage['k']])) {
    if (!check(record[field])) return { problem: `'${kind}' has a missing or malformed ${field}` };
  }
  return { message: record as unknown as ClusterMessage };
}
