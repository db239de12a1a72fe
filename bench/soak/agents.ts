/**
 * The soak's edge agents, one per site, each streaming through its own fault proxy, with
 * what the soak measures of them: every reading they produced (to compare with the rows
 * stored) and each batch's time from spooled to acknowledged.
 */
import path from 'node:path';
import { createAgent, type Agent, type AgentStats } from '../../src/agent/agent.ts';
import { parseSiteConfig } from '../../src/agent/agent-config.ts';
import type { StreamClientOptions } from '../../src/agent/stream-client.ts';
import type { Logger } from '../../src/logger.ts';
import type { SimulatedDevice } from '../../src/simulator/simulator.ts';

/** One simulated site as registered in the control plane. */
export interface SoakSite {
  readonly site: string;
  readonly meter: { readonly id: string; readonly device: SimulatedDevice };
  readonly batteries: ReadonlyArray<{ readonly id: string; readonly device: SimulatedDevice }>;
}

/** The running agents and what was measured of them. */
export interface SoakAgents {
  /** Readings produced from successful polls, as `deviceId|epoch ms` (what must be stored). */
  readonly produced: ReadonlySet<string>;
  /** Spooled-to-acknowledged time of every batch, ms, in the order the acks came. */
  readonly ackLatenciesMs: readonly number[];
  stats(): AgentStats[];
  /** Stops polling and waits up to `drainMs` for every spooled batch to be acknowledged. */
  stop(drainMs: number): Promise<void>;
}

/** Options of {@link startSoakAgents}. */
export interface SoakAgentOptions {
  readonly sites: readonly SoakSite[];
  /** `http://127.0.0.1:<port>` of each site's fault proxy, in site order. */
  readonly urls: readonly string[];
  /** Each site's bearer token (telemetry:write, bound to the site), in site order. */
  readonly tokens: readonly string[];
  readonly spoolDir: string;
  readonly pollingIntervalMs: number;
  readonly log: Logger;
}

/**
 * Starts an agent per site. The ack latency is measured from outside the agent: its spool's
 * next sequence number is sampled every 10 ms (a batch counts from when it is seen
 * spooled) and the stream client reports each ack, so a figure is at most 10 ms short.
 */
export async function startSoakAgents(options: SoakAgentOptions): Promise<SoakAgents> {
  const produced = new Set<string>();
  const ackLatenciesMs: number[] = [];
  const agents: Agent[] = [];
  const spooledAt: Array<Map<bigint, number>> = [];
  for (const [n, site] of options.sites.entries()) {
    const appeared = new Map<bigint, number>();
    spooledAt.push(appeared);
    // `onAck` is passed through the agent's stream tuning to its stream client.
    const stream: Pick<StreamClientOptions, 'backoff' | 'ackTimeoutMs' | 'keepaliveMs' | 'onAck'> = {
      backoff: { initialMs: 100, maxMs: 2_000 },
      ackTimeoutMs: 2_000,
      keepaliveMs: 2_000,
      onAck: (ack) => {
        const at = appeared.get(ack.sequence);
        if (at === undefined) return;
        appeared.delete(ack.sequence);
        ackLatenciesMs.push(performance.now() - at);
      },
    };
    const device = (id: string, kind: 'meter' | 'bess', d: SimulatedDevice) => ({
      deviceId: id,
      kind,
      endpoint: d.endpoint,
      profile: 'sunspec',
      pollingIntervalMs: options.pollingIntervalMs,
    });
    const config = parseSiteConfig({
      site: site.site,
      server: { url: options.urls[n], token: options.tokens[n] },
      devices: [device(site.meter.id, 'meter', site.meter.device), ...site.batteries.map((b) => device(b.id, 'bess', b.device))],
      spool: { dir: path.join(options.spoolDir, site.site), maxBytes: 64 * 1024 * 1024 },
      batch: { maxReadings: 50, maxDelayMs: 500 },
    });
    const agent = createAgent(config, {
      log: options.log.child({ site: site.site }),
      stream,
      modbusTimeoutMs: 1_000,
      onReading: (d, r) => {
        if (r.error === undefined && (r.bess || r.meter)) produced.add(`${d.deviceId}|${r.time.getTime()}`);
      },
    });
    await agent.start();
    agents.push(agent);
  }
  const next = agents.map(() => 1n);
  const sampler = setInterval(() => {
    const now = performance.now();
    agents.forEach((agent, n) => {
      const upTo = agent.stats().spool.nextSequence;
      for (let s = next[n]!; s < upTo; s++) spooledAt[n]!.set(s, now);
      next[n] = upTo;
    });
  }, 10);
  return {
    produced,
    ackLatenciesMs,
    stats: () => agents.map((a) => a.stats()),
    async stop(drainMs) {
      clearInterval(sampler);
      await Promise.all(agents.map((a) => a.stop({ drainMs })));
    },
  };
}
