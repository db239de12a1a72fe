import type { MessageInitShape } from '@bufbuild/protobuf';
import { durationMs, timestampFromMs, timestampMs } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ControlMode, SetpointPhase, type WatchSetpointsRequestSchema } from '../../gen/powerplane/v1/dispatch_pb.ts';
import { CommandSource } from '../../gen/powerplane/v1/telemetry_pb.ts';
import { errorOf } from '../../test/support/api.ts';
import { ENGINES } from '../../test/support/databases.ts';
import type { InMemoryApi } from '../../test/support/services.ts';
import { waitFor } from '../../test/support/wait.ts';
import { UNRESTRICTED } from '../rpc/principal.ts';
import {
  boundTo,
  DAY,
  MINUTE,
  serveDispatchFleet,
  UNKNOWN_ID,
  type DispatchClient,
  type DispatchFleet,
} from './dispatch.service.fixtures.ts';
import type { SetpointRecord } from './setpoint-events.ts';

/**
 * How a site's batteries are controlled, in memory over the fleet and services of
 * `dispatch.service.fixtures.ts`: manual overrides (SetControlMode) and the control state
 * (GetControlState), the stream of setpoint events (WatchSetpoints), and the settings of a
 * site's control components (GetSiteConfig, SetSiteConfig).
 */

describe.each(ENGINES)('DispatchService in memory on %s', (engine) => {
  let fleet: DispatchFleet;
  let api: InMemoryApi;
  let dispatch: DispatchClient;
  let ids: DispatchFleet['ids'];

  beforeAll(async () => {
    fleet = await serveDispatchFleet(engine);
    ({ api, dispatch, ids } = fleet);
  });
  afterAll(() => fleet?.close());

  describe('SetControlMode and GetControlState', () => {
    it('sets a manual override with its expiry, shows it in the control state, releases it, and replans the site each time', async () => {
      const expireTime = timestampFromMs(Date.now() + 30 * MINUTE);
      const manual = await dispatch.setControlMode({
        deviceId: ids.gamma0!,
        mode: ControlMode.MANUAL,
        manualPowerKw: -25,
        expireTime,
        reason: 'site test',
      });
      expect(manual.state).toMatchObject({ deviceId: ids.gamma0, site: 'gamma' });
      expect(timestampMs(manual.state!.manualExpireTime!)).toBe(timestampMs(expireTime));
      expect(api.takeReplans()).toEqual(['gamma']);
      expect((await dispatch.getControlState({ deviceIds: [ids.gamma0!] })).states[0]?.manualExpireTime).toEqual(
        manual.state!.manualExpireTime,
      );
      const automatic = await dispatch.setControlMode({ deviceId: ids.gamma0!, mode: ControlMode.AUTOMATIC, reason: 'done' });
      expect(automatic.state?.manualExpireTime).toBeUndefined();
      expect(api.takeReplans()).toEqual(['gamma']);
    });

    it.each([
      [
        'an unspecified mode',
        { mode: ControlMode.UNSPECIFIED },
        'InvalidArgument',
        'mode must be CONTROL_MODE_AUTOMATIC or CONTROL_MODE_MANUAL',
      ],
      ['an unknown mode', { mode: 9 as ControlMode }, 'InvalidArgument', 'mode is not a known control mode'],
      [
        "a power beyond the battery's discharge rating",
        { manualPowerKw: 81 },
        'InvalidArgument',
        "manual_power_kw must be within the battery's rating (-50 to 80 kW)",
      ],
      [
        "a charge beyond the battery's charge rating",
        { manualPowerKw: -51 },
        'InvalidArgument',
        "manual_power_kw must be within the battery's rating",
      ],
      ['a NaN power', { manualPowerKw: Number.NaN }, 'InvalidArgument', 'manual_power_kw must be a finite number'],
      ['no expiry', { expireTime: undefined }, 'InvalidArgument', 'expire_time is required for MANUAL'],
      [
        'an expiry in the past',
        { expireTime: timestampFromMs(Date.now() - 1_000) },
        'InvalidArgument',
        'expire_time must be in the future',
      ],
      [
        'an expiry more than 7 days ahead',
        { expireTime: timestampFromMs(Date.now() + 7 * DAY + MINUTE) },
        'InvalidArgument',
        'expire_time must be at most 7 days ahead',
      ],
      ['an expiry beyond any date', { expireTime: { seconds: 2n ** 62n, nanos: 0 } }, 'InvalidArgument', 'expire_time'],
      ['an empty reason', { reason: ' ' }, 'InvalidArgument', 'reason is required for MANUAL'],
      ['a malformed battery id', { deviceId: 'nope' }, 'InvalidArgument', 'device_id must be a UUID'],
      ['an unknown battery', { deviceId: UNKNOWN_ID }, 'NotFound', `device_id names no battery (got "${UNKNOWN_ID}")`],
    ] as const)('refuses an override with %s naming the field, and keeps the battery as it was', async (_case, change, code, message) => {
      const base = {
        deviceId: ids.gamma0!,
        mode: ControlMode.MANUAL,
        manualPowerKw: 10,
        expireTime: timestampFromMs(Date.now() + MINUTE),
        reason: 'r',
      };
      const request = { ...base, ...change } as typeof base;
      if ('expireTime' in change && change.expireTime === undefined) delete (request as Partial<typeof base>).expireTime;
      const err = await errorOf(dispatch.setControlMode(request));
      expect(err.code).toBe(code);
      expect(err.message.startsWith(message)).toBe(true);
      expect((await dispatch.getControlState({ deviceIds: [ids.gamma0!] })).states[0]?.manualExpireTime).toBeUndefined();
      expect(api.takeReplans()).toEqual([]);
    });

    it('refuses an override of a meter as not a battery', async () => {
      expect(await errorOf(dispatch.setControlMode({ deviceId: ids.meter!, mode: ControlMode.AUTOMATIC }))).toEqual({
        code: 'InvalidArgument',
        message: `device_id is not a battery (got "${ids.meter}")`,
      });
    });

    it("answers a site's batteries in id order with what their telemetry reports", async () => {
      const at = Date.now() - MINUTE;
      const { ack } = await api.as(UNRESTRICTED).telemetry.writeReadings({
        batch: {
          sequence: 1n,
          bessReadings: [{ deviceId: ids.alpha0!, time: timestampFromMs(at), soePercent: 50, commandSource: CommandSource.MANUAL }],
        },
      });
      expect(ack?.storedCount).toBe(1);
      const { states } = await dispatch.getControlState({ site: 'alpha' });
      expect(states.map((s) => s.deviceId)).toEqual([ids.alpha0!, ids.alpha1!].sort());
      const reported = states.find((s) => s.deviceId === ids.alpha0)!;
      expect(reported).toMatchObject({ site: 'alpha', reportedSource: CommandSource.MANUAL, reason: 'not planned yet', targetPowerKw: 0 });
      expect(timestampMs(reported.lastTelemetryTime!)).toBe(at);
      expect(states.find((s) => s.deviceId === ids.alpha1)?.lastTelemetryTime).toBeUndefined();
      expect((await dispatch.getControlState({ deviceIds: [ids.alpha1!, ids.beta0!] })).states.map((s) => s.site)).toEqual([
        'alpha',
        'beta',
      ]);
    });

    it.each([
      ['neither a site nor batteries', {}, 'InvalidArgument', 'site is required (or device_ids)'],
      ['an unknown site', { site: 'nowhere' }, 'NotFound', 'site names no site with active batteries'],
      ['an unknown battery', { deviceIds: [UNKNOWN_ID] }, 'NotFound', 'device_ids[0] names no battery'],
      ['a malformed battery id', { deviceIds: [UNKNOWN_ID, 'x'] }, 'InvalidArgument', 'device_ids[1] must be a UUID'],
      [
        'more than 1000 batteries',
        { deviceIds: Array.from({ length: 1001 }, (_, i) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`) },
        'InvalidArgument',
        'device_ids must hold at most 1000 ids',
      ],
    ] as const)('refuses a control-state read with %s naming the field', async (_case, request, code, message) => {
      const err = await errorOf(dispatch.getControlState(request as { site?: string; deviceIds?: string[] }));
      expect(err.code).toBe(code);
      expect(err.message.startsWith(message)).toBe(true);
    });
  });

  describe('WatchSetpoints', () => {
    /**
     * Opens a watch with `request`, publishes `records` once it is subscribed, and returns
     * the setpoint ids it streamed until `last` arrived, or the error it failed with.
     */
    async function watch(
      request: MessageInitShape<typeof WatchSetpointsRequestSchema>,
      records: SetpointRecord[],
      last: string,
      client = dispatch,
    ): Promise<string[] | { code: string; message: string }> {
      const stop = new AbortController();
      const before = api.subscriptions();
      const seen: string[] = [];
      let failed: ConnectError | undefined;
      const done = (async () => {
        for await (const res of client.watchSetpoints(request, { signal: stop.signal })) {
          seen.push(...res.events.map((e) => e.setpointId));
          if (seen.includes(last)) break;
        }
      })().catch((err: unknown) => {
        failed = ConnectError.from(err);
      });
      try {
        await waitFor('the watch to open or fail', () => api.subscriptions() > before || failed !== undefined, 10_000, 5);
        if (!failed) for (const r of records) api.bus.publish(r);
        await done;
      } finally {
        stop.abort();
      }
      return failed ? { code: Code[failed.code], message: failed.rawMessage } : seen;
    }

    const record = (setpointId: string, site: string, deviceId: string, phase: SetpointRecord['phase'] = 'VERIFIED'): SetpointRecord => ({
      setpointId,
      deviceId,
      site,
      phase,
      targetPowerKw: 12.5,
      source: 'DISPATCH',
      at: new Date(),
      elapsedMs: 40,
    });

    it('streams the events of the site, battery and phases asked for, and no others', async () => {
      const events = [
        record('beta-planned', 'beta', ids.beta0!, 'PLANNED'),
        record('alpha-verified', 'alpha', ids.alpha0!),
        record('beta-verified', 'beta', ids.beta0!),
        record('alpha-1-failed', 'alpha', ids.alpha1!, 'FAILED'),
        record('alpha-1-verified', 'alpha', ids.alpha1!),
      ];
      expect(await watch({ site: 'alpha' }, events, 'alpha-1-verified')).toEqual(['alpha-verified', 'alpha-1-failed', 'alpha-1-verified']);
      expect(await watch({ deviceId: ids.alpha1! }, events, 'alpha-1-verified')).toEqual(['alpha-1-failed', 'alpha-1-verified']);
      expect(await watch({ phases: [SetpointPhase.VERIFIED] }, events, 'alpha-1-verified')).toEqual([
        'alpha-verified',
        'beta-verified',
        'alpha-1-verified',
      ]);
    });

    it('streams every field of each event, the same in binary (encoded by hand) as in JSON (generated)', async () => {
      const at = new Date(Date.UTC(2026, 11, 6, 12, 0, 0, 987));
      const events: SetpointRecord[] = [
        {
          ...record('whole-1', 'gamma', ids.gamma0!, 'PLANNED'),
          at,
          elapsedMs: 1_234.6,
          instructionId: UNKNOWN_ID,
          reason: 'following ✓ "x"',
        },
        { ...record('whole-2', 'gamma', ids.gamma0!, 'FAILED'), at, elapsedMs: -1_500, targetPowerKw: -0.25, source: 'MANUAL' },
        { ...record('whole-3', 'gamma', ids.gamma0!, 'EXPIRED'), at, elapsedMs: 0, targetPowerKw: 0, source: 'LOCAL' },
      ];
      const streamed = async (client: DispatchClient) => {
        const stop = new AbortController();
        const before = api.subscriptions();
        const seen: Array<Record<string, unknown>> = [];
        const done = (async () => {
          for await (const res of client.watchSetpoints({ site: 'gamma' }, { signal: stop.signal })) {
            for (const e of res.events) {
              const { $typeName: _, time, elapsed, ...fields } = e;
              seen.push({ ...fields, timeMs: time ? timestampMs(time) : undefined, elapsedMs: elapsed ? durationMs(elapsed) : undefined });
            }
            if (seen.length >= events.length) break;
          }
        })();
        await waitFor('the watch to open', () => api.subscriptions() > before, 10_000, 5);
        for (const r of events) api.bus.publish(r);
        await done;
        stop.abort();
        return seen;
      };
      const expected = [
        {
          setpointId: 'whole-1',
          deviceId: ids.gamma0!,
          site: 'gamma',
          phase: SetpointPhase.PLANNED,
          targetPowerKw: 12.5,
          commandSource: CommandSource.DISPATCH,
          instructionId: UNKNOWN_ID,
          reason: 'following ✓ "x"',
          timeMs: at.getTime(),
          elapsedMs: 1_235,
        },
        {
          setpointId: 'whole-2',
          deviceId: ids.gamma0!,
          site: 'gamma',
          phase: SetpointPhase.FAILED,
          targetPowerKw: -0.25,
          commandSource: CommandSource.MANUAL,
          instructionId: '',
          reason: '',
          timeMs: at.getTime(),
          elapsedMs: -1_500,
        },
        {
          setpointId: 'whole-3',
          deviceId: ids.gamma0!,
          site: 'gamma',
          phase: SetpointPhase.EXPIRED,
          targetPowerKw: 0,
          commandSource: CommandSource.LOCAL,
          instructionId: '',
          reason: '',
          timeMs: at.getTime(),
          elapsedMs: 0,
        },
      ];
      expect(await streamed(dispatch)).toEqual(expected);
      expect(await streamed(api.as(UNRESTRICTED, { json: true }).dispatch)).toEqual(expected);
    });

    it("streams a bound caller only its own sites' events", async () => {
      const desk = api.as(boundTo('token:watch-beta', ['beta'])).dispatch;
      const events = [record('alpha-verified', 'alpha', ids.alpha0!), record('beta-verified', 'beta', ids.beta0!)];
      expect(await watch({}, events, 'beta-verified', desk)).toEqual(['beta-verified']);
      expect(await watch({ site: 'alpha' }, events, 'beta-verified', desk)).toEqual({
        code: 'PermissionDenied',
        message: 'site names site "alpha", which token:watch-beta is not bound to',
      });
    });

    it.each<[string, MessageInitShape<typeof WatchSetpointsRequestSchema>, string]>([
      ['a malformed battery id', { deviceId: 'x' }, 'device_id must be a UUID (got "x")'],
      [
        'an unspecified phase',
        { phases: [SetpointPhase.VERIFIED, SetpointPhase.UNSPECIFIED] },
        'phases[1] must be a known setpoint phase (got 0)',
      ],
      ['a site with a NUL', { site: 'alpha\u0000' }, 'site must not contain a NUL character'],
    ])('ends a watch with %s with INVALID_ARGUMENT naming the field', async (_case, request, message) => {
      const answer = await watch(request, [], 'never');
      expect(answer).toMatchObject({
        code: 'InvalidArgument',
        message: expect.stringMatching(new RegExp(`^${message.replace(/[()[\]]/g, '\\$&')}`)),
      });
    });
  });

  describe('site settings', () => {
    it('answers defaults for a site never set, stores settings whole, and replans the site', async () => {
      expect((await dispatch.getSiteConfig({ site: 'beta' })).config).toMatchObject({
        site: 'beta',
        avoidImport: false,
        avoidExport: false,
      });
      expect((await dispatch.getSiteConfig({ site: 'beta' })).config?.nivChase).toBeUndefined();
      const config = {
        site: 'beta',
        importLimitKw: 400,
        nivChase: {
          enabled: true,
          nivThresholdMw: 100,
          shortPriceThreshold: 50,
          longPriceThreshold: 0,
          shortTargetSoePercent: 48,
          longTargetSoePercent: 52,
        },
        soeTarget: { enabled: false, soePercent: 60, maxPowerKw: 20 },
        avoidExport: true,
      };
      const { config: stored } = await dispatch.setSiteConfig({ config });
      expect(stored).toMatchObject(config);
      expect(api.takeReplans()).toEqual(['beta']);
      expect((await dispatch.getSiteConfig({ site: 'beta' })).config).toEqual(stored);
      // A later set replaces the settings whole: what it leaves out is off.
      await dispatch.setSiteConfig({ config: { site: 'beta' } });
      expect((await dispatch.getSiteConfig({ site: 'beta' })).config?.nivChase).toBeUndefined();
      api.takeReplans();
    });

    it.each([
      ['no settings', {}, 'InvalidArgument', 'config is required'],
      ['a negative import limit', { config: { site: 'beta', importLimitKw: -1 } }, 'InvalidArgument', 'config.import_limit_kw'],
      [
        'a NaN NIV price threshold',
        {
          config: { site: 'beta', nivChase: { enabled: true, nivThresholdMw: 1, shortPriceThreshold: Number.NaN, longPriceThreshold: 0 } },
        },
        'InvalidArgument',
        'config.niv_chase.short_price_threshold',
      ],
      [
        'a state-of-energy target over 100',
        { config: { site: 'beta', soeTarget: { enabled: true, soePercent: 101, maxPowerKw: 10 } } },
        'InvalidArgument',
        'config.soe_target.soe_percent',
      ],
      [
        'a negative state-of-energy power',
        { config: { site: 'beta', soeTarget: { enabled: true, soePercent: 50, maxPowerKw: -1 } } },
        'InvalidArgument',
        'config.soe_target.max_power_kw',
      ],
      ['a site without batteries', { config: { site: 'nowhere' } }, 'NotFound', 'config.site names no site with active batteries'],
    ] as const)('refuses settings with %s naming the field, and keeps the old ones', async (_case, request, code, message) => {
      const before = (await dispatch.getSiteConfig({ site: 'beta' })).config;
      const err = await errorOf(dispatch.setSiteConfig(request));
      expect(err.code).toBe(code);
      expect(err.message.startsWith(message)).toBe(true);
      expect((await dispatch.getSiteConfig({ site: 'beta' })).config).toEqual(before);
      expect(api.takeReplans()).toEqual([]);
    });

    it("refuses to read settings without a site, and a bound caller another site's", async () => {
      expect(await errorOf(dispatch.getSiteConfig({ site: '' }))).toEqual({
        code: 'InvalidArgument',
        message: 'site is required (got "")',
      });
      const desk = api.as(boundTo('token:config-beta', ['beta'])).dispatch;
      expect(await errorOf(desk.getSiteConfig({ site: 'alpha' }))).toEqual({
        code: 'PermissionDenied',
        message: 'site names site "alpha", which token:config-beta is not bound to',
      });
      expect(await errorOf(desk.setSiteConfig({ config: { site: 'alpha' } }))).toEqual({
        code: 'PermissionDenied',
        message: 'config.site names site "alpha", which token:config-beta is not bound to',
      });
    });
  });
});
