/**
 * The setpoint writer: one per device, one Modbus connection, latest setpoint wins. Before the
 * first setpoint on every connection it learns the device's scale factors and arms the
 * device's own fallback (reversion timeout); it writes the setpoint scaled by the scale factor
 * of the current connection, reads it back and reports "verified" only when the device holds
 * it; it refreshes a heartbeat while a setpoint is active. A setpoint the operator no longer
 * wants (a newer request waits, or the writer stops) is never written: the writer checks right
 * before every write. Every step produces a {@link SetpointEvent}.
 */
import type pino from 'pino';
import { createDeviceControl, type Expectation } from './device-control.ts';
import { classify, withWriteGuard } from './setpoint-failure.ts';
import { createModbusClient } from './modbus-client.ts';
import { withPrepareTurn } from './prepare-limit.ts';
import { sunSpecMapKey } from './sunspec-map-cache.ts';
import type { ModbusEndpoint, RegisterProfile, SetpointEvent, SetpointPhase } from './types.ts';

/** A running setpoint writer. */
export interface SetpointWriter {
  /**
   * Requests a target power, kW (positive = discharge), and returns the request's seq. Latest wins:
   * an older setpoint that is queued, still connecting or arming, or waiting to retry is dropped,
   * never written late; a newer one replaces the active one even if it fails. Throws RangeError on
   * a non-finite value.
   */
  setTarget(targetPowerKw: number): number;
  /** Releases control (writes 0, disables the setpoint, stops the heartbeat); returns the request's seq. */
  clear(): number;
  /** The most recent event. */
  readonly lastEvent?: SetpointEvent;
  /**
   * Stops the writer and closes its connection; a queued or unfinished setpoint is dropped before
   * its write. The device then reverts on its own after its timeout. Idempotent.
   */
  stop(): Promise<void>;
}

/** Options of {@link createSetpointWriter}. */
export interface SetpointWriterOptions {
  /** Key identifying the device in events and logs. */
  deviceKey: string;
  endpoint: ModbusEndpoint;
  profile: RegisterProfile;
  /** Seconds of silence after which the device reverts on its own (written to the device when arming). */
  reversionTimeoutS: number;
  /** Heartbeat period while a setpoint is active, ms. */
  heartbeatIntervalMs: number;
  /** Per-request timeout, ms; default 1000. */
  requestTimeoutMs?: number;
  /** Retries of a setpoint after busy exceptions (05, 06, 0A, 0B), timeouts and connection failures; default 3. */
  maxRetries?: number;
  /** First retry delay, ms, doubled per retry up to 1000 ms; default 50. */
  retryBaseDelayMs?: number;
  onEvent: (e: SetpointEvent) => void;
  log?: pino.Logger;
  /** Aborting it stops the writer. */
  signal?: AbortSignal;
  /**
   * Asked right before every register write (setpoint, heartbeat, arming); false refuses the
   * write, never sent: the lease the writer drives the device under has ended, even if the
   * event loop has not yet run what stops the writer.
   */
  mayWrite?: () => boolean;
}

interface Job {
  seq: number;
  kw: number;
  release: boolean;
  requestedAt: number;
}

/**
 * Creates and starts a setpoint writer for one device. Defaults: request timeout 1000 ms,
 * 3 retries from 50 ms doubling to at most 1000 ms. Memory is bounded: at most one setpoint
 * waits while another is in flight.
 */
export function createSetpointWriter(opts: SetpointWriterOptions): SetpointWriter {
  const log = opts.log?.child({ deviceKey: opts.deviceKey });
  const maxRetries = opts.maxRetries ?? 3;
  const baseDelay = opts.retryBaseDelayMs ?? 50;
  // No implicit reconnection: every new connection must go through prepare (fresh scale
  // factors) and arm before anything is written on it.
  const client = createModbusClient({
    endpoint: opts.endpoint,
    timeoutMs: opts.requestTimeoutMs ?? 1000,
    reconnect: false,
    ...(log ? { log } : {}),
  });
  // A SunSpec chain discovered by an earlier writer of this device is checked, not walked again.
  const control = createDeviceControl(
    opts.profile,
    opts.mayWrite ? withWriteGuard(client, opts.mayWrite) : client,
    sunSpecMapKey(opts.deviceKey, opts.endpoint),
  );
  let seq = 0;
  let pending: Job | undefined;
  let active: Job | undefined;
  /** What `active` looks like on the device over the current connection. */
  let activeExpectation: Expectation | undefined;
  let ready = false;
  let reassert = false;
  let lastBeatAt = 0;
  let stopped = false;
  /** Aborted by stop: a writer still waiting for its turn to connect leaves the queue. */
  const stopSignal = new AbortController();
  let lastEvent: SetpointEvent | undefined;
  let wake: (() => void) | undefined;

  const emit = (job: Job, phase: SetpointPhase, extra: Partial<SetpointEvent> = {}): void => {
    const event: SetpointEvent = {
      deviceKey: opts.deviceKey,
      seq: job.seq,
      targetPowerKw: job.kw,
      phase,
      at: new Date(),
      elapsedMs: performance.now() - job.requestedAt,
      ...(job.release ? { release: true } : {}),
      ...extra,
    };
    lastEvent = event;
    if (phase === 'failed')
      log?.warn(
        { seq: event.seq, reason: event.reason, exceptionCode: event.exceptionCode, willRetry: event.willRetry },
        'setpoint failed',
      );
    else log?.debug({ seq: event.seq, phase, targetPowerKw: event.targetPowerKw, elapsedMs: event.elapsedMs }, 'setpoint event');
    try {
      opts.onEvent(event);
    } catch (err) {
      log?.error({ err }, 'setpoint event handler threw');
    }
  };

  const sleep = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const timer = setTimeout(
        () => {
          wake = undefined;
          resolve();
        },
        Math.max(0, ms),
      );
      wake = () => {
        clearTimeout(timer);
        wake = undefined;
        resolve();
      };
    });
  const kick = (): void => wake?.();

  const request = (kw: number, release: boolean): number => {
    if (stopped) return seq;
    const job: Job = { seq: ++seq, kw, release, requestedAt: performance.now() };
    if (pending) emit(pending, 'dropped', { reason: `superseded by setpoint ${job.seq}` });
    pending = job;
    emit(job, 'requested');
    kick();
    return job.seq;
  };

  const recycle = async (): Promise<void> => {
    ready = false;
    await client.close();
  };

  const ensureReady = async (): Promise<void> => {
    if (ready && client.isOpen) return;
    ready = false;
    await withPrepareTurn(async () => {
      // Its turn may come after the setpoint it was for was superseded or the writer stopped.
      if (stopped) return;
      await client.connect();
      await control.prepare();
      await control.arm(opts.reversionTimeoutS);
      ready = true;
    }, stopSignal.signal);
  };

  /** Whether the operator no longer wants `job` written: a newer request waits, or the writer stops. */
  const unwanted = (): boolean => pending !== undefined || stopped;

  /** Ends `job` with 'dropped' when it is {@link unwanted}; returns whether it did. */
  const dropIfUnwanted = (job: Job): boolean => {
    if (pending) emit(job, 'dropped', { reason: `superseded by setpoint ${pending.seq}` });
    else if (stopped) emit(job, 'dropped', { reason: 'writer stopped' });
    return unwanted();
  };

  const process = async (job: Job): Promise<void> => {
    // The new job replaces the old one however it ends: a failed setpoint must never leave
    // the previous one heartbeated (or reasserted) on the device.
    active = undefined;
    activeExpectation = undefined;
    reassert = false;
    let readBackFirst = false;
    for (let attempt = 1; attempt <= maxRetries + 1; attempt++) {
      if (dropIfUnwanted(job)) return;
      try {
        await ensureReady();
        // Connecting, discovering and arming can take seconds: a newer request may be waiting.
        if (dropIfUnwanted(job)) return;
        // Computed again on every attempt: a recycled connection may have found a restarted
        // device with another scale factor, and the old raw values would be the wrong power.
        const expectation = control.expect(job.kw, job.release);
        if (readBackFirst) {
          if ((await control.check(expectation)) === undefined) {
            emit(job, 'verified', { attempt, reason: 'device already held the setpoint after a lost answer' });
            settle(job, expectation);
            return;
          }
          if (dropIfUnwanted(job)) return;
        }
        await control.apply(expectation);
        emit(job, 'written', { attempt });
        const mismatch = await control.check(expectation);
        if (mismatch === undefined) {
          emit(job, 'verified', { attempt });
          settle(job, expectation);
        } else {
          emit(job, 'failed', { attempt, reason: mismatch, willRetry: false });
          active = undefined;
        }
        return;
      } catch (err) {
        const f = classify(err);
        if (f.recycle) {
          await recycle();
          readBackFirst = true;
        }
        const willRetry = f.retry && attempt <= maxRetries && !stopped;
        emit(job, 'failed', {
          attempt,
          reason: f.reason,
          willRetry,
          ...(f.exceptionCode === undefined ? {} : { exceptionCode: f.exceptionCode }),
        });
        if (!willRetry) {
          if (f.recycle) reassert = active !== undefined;
          return;
        }
        if (!unwanted()) await sleep(Math.min(1000, baseDelay * 2 ** (attempt - 1)));
      }
    }
  };

  const settle = (job: Job, expectation: Expectation): void => {
    active = job.release ? undefined : job;
    activeExpectation = job.release ? undefined : expectation;
    reassert = false;
    lastBeatAt = performance.now();
  };

  /**
   * Brings the active setpoint back on a new connection: fresh scale factors, armed again,
   * written only when the device no longer holds it and nothing newer waits.
   */
  const reassertActive = async (job: Job): Promise<void> => {
    await ensureReady();
    if (unwanted()) return;
    const expectation = control.expect(job.kw, false);
    activeExpectation = expectation;
    if ((await control.check(expectation)) !== undefined) {
      if (unwanted()) return;
      await control.apply(expectation);
      emit(job, 'written', { reason: 'reasserted after reconnection' });
      const mismatch = await control.check(expectation);
      emit(
        job,
        mismatch === undefined ? 'verified' : 'failed',
        mismatch === undefined ? { reason: 'reasserted after reconnection' } : { reason: mismatch, willRetry: false },
      );
      // A device that does not hold the value is not heartbeated on it: the setpoint has
      // failed, and the next plan sends it again.
      if (mismatch !== undefined) dropActive();
    }
    reassert = false;
  };

  const dropActive = (): void => {
    active = undefined;
    activeExpectation = undefined;
    reassert = false;
  };

  const keepAlive = async (): Promise<void> => {
    const job = active;
    if (!job) return;
    try {
      // A connection that closed (device restart) is a reconnection, never a bare heartbeat.
      if (reassert || !ready || !client.isOpen || !activeExpectation) {
        reassert = true;
        await reassertActive(job);
        if (reassert) return;
      } else {
        await control.heartbeat(activeExpectation);
      }
      lastBeatAt = performance.now();
    } catch (err) {
      const f = classify(err);
      log?.warn({ reason: f.reason }, 'heartbeat failed');
      if (f.recycle) {
        await recycle();
        reassert = true;
      } else if (reassert) {
        // Not the connection: the device refuses the setpoint as it is now (a new scale
        // factor puts it out of range, an exception). Retrying forever would say nothing;
        // the setpoint fails, and the next plan decides again.
        emit(job, 'failed', {
          reason: f.reason,
          willRetry: false,
          ...(f.exceptionCode === undefined ? {} : { exceptionCode: f.exceptionCode }),
        });
        dropActive();
      }
      lastBeatAt = performance.now();
      // A newer setpoint or a stop that came meanwhile is handled at once, not after a pause.
      if (!unwanted()) await sleep(Math.min(opts.heartbeatIntervalMs, 1000));
    }
  };

  const loop = async (): Promise<void> => {
    while (!stopped) {
      const job = pending;
      if (job) {
        pending = undefined;
        await process(job);
        continue;
      }
      if (active && (reassert || performance.now() - lastBeatAt >= opts.heartbeatIntervalMs)) {
        await keepAlive();
        continue;
      }
      await sleep(active ? lastBeatAt + opts.heartbeatIntervalMs - performance.now() : 60_000);
    }
  };

  const running = loop().catch((err: unknown) => log?.error({ err }, 'setpoint writer loop crashed'));
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      stopped = true;
      stopSignal.abort();
      if (pending) emit(pending, 'dropped', { reason: 'writer stopped' });
      pending = undefined;
      kick();
      await running;
      await client.close();
    })();
    return stopping;
  };
  opts.signal?.addEventListener(
    'abort',
    () => {
      void stop();
    },
    { once: true },
  );
  if (opts.signal?.aborted) void stop();

  return {
    setTarget: (kw) => {
      if (!Number.isFinite(kw)) throw new RangeError(`targetPowerKw must be a finite number (got ${kw})`);
      return request(kw, false);
    },
    clear: () => request(0, true),
    get lastEvent() {
      return lastEvent;
    },
    stop,
  };
}
