import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError } from '@connectrpc/connect';
import type { BessSpec } from '../../gen/powerplane/v1/devices_pb.ts';
import type { ModbusEndpoint } from '../../src/modbus/types.ts';
import type { Api } from './api-clients.ts';
import { registerBattery } from './fleet.ts';
import { sleep } from './wait.ts';

/** A registered battery: its index in the simulator, its registry id and where it answers. */
export interface FleetBattery {
  readonly index: number;
  readonly id: string;
  readonly endpoint: ModbusEndpoint;
}

/** A registered site and its batteries. */
export interface FleetSite {
  readonly site: string;
  readonly batteries: readonly FleetBattery[];
}

/** Retries of a call refused with RESOURCE_EXHAUSTED (a rate limit), one second apart. */
const RATE_RETRIES = 120;

/** Calls `call`, waiting a second and trying again while a rate limit refuses it (bounded). */
export async function withinRateLimit<T>(call: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await call();
    } catch (err) {
      if (!(err instanceof ConnectError) || err.code !== Code.ResourceExhausted || attempt >= RATE_RETRIES) throw err;
      await sleep(1_000);
    }
  }
}

/**
 * Registers sites of batteries through the public API, the calls spread round-robin over
 * `apis` (any replica serves every call; each replica has its own rate limits), 16 at a
 * time. Battery `k` of the whole plan is simulator battery `firstIndex + k`. Batteries get
 * 100 kW each way, one inverter block and `spec` on top.
 */
export async function registerSites(
  apis: readonly Api[],
  endpoints: readonly ModbusEndpoint[],
  plan: ReadonlyArray<{ readonly site: string; readonly batteries: number }>,
  options: { readonly firstIndex?: number; readonly spec?: Partial<Omit<BessSpec, '$typeName' | 'modbus'>> } = {},
): Promise<FleetSite[]> {
  const jobs: Array<{ site: string; name: string; index: number }> = [];
  let index = options.firstIndex ?? 0;
  for (const { site, batteries } of plan)
    for (let b = 0; b < batteries; b++) jobs.push({ site, name: `${site}-bess-${b}`, index: index++ });
  if (index > endpoints.length) throw new RangeError(`the plan needs ${index} simulated batteries (there are ${endpoints.length})`);
  const ids = new Map<number, string>();
  let n = 0;
  const worker = async () => {
    for (let job = jobs.shift(); job; job = jobs.shift()) {
      const api = apis[n++ % apis.length]!;
      const { site, name, index: i } = job;
      ids.set(
        i,
        await withinRateLimit(() => registerBattery(api.registry, site, name, endpoints[i]!, { inverterBlockCount: 1, ...options.spec })),
      );
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  index = options.firstIndex ?? 0;
  return plan.map(({ site, batteries }) => ({
    site,
    batteries: Array.from({ length: batteries }, () => {
      const i = index++;
      return { index: i, id: ids.get(i)!, endpoint: endpoints[i]! };
    }),
  }));
}

/**
 * Submits `kw` for the whole of `target` (a site, split over its batteries, or one battery)
 * from a second ago for ten minutes, through `api`, with request id `requestId`.
 */
export async function submitPower(api: Api, target: { site: string } | { deviceId: string }, kw: number, requestId: string) {
  return withinRateLimit(() =>
    api.dispatch.submitDispatch({
      requestId,
      target: 'site' in target ? { case: 'site', value: target.site } : { case: 'deviceId', value: target.deviceId },
      intervals: [
        {
          startTime: timestampFromMs(Date.now() - 1_000),
          endTime: timestampFromMs(Date.now() + 600_000),
          command: { case: 'powerKw', value: kw },
        },
      ],
    }),
  );
}
