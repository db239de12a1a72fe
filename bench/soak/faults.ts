/**
 * The soak's fault schedule: every link (each agent's, the trading desk's) goes through the
 * same cycle of faults, each link starting at a different step so faults overlap in every
 * combination over a run.
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { TcpProxy } from '../../test/support/tcp-proxy.ts';

/** One step: what is done to the link, and how long that state is held. */
interface FaultStep {
  readonly name: string;
  readonly apply: (proxy: TcpProxy) => void;
  readonly holdMs: number;
}

/** 26 s a cycle: clean stretches between latency, a reset, a blackhole and a cut. */
const CYCLE: readonly FaultStep[] = [
  { name: 'clean', apply: (p) => p.heal(), holdMs: 6_000 },
  { name: 'latency', apply: (p) => p.latency(150), holdMs: 4_000 },
  // A reset while the latency holds: chunks in flight are lost with the connection.
  { name: 'reset', apply: (p) => p.reset(), holdMs: 3_000 },
  { name: 'clean', apply: (p) => p.heal(), holdMs: 4_000 },
  { name: 'blackhole', apply: (p) => p.blackhole(), holdMs: 3_000 },
  { name: 'clean', apply: (p) => p.heal(), holdMs: 4_000 },
  { name: 'cut', apply: (p) => p.cut(), holdMs: 2_000 },
];

/** How many times each fault was applied, over all links. */
export type FaultCounts = Map<string, number>;

/**
 * Runs the cycle on `proxy` from step `offset` until `signal` aborts, then heals the link.
 * Counts every fault it applies in `counts`.
 */
export async function runFaultCycle(proxy: TcpProxy, offset: number, signal: AbortSignal, counts: FaultCounts): Promise<void> {
  for (let step = offset; !signal.aborted; step++) {
    const fault = CYCLE[step % CYCLE.length]!;
    fault.apply(proxy);
    if (fault.name !== 'clean') counts.set(fault.name, (counts.get(fault.name) ?? 0) + 1);
    await delay(fault.holdMs, undefined, { signal }).catch(() => undefined);
  }
  proxy.heal();
}
