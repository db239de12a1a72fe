import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import type { ModbusEndpoint } from '../../src/modbus/types.ts';
import type { WriteSpan } from './write-spans.ts';

/** One site's agent: where it streams, and its batteries' registry ids and Modbus endpoints. */
export interface SimAgentSite {
  readonly site: string;
  /** `http://127.0.0.1:<port>` of the replica it streams to. */
  readonly url: string;
  readonly batteries: ReadonlyArray<{ readonly deviceId: string; readonly endpoint: ModbusEndpoint }>;
}

/** A battery's state as the simulator holds it: the setpoint it follows and how often it fell back. */
export interface SimBatteryState {
  /** 1 while a remote setpoint is enabled (704 `WSetEna`). */
  readonly wsetEna: number;
  /** The setpoint it follows, W, positive = discharge. */
  readonly wsetW: number;
  /** Times its reversion timer fired (no refresh within the reversion timeout). */
  readonly reversions: number;
}

/** What the parent asks of the child (`sim-process-main.ts`). */
export type SimCommand =
  | { readonly op: 'spans' }
  | { readonly op: 'states' }
  | { readonly op: 'agents'; readonly sites: readonly SimAgentSite[]; readonly pollingIntervalMs: number }
  | { readonly op: 'stop' };

/** A command with the id its answer carries. */
export type SimRequest = SimCommand & { readonly id: number };

/** What the child answers. */
export type SimResponse = { readonly ready: true; readonly endpoints: ModbusEndpoint[] } | SimAnswer;

/** The answer to one {@link SimRequest}. */
export interface SimAnswer {
  readonly id: number;
  readonly spans?: WriteSpan[];
  readonly states?: SimBatteryState[];
  readonly error?: string;
}

/** Simulated batteries (and their sites' agents) in a process of their own. */
export interface SimProcess {
  /** Battery `i`'s Modbus endpoint. */
  readonly bess: readonly ModbusEndpoint[];
  /** Every (battery, connection) span of writes so far. */
  spans(): Promise<WriteSpan[]>;
  /** Every battery's state now, in index order. */
  states(): Promise<SimBatteryState[]>;
  /** Starts an agent per site in this process, each polling its batteries (here or in another process) every `pollingIntervalMs`. */
  startAgents(sites: readonly SimAgentSite[], pollingIntervalMs: number): Promise<void>;
  /** Stops agents and simulator and waits for the process to exit (SIGKILL after 10 s). Idempotent. */
  stop(): Promise<void>;
}

const MAIN = path.join(import.meta.dirname, 'sim-process-main.ts');
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/**
 * Forks `sim-process-main.ts` with `bess` SunSpec batteries (Modbus TCP on 127.0.0.1, port
 * 0, the `fast` transport) and resolves once they listen; bounded to 60 s. Each request to
 * it is bounded to 30 s (starting agents, 2 s more per site). With `bess` 0 it only hosts agents (a benchmark keeps them apart
 * from the batteries, so polling does not slow the batteries' answers to setpoints).
 */
export async function startSimProcess(bess: number): Promise<SimProcess> {
  const child = fork(MAIN, [String(bess)], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  running.add(child);
  const exited = once(child, 'exit').then(() => running.delete(child));
  let next = 1;
  const pending = new Map<number, { resolve: (r: SimAnswer) => void; reject: (e: Error) => void }>();
  let ready: ((endpoints: ModbusEndpoint[]) => void) | undefined;
  child.on('message', (message: SimResponse) => {
    if ('ready' in message) return ready?.(message.endpoints);
    const waiter = pending.get(message.id);
    pending.delete(message.id);
    if (message.error) waiter?.reject(new Error(`simulator process: ${message.error}`));
    else waiter?.resolve(message);
  });
  void exited.then(() => {
    for (const waiter of pending.values()) waiter.reject(new Error('simulator process exited'));
    pending.clear();
  });
  const kill = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  };

  const endpoints = await new Promise<ModbusEndpoint[]>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`simulator process did not start within 60 s`)), 60_000);
    ready = (e) => {
      clearTimeout(timer);
      resolve(e);
    };
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`simulator process exited (${child.exitCode ?? child.signalCode}) before serving`));
    });
  }).catch(async (err: unknown) => {
    await kill();
    throw err;
  });

  const request = (body: SimCommand, timeoutMs = 30_000): Promise<SimAnswer> => {
    const id = next++;
    return new Promise<SimAnswer>((resolve, reject) => {
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error(`simulator process did not answer ${body.op} within ${timeoutMs} ms`));
      }, timeoutMs);
      pending.set(id, {
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      if (!child.connected) return pending.get(id)!.reject(new Error('simulator process is not running'));
      child.send({ ...body, id });
    });
  };

  let stopping: Promise<void> | undefined;
  return {
    bess: endpoints,
    spans: async () => (await request({ op: 'spans' })).spans ?? [],
    states: async () => (await request({ op: 'states' })).states ?? [],
    startAgents: async (sites, pollingIntervalMs) => {
      // Each agent opens its spool and discovers its batteries' SunSpec models first.
      await request({ op: 'agents', sites, pollingIntervalMs }, 30_000 + 2_000 * sites.length);
    },
    stop: () =>
      (stopping ??= (async () => {
        const timer = setTimeout(() => void kill(), 10_000);
        await request({ op: 'stop' }).catch(() => undefined);
        await exited;
        clearTimeout(timer);
      })()),
  };
}

/**
 * `total` batteries over `processes` simulator processes (as even as can be), seen as one:
 * battery `i` is the `i`-th of the concatenation, spans and states are concatenated in the
 * same order. One process answers every request on one event loop; several let a large
 * fleet's answers go out on every core. Agents run in the first process.
 */
export async function startSimProcesses(total: number, processes: number): Promise<SimProcess> {
  const sizes = Array.from({ length: processes }, (_, i) => Math.floor(total / processes) + (i < total % processes ? 1 : 0));
  const started = await Promise.allSettled(sizes.map((n) => startSimProcess(n)));
  const sims = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const failed = started.find((s) => s.status === 'rejected');
  if (failed) {
    await Promise.all(sims.map((s) => s.stop()));
    throw (failed as PromiseRejectedResult).reason;
  }
  return {
    bess: sims.flatMap((s) => s.bess),
    spans: async () => (await Promise.all(sims.map((s) => s.spans()))).flat(),
    states: async () => (await Promise.all(sims.map((s) => s.states()))).flat(),
    startAgents: (sites, pollingIntervalMs) => sims[0]!.startAgents(sites, pollingIntervalMs),
    stop: async () => {
      await Promise.all(sims.map((s) => s.stop()));
    },
  };
}
