/**
 * The child side of `sim-process.ts`: simulated SunSpec batteries on the `fast` transport
 * and, when asked, an edge agent per site polling them, in a process of their own (as
 * batteries and agents are other machines), answering the parent over the IPC channel.
 * Its write log is folded into spans (one per battery and client connection) as it goes,
 * so a long run keeps a record per battery and connection, not every write. It exits when
 * the parent says `stop` or the IPC channel closes (the parent died).
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createAgent, type Agent } from '../../src/agent/agent.ts';
import { parseSiteConfig } from '../../src/agent/agent-config.ts';
import { createLogger } from '../../src/logger.ts';
import { startSimulator } from '../../src/simulator/simulator.ts';
import { createSpanCollector } from './write-spans.ts';
import type { SimAgentSite, SimRequest, SimResponse } from './sim-process.ts';

const bess = Number(process.argv[2]);
const sim = await startSimulator({ bess, transport: 'fast', writeLogLimit: 1_000_000 });
const spans = createSpanCollector();
let seq = 0;
const drain = () => {
  for (const entry of sim.writeLog.splice(0)) spans.add(entry, seq++);
};
const drainer = setInterval(drain, 50);

const agents: Agent[] = [];
const spoolRoot = await fs.mkdtemp(path.join(os.tmpdir(), 'powerplane-sim-agents-'));
// Agents of a replica that was just killed retry noisily; their warnings are not what a run shows.
const log = createLogger('error');

async function startAgents(sites: readonly SimAgentSite[], pollingIntervalMs: number): Promise<void> {
  await Promise.all(
    sites.map(async (s) => {
      const config = parseSiteConfig({
        site: s.site,
        server: { url: s.url },
        devices: s.batteries.map((b) => ({
          deviceId: b.deviceId,
          kind: 'bess',
          endpoint: b.endpoint,
          profile: 'sunspec',
          pollingIntervalMs,
        })),
        spool: { dir: path.join(spoolRoot, s.site), maxBytes: 16 * 1024 * 1024 },
        batch: { maxReadings: 500, maxDelayMs: 1_000 },
      });
      const agent = createAgent(config, { log: log.child({ site: s.site }), stream: { backoff: { initialMs: 100, maxMs: 1_000 } } });
      agents.push(agent);
      await agent.start();
    }),
  );
}

let stopping: Promise<void> | undefined;
const stop = () =>
  (stopping ??= (async () => {
    clearInterval(drainer);
    await Promise.allSettled(agents.splice(0).map((a) => a.stop()));
    await sim.stop();
    await fs.rm(spoolRoot, { recursive: true, force: true });
  })());

const answer = (response: SimResponse) => process.send?.(response);

process.on('message', (message: SimRequest) => {
  void (async () => {
    try {
      switch (message.op) {
        case 'spans':
          drain();
          return answer({ id: message.id, spans: spans.spans() });
        case 'states':
          return answer({
            id: message.id,
            states: sim.bess.map((d) => {
              const s = d.state();
              return { wsetEna: s.wsetEna ?? 0, wsetW: s.wsetW ?? 0, reversions: s.reversions ?? 0 };
            }),
          });
        case 'agents':
          await startAgents(message.sites, message.pollingIntervalMs);
          return answer({ id: message.id });
        case 'stop':
          await stop();
          answer({ id: message.id });
          process.disconnect();
          return;
        default: {
          const never: never = message;
          throw new Error(`unknown request ${JSON.stringify(never)}`);
        }
      }
    } catch (err) {
      answer({ id: message.id, error: err instanceof Error ? err.message : String(err) });
    }
  })();
});
process.once('disconnect', () => void stop().then(() => process.exit(0)));
answer({ ready: true, endpoints: sim.bess.map((d) => d.endpoint) });
