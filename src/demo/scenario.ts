import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import type { Client } from '@connectrpc/connect';
import { ControlMode, DispatchAction, DispatchState, type DispatchService } from '../../gen/powerplane/v1/dispatch_pb.ts';

/** One step of the demo's story, run by the synthetic trading desk and an operator. */
export interface ScenarioStep {
  readonly title: string;
  run(ctx: ScenarioContext): Promise<string>;
}

/** What a step can use: the API client, the sites and their batteries, and the step length. */
export interface ScenarioContext {
  readonly dispatch: Client<typeof DispatchService>;
  readonly sites: ReadonlyArray<{ site: string; batteryIds: string[] }>;
  readonly stepMs: number;
}

const window = (startMs: number, lengthMs: number) => ({
  startTime: timestampFromMs(startMs),
  endTime: timestampFromMs(startMs + lengthMs),
});

/** Publishes one settlement period's market data: NIV estimate, imbalance and wholesale price. */
export async function publishMarketData(ctx: ScenarioContext, tick: number): Promise<void> {
  const time = timestampFromMs(Date.now() - 1_000);
  const niv = Math.round(250 * Math.sin(tick / 3));
  await ctx.dispatch.publishMarketData({
    points: [
      { time, type: 'niv_estimate', value: niv, metadata: { origin: 'demo' } },
      { time, type: 'imbalance_price', value: 60 + niv / 4, metadata: { origin: 'demo' } },
      { time, type: 'wholesale_price', value: 55 + 10 * Math.cos(tick / 4), metadata: { origin: 'demo' } },
    ],
  });
}

/**
 * The story: a schedule per site (discharge, charge, a charge-max action), NIV chase switched
 * on at the third site, an operator override and its release, a cancellation, and the end of
 * every instruction returning the batteries to local control.
 */
export const SCENARIO: readonly ScenarioStep[] = [
  {
    title: 'trader schedules site-1 to discharge 150 kW and site-2 to charge 100 kW',
    async run(ctx) {
      const [one, two] = ctx.sites;
      // Site-2's window outlasts the story, so the trader's cancellation (step 5) ends it.
      for (const [target, kw, id, steps] of [
        [one!, 150, 'demo-site-1', 4],
        [two!, -100, 'demo-site-2', 8],
      ] as const) {
        await ctx.dispatch.submitDispatch({
          requestId: id,
          target: { case: 'site', value: target.site },
          intervals: [{ ...window(Date.now() - 500, steps * ctx.stepMs), command: { case: 'powerKw', value: kw } }],
        });
      }
      return `${one!.site} +150 kW for ${(4 * ctx.stepMs) / 1000} s, ${two!.site} -100 kW for ${(8 * ctx.stepMs) / 1000} s`;
    },
  },
  {
    title: 'site-3 opts into NIV chase and charges at full power on an Axle-style CHARGE_MAX',
    async run(ctx) {
      const three = ctx.sites[2]!;
      await ctx.dispatch.setSiteConfig({
        config: { site: three.site, nivChase: { enabled: true, nivThresholdMw: 100, shortPriceThreshold: 70, longPriceThreshold: 50 } },
      });
      await ctx.dispatch.submitDispatch({
        requestId: 'demo-site-3-charge-max',
        target: { case: 'site', value: three.site },
        intervals: [{ ...window(Date.now() - 500, 2 * ctx.stepMs), command: { case: 'action', value: DispatchAction.CHARGE_MAX } }],
      });
      return `${three.site}: CHARGE_MAX for ${(2 * ctx.stepMs) / 1000} s, then NIV chase`;
    },
  },
  {
    title: 'operator overrides one site-1 battery by hand (MANUAL -30 kW)',
    async run(ctx) {
      const battery = ctx.sites[0]!.batteryIds[0]!;
      await ctx.dispatch.setControlMode({
        deviceId: battery,
        mode: ControlMode.MANUAL,
        manualPowerKw: -30,
        expireTime: timestampFromMs(Date.now() + 10 * ctx.stepMs),
        reason: 'demo: site maintenance test',
      });
      return `${battery.slice(0, 8)} held at -30 kW; the other battery takes the site's schedule`;
    },
  },
  {
    title: 'operator releases the override; dispatch resumes',
    async run(ctx) {
      const battery = ctx.sites[0]!.batteryIds[0]!;
      await ctx.dispatch.setControlMode({ deviceId: battery, mode: ControlMode.AUTOMATIC, reason: 'demo: test done' });
      return `${battery.slice(0, 8)} back to automatic`;
    },
  },
  {
    title: 'trader cancels site-2 schedule early',
    async run(ctx) {
      const site2 = ctx.sites[1]!.site;
      const list = await ctx.dispatch.listDispatches({ site: site2, state: DispatchState.ACTIVE });
      const active = list.instructions.find((i) => i.requestId === 'demo-site-2');
      if (active) await ctx.dispatch.cancelDispatch({ id: active.id, reason: 'demo: position closed' });
      return active ? `instruction ${active.id.slice(0, 8)} cancelled; site-2 returns to local control` : 'nothing to cancel';
    },
  },
  {
    title: 'schedules end; batteries return to local control at 0 kW',
    async run() {
      return 'waiting for the windows to close';
    },
  },
];
