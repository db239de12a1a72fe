/**
 * The setpoint writer: one per device, one Modbus connection, latest setpoint wins. Before the
 * first setpoint on every connection it arms the device's own fallback (reversion timeout);
 * it writes the setpoint scaled by the device's scale factor, reads it back and reports
 * "verified" only when the device holds it; it refreshes a heartbeat while a setpoint is
 * active. Every step produces a {@link SetpointEvent}.
 */
import type pino from 'pino';
import { createDeviceControl, type Expectation } from './device-control.ts';
import { CodecRangeError, DeviceProfileError, ModbusConnectionError, ModbusExceptionError, ModbusTimeoutError, SetpointOutOfRangeError } from './errors.ts';
import { createModbusClient } from './modbus-client.ts';
import type { ModbusEndpoint, RegisterProfile, SetpointEvent, SetpointPhase } from './types.ts';

/** A running setpoint writer. */
export interface SetpointWriter {
  /** Requests a target power, kW (positive = discharge), and returns the request's seq. Latest wins: a queued older setpoint is dropped, never written late; a newer one replaces the active one even if it fails. Throws RangeError on a non-finite value. */
  setTarget(targetPowerKw: number): number;
  /** Releases control (writes 0, disables the setpoint, stops the heartbeat); returns the request's seq. */
  clear(): number;
  /** The most recent event. */
  readonly lastEvent?: SetpointEvent;
  /** Stops the writer and closes its connection; a queued setpoint is dropped. The device then reverts on its own after its timeout. Idempotent. */
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
}

interface Job { seq: number; kw: number; release: boolean; requestedAt: number; expectation?: Expectation }

interface Failure { reason: string; retry: boolean; recycle: boolean; exceptionCode?: number }

function classify(err: unknown): Failure {
  if (err instanceof ModbusExceptionError) {
    const retry = err.exceptionClass === 'retryable';
    const reason = err.exceptionClass === 'device-fault' ? `device fault: ${err.message}` : err.message;
    return { reason, retry, recycle: false, exceptionCode: err.code };
  }
  if (err instanceof ModbusTimeoutError) return { reason: err.message, retry: true, recycle: true };
  if (err instanceof ModbusConnectionError) return { reason: err.message, retry: true, recycle: true };
  if (err instanceof SetpointOutOfRangeError || err instanceof CodecRangeError || err instanceof DeviceProfileError) return { reason: err.message, retry: false, recycle: false };
  return { reason: err instanceof Error ? err.message : String(err), retry: false, recycle: true };
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
  const client = createModbusClient({ endpoint: opts.endpoint, timeoutMs: opts.requestTimeoutMs ?? 1000, ...(log ? { log } : {}) });
  const control = createDeviceControl(opts.profile, client);
  let seq = 0;
  let pending: Job | undefined;
  let active: Job | undefined;
  let ready = false;
  let reassert = false;
  let lastBeatAt = 0;
  let stopped = false;
  let lastEvent: SetpointEvent | undefined;
  let wake: (() => void) | undefined;

  const emit = (job: Job, phase: SetpointPhase, extra: Partial<SetpointEvent> = {}): void => {
    const event: SetpointEvent = { deviceKey: opts.deviceKey, seq: job.seq, targetPowerKw: job.kw, phase, at: new Date(), elapsedMs: performance.now() - job.requestedAt, ...(job.release ? { release: true } : {}), ...extra };
    lastEvent = event;
    if (phase === 'failed') log?.warn({ seq: event.seq, reason: event.reason, exceptionCode: event.exceptionCode, willRetry: event.willRetry }, 'setpoint failed');
    else log?.debug({ seq: event.seq, phase, targetPowerKw: event.targetPowerKw, elapsedMs: event.elapsedMs }, 'setpoint event');
    try { opts.onEvent(event); } catch (err) { log?.error({ err }, 'setpoint event handler threw'); }
  };

  const sleep = (ms: number): Promise<void> => new Promise((resolve) => {
    const timer = setTimeout(() => { wake = undefined; resolve(); }, Math.max(0, ms));
    wake = () => { clearTimeout(timer); wake = undefined; resolve(); };
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
    await client.connect();
    await control.prepare();
    await control.arm(opts.reversionTimeoutS);
    ready = true;
  };

  const process = async (job: Job): Promise<void> => {
    // The new job replaces the old one however it ends: a failed setpoint must never leave
    // the previous one heartbeated (or reasserted) on the device.
    active = undefined;
    reassert = false;
    let readBackFirst = false;
    for (let attempt = 1; attempt <= maxRetries + 1 && !stopped; attempt++) {
      try {
        await ensureReady();
        job.expectation ??= control.expect(job.kw, job.release);
        if (readBackFirst && (await control.check(job.expectation)) === undefined) {
          emit(job, 'verified', { attempt, reason: 'device already held the setpoint after a lost answer' });
          settle(job);
          return;
        }
        await control.apply(job.expectation);
        emit(job, 'written', { attempt });
        const mismatch = await control.check(job.expectation);
        if (mismatch === undefined) {
          emit(job, 'verified', { attempt });
          settle(job);
        } else {
          emit(job, 'failed', { attempt, reason: mismatch, willRetry: false });
          active = undefined;
        }
        return;
      } catch (err) {
        const f = classify(err);
        if (f.recycle) { await recycle(); readBackFirst = true; }
        const willRetry = f.retry && attempt <= maxRetries && !stopped;
        emit(job, 'failed', { attempt, reason: f.reason, willRetry, ...(f.exceptionCode === undefined ? {} : { exceptionCode: f.exceptionCode }) });
        if (!willRetry) { if (f.recycle) reassert = active !== undefined; return; }
        await sleep(Math.min(1000, baseDelay * 2 ** (attempt - 1)));
        if (pending) { emit(job, 'dropped', { reason: `superseded by setpoint ${pending.seq}` }); return; }
      }
    }
  };

  const settle = (job: Job): void => {
    active = job.release ? undefined : job;
    reassert = false;
    lastBeatAt = performance.now();
  };

  const keepAlive = async (): Promise<void> => {
    const job = active;
    if (!job) return;
    try {
      if (reassert) {
        await ensureReady();
        job.expectation = control.expect(job.kw, false);
        if ((await control.check(job.expectation)) !== undefined) {
          await control.apply(job.expectation);
          emit(job, 'written', { reason: 'reasserted after reconnection' });
          const mismatch = await control.check(job.expectation);
          emit(job, mismatch === undefined ? 'verified' : 'failed', mismatch === undefined ? { reason: 'reasserted after reconnection' } : { reason: mismatch, willRetry: false });
        }
        reassert = false;
      } else {
        await control.heartbeat();
      }
      lastBeatAt = performance.now();
    } catch (err) {
      const f = classify(err);
      log?.warn({ reason: f.reason }, 'heartbeat failed');
      if (f.recycle) { await recycle(); reassert = true; }
      lastBeatAt = performance.now();
      await sleep(Math.min(opts.heartbeatIntervalMs, 1000));
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
      if (pending) emit(pending, 'dropped', { reason: 'writer stopped' });
      pending = undefined;
      kick();
      await running;
      await client.close();
    })();
    return stopping;
  };
  opts.signal?.addEventListener('abort', () => { void stop(); }, { once: true });
  if (opts.signal?.aborted) void stop();

  return {
    setTarget: (kw) => {
      if (!Number.isFinite(kw)) throw new RangeError(`targetPowerKw must be a finite number (got ${kw})`);
      return request(kw, false);
    },
    clear: () => request(0, true),
    get lastEvent() { return lastEvent; },
    stop,
  };
}
