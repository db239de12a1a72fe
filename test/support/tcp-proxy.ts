import net from 'node:net';

/**
 * A TCP fault proxy on 127.0.0.1 between a test's client and a peer. Faults apply to the
 * connections already open and to new ones, and can be switched at any time:
 * - {@link TcpProxy.cut}: every connection is closed (FIN) and new ones are closed at once;
 * - {@link TcpProxy.latency}: every chunk is forwarded `ms` later, in order, both ways;
 * - {@link TcpProxy.reset}: every open connection is aborted with a TCP RST, both sides;
 * - {@link TcpProxy.blackhole}: connections are accepted and whatever arrives is swallowed,
 *   nothing is forwarded or answered, nothing is closed (the peers only find out by timeout);
 * - {@link TcpProxy.stall}: the connections open now stop carrying bytes, unclosed (a
 *   half-open connection, as after a NAT dropped the flow); new connections are clean;
 * - {@link TcpProxy.heal}: back to a clean link. A connection that lost bytes to the
 *   blackhole is destroyed then, as a real connection would break after losing data;
 *   the others carry on.
 */
export interface TcpProxy {
  readonly port: number;
  /** Drops every connection and refuses new ones until {@link TcpProxy.restore} (or heal). */
  cut(): void;
  /** Accepts connections again after a cut. */
  restore(): void;
  /** Delays every chunk by `ms` in both directions (0 removes the delay). */
  latency(ms: number): void;
  /** Aborts every open connection with RST on both sides; new connections are still accepted. */
  reset(): void;
  /** Accepts connections but forwards nothing and answers nothing, until {@link TcpProxy.heal}. */
  blackhole(): void;
  /** Swallows whatever the connections open now carry, without closing them; new connections are not touched. */
  stall(): void;
  /** Ends every fault: no latency, no blackhole, accepting connections. */
  heal(): void;
  /** Counters since the start: connections accepted, open now, aborted by reset, bytes swallowed. */
  stats(): TcpProxyStats;
  close(): Promise<void>;
}

/** What a {@link TcpProxy} has seen. */
export interface TcpProxyStats {
  readonly accepted: number;
  readonly open: number;
  readonly resets: number;
  readonly swallowedBytes: number;
}

interface Link {
  readonly client: net.Socket;
  /** Absent for a connection accepted into the blackhole (never connected upstream). */
  readonly upstream: net.Socket | undefined;
  /** Bytes were swallowed: the byte stream is broken and the link must not resume. */
  broken: boolean;
}

/** Starts a proxy to `target` on 127.0.0.1 port 0. */
export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const links = new Set<Link>();
  let accepting = true;
  let delayMs = 0;
  let swallowing = false;
  const counters = { accepted: 0, resets: 0, swallowedBytes: 0 };

  const drop = (link: Link) => {
    link.client.destroy();
    link.upstream?.destroy();
    links.delete(link);
  };

  /** Forwards `from` to `to` chunk by chunk, delayed while latency is set, swallowed while blackholed. */
  const forward = (link: Link, from: net.Socket, to: net.Socket) => {
    // One queue per direction keeps the order of chunks when the latency changes.
    const queue: Array<{ chunk: Buffer; due: number }> = [];
    let timer: NodeJS.Timeout | undefined;
    let ended = false;
    const drain = () => {
      timer = undefined;
      const now = Date.now();
      while (queue.length > 0 && queue[0]!.due <= now) to.write(queue.shift()!.chunk);
      if (queue.length > 0) timer = setTimeout(drain, queue[0]!.due - now);
      else if (ended) to.end();
    };
    from.on('data', (chunk: Buffer) => {
      if (swallowing || link.broken) {
        link.broken = true;
        counters.swallowedBytes += chunk.length;
        return;
      }
      if (delayMs === 0 && queue.length === 0) {
        to.write(chunk);
        return;
      }
      queue.push({ chunk, due: Date.now() + delayMs });
      timer ??= setTimeout(drain, delayMs);
    });
    from.on('end', () => {
      ended = true;
      if (queue.length === 0 && !link.broken) to.end();
    });
    from.on('close', () => clearTimeout(timer));
  };

  const server = net.createServer((client) => {
    counters.accepted++;
    if (!accepting) return client.destroy();
    client.setNoDelay(true);
    if (swallowing) {
      // The blackhole: accepted, read and dropped, never connected upstream.
      const link: Link = { client, upstream: undefined, broken: true };
      links.add(link);
      client.on('data', (chunk: Buffer) => (counters.swallowedBytes += chunk.length));
      client.on('error', () => drop(link)).on('close', () => drop(link));
      return;
    }
    const upstream = net.connect(target.port, target.host);
    upstream.setNoDelay(true);
    const link: Link = { client, upstream, broken: false };
    links.add(link);
    client.on('error', () => drop(link)).on('close', () => drop(link));
    upstream.on('error', () => drop(link)).on('close', () => drop(link));
    forward(link, client, upstream);
    forward(link, upstream, client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));

  const closeAll = () => {
    for (const link of links) drop(link);
  };
  return {
    port: (server.address() as net.AddressInfo).port,
    cut() {
      accepting = false;
      closeAll();
    },
    restore() {
      accepting = true;
    },
    latency(ms) {
      if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`latency must be a non-negative number of ms (got ${ms})`);
      delayMs = ms;
    },
    reset() {
      for (const link of links) {
        counters.resets++;
        // RST rather than FIN: the peers see ECONNRESET, as after a crashed middlebox.
        for (const socket of [link.client, link.upstream]) {
          if (socket && !socket.destroyed) socket.resetAndDestroy();
        }
        links.delete(link);
      }
    },
    blackhole() {
      swallowing = true;
    },
    stall() {
      for (const link of links) link.broken = true;
    },
    heal() {
      accepting = true;
      delayMs = 0;
      swallowing = false;
      for (const link of links) if (link.broken) drop(link);
    },
    stats: () => ({ ...counters, open: links.size }),
    close() {
      accepting = false;
      closeAll();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
