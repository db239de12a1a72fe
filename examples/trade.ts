/**
 * A trading loop in miniature, through `powerplane/client` as an integrator would write it:
 * publish a NIV estimate and an imbalance price for the current settlement period, dispatch
 * a site (one request id, so the call is safe to retry), then watch the setpoints until
 * every active battery of the site holds the dispatch (VERIFIED) or one fails.
 *
 *   npx tsx examples/trade.ts --target 127.0.0.1:50051 --token "$(cat .powerplane/admin.token)" --site site-a [--kw 20]
 *
 * `--kw` is the site's power, positive = discharge (export), negative = charge; the control
 * plane splits it across the site's batteries. `--target` is HOST:PORT (cleartext) or an
 * http:// or https:// URL. Exit code: 0 every battery verified, 1 one failed, 2 not all
 * verified within 60 s, 3 the trade could not be placed (bad flags, a refused call, no
 * active battery at the site).
 */
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import {
  Code,
  ConnectError,
  createPowerplaneClient,
  DeviceType,
  listAll,
  SetpointPhase,
  timestampDate,
  timestampFromMs,
  type Device,
  type PowerplaneClient,
  type SetpointEvent,
} from 'powerplane/client';

/** How long the example waits for every battery to verify, ms. */
const VERIFY_TIMEOUT_MS = 60_000;
/** How long the dispatch lasts from now, ms. */
const DISPATCH_MS = 15 * 60_000;
/** A GB settlement period, ms. */
const SETTLEMENT_PERIOD_MS = 30 * 60_000;
/** The market view published with the trade: a short system (positive NIV) and its price. */
const NIV_ESTIMATE_MW = 120;
const IMBALANCE_PRICE_GBP_PER_MWH = 95;

const USAGE = 'usage: trade.ts --target HOST:PORT --token TOKEN --site SITE [--kw 20]';

/** What the watch concluded. */
type Outcome = { readonly kind: 'verified' } | { readonly kind: 'failed'; readonly event: SetpointEvent } | { readonly kind: 'timeout' };

function parseFlags(argv: string[]): { baseUrl: string; token: string; site: string; kw: number } {
  const { values } = parseArgs({
    args: argv,
    options: { target: { type: 'string' }, token: { type: 'string' }, site: { type: 'string' }, kw: { type: 'string', default: '20' } },
    strict: true,
  });
  for (const flag of ['target', 'token', 'site'] as const) {
    if (!values[flag]) throw new Error(`--${flag} is required`);
  }
  const kw = Number(values.kw);
  if (values.kw!.trim() === '' || !Number.isFinite(kw)) throw new Error(`--kw must be a number of kW (got ${values.kw})`);
  const target = values.target!;
  const baseUrl = /^https?:\/\//.test(target) ? target : `http://${target}`;
  return { baseUrl, token: values.token!, site: values.site!, kw };
}

async function activeBatteries(client: PowerplaneClient, site: string): Promise<Device[]> {
  const batteries: Device[] = [];
  const request = { site, type: DeviceType.BESS, active: true };
  for await (const device of listAll(client.devices.listDevices, request, (page) => page.devices)) batteries.push(device);
  return batteries;
}

/** Publishes the market view for the settlement period holding `nowMs`; returns the period's start. */
async function publishMarketView(client: PowerplaneClient, nowMs: number): Promise<Date> {
  const periodStart = Math.floor(nowMs / SETTLEMENT_PERIOD_MS) * SETTLEMENT_PERIOD_MS;
  const time = timestampFromMs(periodStart);
  const result = await client.dispatch.publishMarketData({
    points: [
      { time, type: 'niv_estimate', value: NIV_ESTIMATE_MW },
      { time, type: 'imbalance_price', value: IMBALANCE_PRICE_GBP_PER_MWH },
    ],
  });
  console.log(
    `published niv_estimate ${NIV_ESTIMATE_MW} MW and imbalance_price ${IMBALANCE_PRICE_GBP_PER_MWH} GBP/MWh ` +
      `for the period from ${new Date(periodStart).toISOString()} ` +
      `(${result.storedCount} stored, ${result.unchangedCount} unchanged, ${result.revisedCount} revised)`,
  );
  return new Date(periodStart);
}

/**
 * Follows the site's VERIFIED and FAILED setpoint events of the instructions `submit`
 * returns. The watch opens before the dispatch is submitted, and the control state is read
 * once after, so an event that happened before the stream was ready is not missed.
 */
async function dispatchAndWatch(
  client: PowerplaneClient,
  site: string,
  batteries: readonly Device[],
  submit: () => Promise<Set<string>>,
): Promise<{ outcome: Outcome; verified: Map<string, SetpointEvent> }> {
  const waiting = new Set(batteries.map((b) => b.id));
  const verified = new Map<string, SetpointEvent>();
  let ours: Set<string> | undefined;
  const early: SetpointEvent[] = [];
  let decide!: (outcome: Outcome) => void;
  const decided = new Promise<Outcome>((resolve) => (decide = resolve));

  const see = (event: SetpointEvent) => {
    if (!ours) return void early.push(event);
    if (!ours.has(event.instructionId) || !waiting.has(event.deviceId)) return;
    if (event.phase === SetpointPhase.FAILED) return decide({ kind: 'failed', event });
    if (event.phase !== SetpointPhase.VERIFIED) return;
    waiting.delete(event.deviceId);
    verified.set(event.deviceId, event);
    if (waiting.size === 0) decide({ kind: 'verified' });
  };

  const stop = new AbortController();
  const timer = setTimeout(() => decide({ kind: 'timeout' }), VERIFY_TIMEOUT_MS);
  const watching = (async () => {
    const phases = [SetpointPhase.VERIFIED, SetpointPhase.FAILED];
    for await (const event of client.watchSetpoints({ site, phases }, { signal: stop.signal })) see(event);
  })();
  // The watch ends only when this function stops it; ending before that is an error.
  const watchEnded = watching.then(
    () => Promise.reject(new Error('the setpoint stream ended')),
    (err: unknown) => Promise.reject(err instanceof Error ? err : new Error(String(err))),
  );
  watchEnded.catch(() => undefined);

  try {
    ours = await submit();
    for (const event of early.splice(0)) see(event);
    const { states } = await client.dispatch.getControlState({ site });
    for (const state of states) if (state.lastEvent) see(state.lastEvent);
    return { outcome: await Promise.race([decided, watchEnded]), verified };
  } finally {
    clearTimeout(timer);
    stop.abort();
    await watching.catch(() => undefined);
  }
}

async function main(argv: string[]): Promise<number> {
  let flags;
  try {
    flags = parseFlags(argv);
  } catch (err) {
    console.error(`${(err as Error).message}\n${USAGE}`);
    return 3;
  }
  const { baseUrl, token, site, kw } = flags;
  const client = createPowerplaneClient({ baseUrl, token, transport: 'grpc' });
  try {
    const batteries = await activeBatteries(client, site);
    if (batteries.length === 0) {
      console.error(`site ${site} has no active battery`);
      return 3;
    }
    console.log(`${site}: ${batteries.length} active ${batteries.length === 1 ? 'battery' : 'batteries'}`);
    const now = Date.now();
    await publishMarketView(client, now);

    const requestId = randomUUID();
    const end = now + DISPATCH_MS;
    const started = performance.now();
    const { outcome, verified } = await dispatchAndWatch(client, site, batteries, async () => {
      const { instructions } = await client.dispatch.submitDispatch({
        requestId,
        target: { case: 'site', value: site },
        intervals: [{ startTime: timestampFromMs(now), endTime: timestampFromMs(end), command: { case: 'powerKw', value: kw } }],
      });
      console.log(
        `submitted dispatch ${requestId}: ${kw} kW (${kw >= 0 ? 'discharge' : 'charge'}) for ${site} ` +
          `until ${new Date(end).toISOString()}, instruction ${instructions.map((i) => i.id).join(', ')}`,
      );
      return new Set(instructions.map((i) => i.id));
    });

    const names = new Map(batteries.map((b) => [b.id, b.name]));
    for (const [deviceId, event] of verified) {
      const at = event.time ? timestampDate(event.time).toISOString() : 'unknown time';
      console.log(`  ${names.get(deviceId)} (${deviceId}): VERIFIED at ${event.targetPowerKw} kW, ${at}`);
    }
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    const count = `${verified.size} of ${batteries.length} batteries`;
    switch (outcome.kind) {
      case 'verified':
        console.log(`summary: verified - ${count} of ${site} hold dispatch ${requestId} (${kw} kW) after ${seconds} s`);
        return 0;
      case 'failed': {
        const { deviceId, reason } = outcome.event;
        console.log(`summary: failed - ${names.get(deviceId)} (${deviceId}) FAILED: ${reason}; ${count} verified after ${seconds} s`);
        return 1;
      }
      case 'timeout': {
        const missing = batteries.filter((b) => !verified.has(b.id)).map((b) => b.name);
        console.log(`summary: timed out - ${count} verified within ${VERIFY_TIMEOUT_MS / 1000} s; not verified: ${missing.join(', ')}`);
        return 2;
      }
      default: {
        const never: never = outcome;
        throw new Error(`unknown outcome ${JSON.stringify(never)}`);
      }
    }
  } catch (err) {
    console.error(`trade failed: ${err instanceof ConnectError ? `${Code[err.code]} ${err.rawMessage}` : String(err)}`);
    return 3;
  } finally {
    client.close();
  }
}

process.exitCode = await main(process.argv.slice(2));
