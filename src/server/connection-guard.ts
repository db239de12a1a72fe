import type net from 'node:net';
import { Counter, type Registry as MetricsRegistry } from 'prom-client';
import type { Logger } from '../logger.ts';

/**
 * Limits the connections one peer IP address holds open before any of them has carried an
 * authenticated call, so that slow or idle unauthenticated connections from one place
 * cannot pile up. A connection counts from accept until a call on it authenticates (then
 * it is the caller's, and other limits apply) or it closes.
 */
export interface ConnectionGuard {
  /**
   * Called at accept: counts `socket` against its address, or returns false when that
   * address already holds the most allowed (the caller closes it at once).
   */
  admit(socket: net.Socket): boolean;
  /**
   * A call on the connection of `socket` authenticated: it no longer counts. Takes the
   * socket a request reports: the accepted socket itself, Node's HTTP/2 proxy of it, or
   * the TLS socket wrapping it.
   */
  authenticated(socket: object): void;
  /** Unauthenticated connections counted now for `address` (tests, metrics). */
  count(address: string): number;
}

/** Options of {@link createConnectionGuard}. */
export interface ConnectionGuardOptions {
  /** Most unauthenticated connections per peer IP address; at least 1. */
  readonly maxPerAddress: number;
  readonly metricsRegistry: MetricsRegistry;
  readonly log: Logger;
}

/** What the guard keeps on each counted socket. */
interface Entry {
  readonly address: string;
  counted: boolean;
}

const ENTRY = Symbol('powerplane.connection-guard');

/** Creates the guard; memory is one map entry per address with unauthenticated connections. */
export function createConnectionGuard(options: ConnectionGuardOptions): ConnectionGuard {
  const counts = new Map<string, number>();
  const refused = new Counter({
    name: 'powerplane_connections_refused_total',
    help: 'Connections closed at accept because their address held too many unauthenticated connections.',
    registers: [options.metricsRegistry],
  });
  const release = (entry: Entry) => {
    if (!entry.counted) return;
    entry.counted = false;
    const left = (counts.get(entry.address) ?? 1) - 1;
    if (left > 0) counts.set(entry.address, left);
    else counts.delete(entry.address);
  };
  return {
    admit(socket) {
      const address = normalizeAddress(socket.remoteAddress);
      // A socket already closed by its peer has no address; it goes away by itself.
      if (address === undefined) return true;
      const held = counts.get(address) ?? 0;
      if (held >= options.maxPerAddress) {
        refused.inc();
        options.log.debug({ address, held }, 'closing connection: too many unauthenticated connections from its address');
        return false;
      }
      counts.set(address, held + 1);
      const entry: Entry = { address, counted: true };
      (socket as unknown as Record<symbol, Entry>)[ENTRY] = entry;
      socket.once('close', () => release(entry));
      return true;
    },
    authenticated(socket) {
      const entry = entryOf(socket);
      if (entry) release(entry);
    },
    count(address) {
      return counts.get(address) ?? 0;
    },
  };
}

/**
 * The entry of the accepted socket behind `socket`. A TLS socket wraps the accepted one as
 * `_parent`; Node's HTTP/2 proxy forwards both reads to the session's socket, and throws
 * once the session has let go of it.
 */
function entryOf(socket: object): Entry | undefined {
  try {
    const s = socket as { [ENTRY]?: Entry; _parent?: { [ENTRY]?: Entry } | null };
    return s[ENTRY] ?? s._parent?.[ENTRY] ?? undefined;
  } catch {
    return undefined;
  }
}

/** The peer's IP address with an IPv4-mapped IPv6 address (`::ffff:10.0.0.1`) written as IPv4. */
export function normalizeAddress(address: string | undefined): string | undefined {
  if (address === undefined || address === '') return undefined;
  return address.toLowerCase().startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}
