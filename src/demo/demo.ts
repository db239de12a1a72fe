import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { create } from '@bufbuild/protobuf';
import { createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { sql } from 'kysely';
import { DeviceRegistryService, DeviceSchema, DeviceType, RegisterProfile } from '../../gen/powerplane/v1/devices_pb.ts';
import { DispatchService } from '../../gen/powerplane/v1/dispatch_pb.ts';
import { ReadingsService } from '../../gen/powerplane/v1/readings_pb.ts';
import { createAgent, type Agent } from '../agent/agent.ts';
import { parseSiteConfig } from '../agent/agent-config.ts';
import { toConfig } from '../config.ts';
import type { Logger } from '../logger.ts';
import { startServer, type Server } from '../server/server.ts';
import { startSimulator, type SimulatedDevice, type Simulator } from '../simulator/simulator.ts';
import { bearer } from '../auth/bearer.ts';
import { demoTokens } from './demo-tokens.ts';
import { publishMarketData, SCENARIO, type ScenarioContext } from './scenario.ts';
import { renderView } from './view.ts';

/** Options of {@link runDemo}. */
export interface DemoOptions {
  /** Short timings (a run well under two minutes). */
  readonly quick: boolean;
  /** Where the control plane listens; default 127.0.0.1:50051 (port 0 in tests). */
  readonly listen: string;
  /** Receives the live view and progress lines. */
  readonly out: (text: string) => void;
  /** Redraw the view in place (a terminal) instead of printing it each step. */
  readonly redraw: boolean;
  readonly log: Logger;
  /** Aborting stops the demo early (Ctrl-C); the summary still comes. */
  readonly signal?: AbortSignal;
}

/** What the demo did, as its last line prints it. */
export interface DemoSummary {
  readonly sites: number;
  readonly batteries: number;
  readonly readings_stored: number;
  readonly setpoints_verified: number;
  readonly dispatches: number;
}

const SITES = 3;
const BATTERIES_PER_SITE = 2;

/**
 * Runs the whole story in one process tree: the control plane on embedded storage (a fresh
 * data directory), a simulated fleet (3 sites, each a meter and 2 batteries) over Modbus
 * TCP, an edge agent per site streaming readings over gRPC, and a synthetic trading desk
 * and operator (market data every step, schedules, NIV chase, an override, a
 * cancellation). A view of every site is drawn as it goes; everything started is stopped.
 */
export async function runDemo(options: DemoOptions): Promise<DemoSummary> {
  const stepMs = options.quick ? 3_000 : 10_000;
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'powerplane-demo-'));
  const agents: Agent[] = [];
  let sim: Simulator | undefined;
  let server: Server | undefined;
  try {
    sim = await startSimulator({ bess: SITES * BATTERIES_PER_SITE, meters: SITES, log: options.log });
    const base = toConfig({ listen: options.listen, dataDir: path.join(dataDir, 'db') });
    // Faster control period than production's 4 s so each step shows its effect quickly.
    server = await startServer(
      { ...base, dispatch: { ...base.dispatch, controlPeriodMs: 1_000, maxTelemetryAgeMs: 15_000 } },
      { log: options.log },
    );
    const url = `http://${server.address.host}:${server.address.port}`;
    // Authentication is on, as in production: the first start wrote an admin token; the demo
    // uses it only to hand out narrower tokens, one per role, as an operator would.
    const auth = await demoTokens(url, base.auth.adminTokenFile!, SITES);
    options.out(`Powerplane demo: control plane on ${url} (console: ${url}/#token=${auth.viewer}), data in ${dataDir}\n`);
    const transport = createGrpcTransport({ baseUrl: url, interceptors: [bearer(auth.trader)] });
    const registry = createClient(DeviceRegistryService, createGrpcTransport({ baseUrl: url, interceptors: [bearer(auth.admin)] }));
    const dispatch = createClient(DispatchService, transport);

    const sites: ScenarioContext['sites'][number][] = [];
    for (let s = 0; s < SITES; s++) {
      const site = `site-${s + 1}`;
      const batteries = sim.bess.slice(s * BATTERIES_PER_SITE, (s + 1) * BATTERIES_PER_SITE);
      const meter = sim.meters[s]!;
      const batteryIds: string[] = [];
      const devices = [];
      for (const [i, b] of batteries.entries()) {
        const id = await register(registry, site, `${site}-bess-${i + 1}`, b, 'bess');
        batteryIds.push(id);
        devices.push({ deviceId: id, kind: 'bess', endpoint: b.endpoint, profile: 'sunspec', pollingIntervalMs: 1_000 });
      }
      const meterId = await register(registry, site, `${site}-meter`, meter, 'meter');
      devices.push({ deviceId: meterId, kind: 'meter', endpoint: meter.endpoint, profile: 'sunspec', pollingIntervalMs: 1_000 });
      sites.push({ site, batteryIds });
      const config = parseSiteConfig({
        site,
        server: { url, token: auth.agents[s]! },
        devices,
        spool: { dir: path.join(dataDir, 'spool', site) },
        batch: { maxReadings: 100, maxDelayMs: 500 },
      });
      const agent = createAgent(config, { log: options.log.child({ site }) });
      await agent.start();
      agents.push(agent);
    }

    const ctx: ScenarioContext = { dispatch, sites, stepMs };
    const readings = createClient(ReadingsService, transport);
    const view = () => renderView({ dispatch, readings }, sites);
    for (const [i, step] of SCENARIO.entries()) {
      if (options.signal?.aborted) break;
      await publishMarketData(ctx, i);
      const what = await step.run(ctx);
      const heading = `[${i + 1}/${SCENARIO.length}] ${step.title}: ${what}`;
      const draw = async () => options.out(`${options.redraw ? '\x1b[2J\x1b[H' : ''}${heading}\n${await view()}\n`);
      // A terminal is redrawn every second; a log gets the view once, at the end of the
      // step, when the step's effect has reached the batteries.
      if (options.redraw) await sleep(stepMs, options.signal, draw, 1_000);
      else {
        await sleep(stepMs, options.signal, async () => undefined, stepMs);
        await draw().catch(() => undefined);
      }
    }
    const summary = await summarise(server, sites);
    options.out(
      `\nSummary: ${summary.sites} sites, ${summary.batteries} batteries, ${summary.readings_stored} readings stored, ` +
        `${summary.setpoints_verified} setpoints verified on batteries, ${summary.dispatches} dispatch instructions.\n`,
    );
    return summary;
  } finally {
    await Promise.allSettled(agents.map((a) => a.stop({ drainMs: 2_000 })));
    await server?.stop();
    await sim?.stop();
    await fs.rm(dataDir, { recursive: true, force: true });
  }
}

async function register(
  registry: ReturnType<typeof createClient<typeof DeviceRegistryService>>,
  site: string,
  name: string,
  device: SimulatedDevice,
  kind: 'bess' | 'meter',
): Promise<string> {
  const modbus = {
    endpoint: { host: device.endpoint.host, port: device.endpoint.port, unitId: device.endpoint.unitId },
    registerProfile: RegisterProfile.SUNSPEC,
  };
  const spec =
    kind === 'bess'
      ? {
          case: 'bess' as const,
          value: {
            ratedChargePowerKw: 100,
            ratedDischargePowerKw: 100,
            capacityKwh: 200,
            minSoePercent: 10,
            maxSoePercent: 90,
            inverterBlockCount: 1,
            reversionTimeoutS: 10,
            modbus,
          },
        }
      : { case: 'meter' as const, value: { modbus } };
  const { device: created } = await registry.createDevice({
    device: create(DeviceSchema, {
      name,
      site,
      type: kind === 'bess' ? DeviceType.BESS : DeviceType.METER,
      spec,
      metadata: { origin: 'demo' },
    }),
  });
  return created!.id;
}

async function summarise(server: Server, sites: ScenarioContext['sites']): Promise<DemoSummary> {
  const db = server.database.db;
  const count = async (query: ReturnType<typeof sql<{ n: number }>>) => Number((await query.execute(db)).rows[0]?.n ?? 0);
  return {
    sites: sites.length,
    batteries: sites.reduce((n, s) => n + s.batteryIds.length, 0),
    readings_stored:
      (await count(sql<{ n: number }>`select count(*)::int as n from flux.mg_bess_readings`)) +
      (await count(sql<{ n: number }>`select count(*)::int as n from flux.mg_meter_readings`)),
    setpoints_verified: await count(sql<{ n: number }>`select count(*)::int as n from powerplane.setpoint_events where phase = 'VERIFIED'`),
    dispatches: await count(sql<{ n: number }>`select count(*)::int as n from powerplane.dispatch_instructions`),
  };
}

/** Waits `ms` (or until aborted), calling `tick` every `everyMs` meanwhile. */
async function sleep(ms: number, signal: AbortSignal | undefined, tick: () => Promise<void>, everyMs: number): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end && !signal?.aborted) {
    await tick().catch(() => undefined);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, Math.min(everyMs, Math.max(0, end - Date.now())));
      signal?.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
    });
  }
}
