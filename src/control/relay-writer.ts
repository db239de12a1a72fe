/**
 * The setpoint writer of a relay battery: one the control plane cannot reach over Modbus,
 * whose setpoints go down the site agent's telemetry stream instead. The agent writes them
 * with the Modbus setpoint writer (reversion armed, read-back, heartbeat) and reports each
 * one; this writer turns those reports into the same events the Modbus writer emits, so
 * the controller, the audit table and WatchSetpoints see no difference but the reason.
 *
 * The agent holds a relayed setpoint only until its expiry, so the control plane sends it
 * again every refresh interval (the control period) while it wants the battery held: the
 * refreshes are the heartbeat. When they stop (writer stopped, control plane gone, stream
 * cut) the agent lets go at the expiry and the battery falls back on its own timeout.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from '../logger.ts';
import type { SetpointWriter } from '../modbus/setpoint-writer.ts';
import type { SetpointEvent, SetpointPhase } from '../modbus/types.ts';
import type { WriterFactory } from './battery-runtimes.ts';
import type { RelayChannel } from '../telemetry/relay-channel.ts';

/** Options of {@link createRelayWriter}. */
export interface RelayWriterOptions {
  readonly deviceId: string;
  readonly site: string;
  readonly channel: RelayChannel;
  /** How often a held setpoint is sent again, ms (the control period). */
  readonly refreshIntervalMs: number;
  /** How long each message stays valid at the agent, ms; default twice the refresh interval, so one late refresh is not a fallback. */
  readonly validityMs?: number;
  readonly onEvent: (event: SetpointEvent) => void;
  /**
   * The epoch of this replica's lease on the site's shard, read at every send; undefined
   * while it holds none, and then nothing is sent and the setpoint fails. Without it every
   * message carries epoch 0 (a control plane without leases), which agents accept.
   */
  readonly epoch?: () => number | undefined;
  readonly log?: Logger;
  /** The clock, ms since the epoch; default Date.now. */
  readonly now?: () => number;
}

interface Job {
  readonly seq: number;
  readonly kw: number;
  readonly release: boolean;
  readonly requestedAt: number;
  /** Message ids are `<job id>.<n>`, n counting the sends, so logs tie refreshes together. */
  readonly id: string;
  sends: number;
  /** The id of the last message sent: only its failure fails the job (an older one was superseded at the agent). */
  latestId?: string;
  /** When the oldest message not followed by an answer was sent (ms since the epoch). */
  unansweredSince?: number;
  verified: boolean;
  /** False once the job failed, was released and verified, or was superseded. */
  live: boolean;
}

/** Creates a relay writer; it sends nothing until the first setpoint. */
export function createRelayWriter(options: RelayWriterOptions): SetpointWriter {
  const { deviceId, site, channel } = options;
  const now = options.now ?? Date.now;
  const validityMs = options.validityMs ?? 2 * options.refreshIntervalMs;
  const log = options.log?.child({ deviceId, site });
  let seq = 0;
  let job: Job | undefined;
  let lastEvent: SetpointEvent | undefined;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;

  const emit = (j: Job, phase: SetpointPhase, extra: Partial<SetpointEvent> = {}): void => {
    const event: SetpointEvent = {
      deviceKey: deviceId,
      seq: j.seq,
      targetPowerKw: j.kw,
      phase,
      at: new Date(),
      elapsedMs: performance.now() - j.requestedAt,
      ...(j.release ? { release: true } : {}),
      ...extra,
    };
    lastEvent = event;
    if (phase === 'failed') log?.warn({ seq: j.seq, reason: event.reason }, 'relayed setpoint failed');
    else log?.debug({ seq: j.seq, phase, targetPowerKw: j.kw }, 'relayed setpoint event');
    try {
      options.onEvent(event);
    } catch (err) {
      log?.error({ err }, 'setpoint event handler threw');
    }
  };

  const fail = (j: Job, reason: string): void => {
    if (!j.live) return;
    j.live = false;
    emit(j, 'failed', { attempt: j.sends, reason, willRetry: false });
  };

  const onOutcome = (j: Job, messageId: string, outcome: { verified: boolean; reason: string }): void => {
    if (j !== job || !j.live || stopped) return;
    if (outcome.verified) {
      j.unansweredSince = undefined;
      if (j.verified) return;
      j.verified = true;
      const reason = `relayed through the agent of site ${site}`;
      emit(j, 'written', { attempt: j.sends, reason });
      emit(j, 'verified', { attempt: j.sends, reason });
      // A release is not held: nothing to refresh once the agent has done it.
      if (j.release) j.live = false;
      return;
    }
    // A later message of the same setpoint is on its way; its answer decides.
    if (messageId !== j.latestId) return;
    fail(j, `the agent of site ${site} could not apply it (${outcome.reason || 'no reason given'})`);
  };

  const transmit = (j: Job): void => {
    const messageId = `${j.id}.${j.sends + 1}`;
    const epoch = options.epoch ? options.epoch() : 0;
    // Never inside setTarget/clear: the controller learns the seq from their return value.
    if (epoch === undefined) {
      queueMicrotask(() => fail(j, `unavailable (this replica holds no lease on the shard of site ${site})`));
      return;
    }
    const sent = channel.send(
      site,
      { setpointId: messageId, deviceId, targetPowerKw: j.kw, release: j.release, expireAt: new Date(now() + validityMs), epoch },
      (o) => onOutcome(j, messageId, o),
    );
    if (!sent) {
      queueMicrotask(() => fail(j, `unavailable (no agent connected to any replica for site ${site})`));
      return;
    }
    j.sends++;
    j.latestId = messageId;
    j.unansweredSince ??= now();
  };

  /** One refresh turn: the heartbeat of a held setpoint, and the deadline of an unanswered one. */
  const refresh = (): void => {
    const j = job;
    if (!j || !j.live || stopped) return;
    if (j.unansweredSince !== undefined && now() - j.unansweredSince >= validityMs) {
      fail(j, `no answer from the agent of site ${site} within ${validityMs} ms`);
      return;
    }
    if (!j.release) transmit(j);
  };

  // A closed stream: go on through another stream of the site, or fail now (the agent will
  // let go at the expiry) rather than at the next refresh.
  const unwatch = channel.watch(site, () => {
    const j = job;
    if (!j || !j.live || stopped) return;
    if (channel.connected(site)) {
      if (!j.release || !j.verified) transmit(j);
    } else {
      fail(j, `the agent stream of site ${site} closed`);
    }
  });

  const request = (kw: number, release: boolean): number => {
    if (stopped) return seq;
    if (job) job.live = false;
    const j: Job = { seq: ++seq, kw, release, requestedAt: performance.now(), id: randomUUID(), sends: 0, verified: false, live: true };
    job = j;
    emit(j, 'requested');
    transmit(j);
    if (!timer) {
      timer = setInterval(refresh, options.refreshIntervalMs);
      timer.unref();
    }
    return j.seq;
  };

  return {
    setTarget(kw) {
      if (!Number.isFinite(kw)) throw new RangeError(`targetPowerKw must be a finite number (got ${kw})`);
      return request(kw, false);
    },
    clear: () => request(0, true),
    get lastEvent() {
      return lastEvent;
    },
    stop() {
      if (!stopped) {
        stopped = true;
        clearInterval(timer);
        unwatch();
        if (job) job.live = false;
      }
      return Promise.resolve();
    },
  };
}

/**
 * The controller's writer factory for relay batteries: a relay writer over `channel`,
 * refreshed every control period. `epochOf(site)` is the epoch of this replica's lease on
 * the site's shard, undefined while it holds none (see {@link RelayWriterOptions.epoch});
 * without it messages carry epoch 0.
 */
export function relayWriterFactory(
  channel: RelayChannel,
  controlPeriodMs: number,
  log?: Logger,
  epochOf?: (site: string) => number | undefined,
): WriterFactory {
  return (device, onEvent) =>
    createRelayWriter({
      deviceId: device.id,
      site: device.site,
      channel,
      refreshIntervalMs: controlPeriodMs,
      onEvent,
      ...(epochOf ? { epoch: () => epochOf(device.site) } : {}),
      ...(log ? { log } : {}),
    });
}
