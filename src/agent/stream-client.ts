/**
 * The agent's side of `TelemetryService.StreamReadings` over `@grpc/grpc-js`: sends the
 * spool's unacknowledged batches oldest first, acknowledges them in the spool as acks
 * arrive (in any order), hands relayed setpoints to the relay and sends their outcomes up.
 * With a site set, each session opens with an AgentHello naming it (relay mode).
 *
 * One session is one gRPC call on a fresh channel. When it ends (server gone, network cut,
 * no ack in time) the client waits a backoff with full jitter — a random delay from 0 to
 * min(maxMs, initialMs × 2^attempt) — so a fleet of agents does not reconnect at once, then
 * replays from the oldest unacknowledged batch. Batches sent in the lost session may be
 * sent again; the server stores a re-sent reading once and counts it as a duplicate.
 *
 * A session the server ends with RESOURCE_EXHAUSTED and a retry delay (its ingest rate
 * limit) is not a failure: the client waits that delay (plus up to a tenth more, so agents
 * sharing a limit do not return together), without growing its backoff, and replays. The
 * refused batch was never acknowledged, so it is still in the spool; the agent keeps
 * polling into the spool meanwhile, so nothing is lost.
 */
import { create, fromBinary, type MessageInitShape } from '@bufbuild/protobuf';
import * as grpc from '@grpc/grpc-js';
import {
  SetpointOutcomeSchema,
  StreamReadingsResponseSchema,
  type ReadingsAck,
  type RelaySetpoint,
  type SetpointOutcome,
  type StreamReadingsResponse,
} from '../../gen/powerplane/v1/telemetry_pb.ts';
import type { Logger } from '../logger.ts';
import { channelOptions, grpcTarget, type AgentTls } from './grpc-channel.ts';
import { retryDelayOf } from './retry-delay.ts';
import type { Spool } from './spool.ts';
import { encodeRequest, STREAM_READINGS_PATH, type Outgoing } from './stream-request.ts';

/** Options of {@link createStreamClient}. */
export interface StreamClientOptions {
  /** `http://host:port` (cleartext), `https://host:port` (TLS) or `host:port` (cleartext). */
  url: string;
  /** Sent as `authorization: Bearer <token>` on every call. */
  token?: string;
  /** For `https://`: the CAs to trust instead of the system's, and a client certificate (mutual TLS). PEM. */
  tls?: AgentTls;
  spool: Spool;
  log?: Logger;
  /** Batches sent and not yet acknowledged, at most; default 16. */
  window?: number;
  /** Reconnect backoff, ms: first ceiling and largest ceiling; default 250 and 30 000. */
  backoff?: { initialMs: number; maxMs: number };
  /** HTTP/2 keepalive ping interval, ms; default 20 000 (a ping unanswered for 10 s drops the connection). */
  keepaliveMs?: number;
  /** A session whose oldest sent batch has no ack after this long is dropped and retried, ms; default 30 000. */
  ackTimeoutMs?: number;
  /**
   * The agent's site. When set, every session opens with an AgentHello naming it, so the
   * control plane can relay setpoints down the stream (relay mode).
   */
  site?: string;
  /** Receives every relayed setpoint. */
  onRelaySetpoint?: (setpoint: RelaySetpoint) => void;
  /** Receives every ack (after the spool recorded it). */
  onAck?: (ack: ReadingsAck) => void;
  /** Random numbers in [0, 1) for the jitter; default Math.random. */
  random?: () => number;
}

/** Counters of a stream client. */
export interface StreamClientStats {
  connected: boolean;
  sessions: number;
  batchesSent: number;
  acks: number;
  inFlight: number;
  outcomesSent: number;
  outcomesDropped: number;
  /** Sessions the server ended because of its ingest rate limit, each followed by its retry delay. */
  throttled: number;
  /** The retry delay of the last of those, ms (0 before any). */
  lastRetryAfterMs: number;
}

/** The counters of a client that has not started: also what the agent reports before its stream exists. */
export function emptyStreamStats(): StreamClientStats {
  return {
    connected: false,
    sessions: 0,
    batchesSent: 0,
    acks: 0,
    inFlight: 0,
    outcomesSent: 0,
    outcomesDropped: 0,
    throttled: 0,
    lastRetryAfterMs: 0,
  };
}

/** A running stream client. */
export interface StreamClient {
  /** Queues a relayed setpoint's outcome for the stream (at most 256 wait while disconnected; the oldest is dropped). */
  sendOutcome(outcome: MessageInitShape<typeof SetpointOutcomeSchema>): void;
  stats(): StreamClientStats;
  /**
   * Stops: for up to `graceMs` (default 0) it keeps sending what the spool holds and waits for the
   * acks, then ends the call. Idempotent.
   */
  stop(graceMs?: number): Promise<void>;
}

const MAX_QUEUED_OUTCOMES = 256;

/** A one-shot wake-up that remembers a wake that came before the wait. */
function createWaker(): { wake(): void; wait(): Promise<void> } {
  let pending = false;
  let resolve: (() => void) | undefined;
  return {
    wake() {
      pending = true;
      const r = resolve;
      resolve = undefined;
      r?.();
    },
    async wait() {
      if (!pending)
        await new Promise<void>((r) => {
          resolve = r;
        });
      pending = false;
    },
  };
}

/** Creates and starts a stream client; it connects at once and keeps reconnecting until stopped. */
export function createStreamClient(options: StreamClientOptions): StreamClient {
  const { spool, log } = options;
  const window = options.window ?? 16;
  const backoff = options.backoff ?? { initialMs: 250, maxMs: 30_000 };
  const ackTimeoutMs = options.ackTimeoutMs ?? 30_000;
  const random = options.random ?? Math.random;
  const { target, credentials } = grpcTarget(options.url, options.tls);
  const channel = channelOptions(options.keepaliveMs ?? 20_000);
  const metadata = new grpc.Metadata();
  if (options.token) metadata.set('authorization', `Bearer ${options.token}`);

  const stats = emptyStreamStats();
  const outcomes: SetpointOutcome[] = [];
  const waker = createWaker();
  const unwatch = spool.watch(() => waker.wake());
  let stopping = false;
  let graceUntil = 0;
  let cancelSession: (() => void) | undefined;
  let wakeBackoff: (() => void) | undefined;

  const serialize = (m: Outgoing): Buffer => encodeRequest(m);
  const deserialize = (b: Buffer): StreamReadingsResponse => fromBinary(StreamReadingsResponseSchema, b);

  /** Runs one session; says whether it got any ack, and the retry delay when the server's rate limit ended it. */
  const runSession = async (): Promise<{ healthy: boolean; retryAfterMs: number | undefined }> => {
    const client = new grpc.Client(target, credentials, channel);
    const call = client.makeBidiStreamRequest<Outgoing, StreamReadingsResponse>(
      STREAM_READINGS_PATH,
      serialize,
      deserialize,
      metadata.clone(),
    );
    stats.sessions++;
    const inFlight = new Map<bigint, number>();
    let healthy = false;
    let ended = false;
    let retryAfterMs: number | undefined;
    let acking: Promise<unknown> = Promise.resolve();
    const finish = (why: string, err?: Error): void => {
      if (ended) return;
      ended = true;
      stats.connected = false;
      if (stopping) {
        // Quiet: the client ended it.
      } else if (retryAfterMs !== undefined) {
        log?.info({ retryAfterMs, inFlight: inFlight.size }, 'the control plane asked to slow down (ingest rate limit); backing off');
      } else {
        log?.warn({ reason: why, error: err?.message, inFlight: inFlight.size }, 'telemetry stream ended');
      }
      waker.wake();
    };
    /** Notes the retry delay of a RESOURCE_EXHAUSTED status that carries one. */
    const noteStatus = (code: grpc.status, metadata: grpc.Metadata | undefined): void => {
      if (code === grpc.status.RESOURCE_EXHAUSTED && metadata) retryAfterMs ??= retryDelayOf(metadata);
    };
    cancelSession = () => call.cancel();
    call.on('metadata', () => {
      stats.connected = true;
    });
    call.on('data', (res: StreamReadingsResponse) => {
      stats.connected = true;
      switch (res.message.case) {
        case 'ack': {
          const ack = res.message.value;
          healthy = true;
          stats.acks++;
          acking = acking.then(async () => {
            await spool.ack(ack.sequence).catch((e: unknown) => log?.error({ err: e }, 'spool ack failed'));
            inFlight.delete(ack.sequence);
            if (ack.rejectedCount > 0)
              log?.warn(
                { sequence: ack.sequence.toString(), rejected: ack.rejectedCount, first: ack.rejections[0] },
                'readings rejected by the control plane',
              );
            options.onAck?.(ack);
            waker.wake();
          });
          break;
        }
        case 'relaySetpoint':
          try {
            options.onRelaySetpoint?.(res.message.value);
          } catch (err) {
            log?.error({ err }, 'relay handler threw');
          }
          break;
        case undefined:
          break;
        default: {
          const never: never = res.message;
          return never;
        }
      }
    });
    call.on('error', (err: grpc.ServiceError) => {
      noteStatus(err.code, err.metadata);
      finish(`status ${grpc.status[err.code] ?? err.code}`, err);
    });
    call.on('status', (st: grpc.StatusObject) => {
      noteStatus(st.code, st.metadata);
      finish(`status ${grpc.status[st.code] ?? st.code}`);
    });
    call.on('end', () => finish('server ended the stream'));
    const stall = setInterval(
      () => {
        const oldest = Math.min(...inFlight.values());
        if (inFlight.size > 0 && performance.now() - oldest > ackTimeoutMs) {
          log?.warn({ inFlight: inFlight.size, ackTimeoutMs }, 'no ack in time; reconnecting');
          call.cancel();
        }
      },
      Math.min(1000, ackTimeoutMs),
    );

    const write = async (m: Outgoing): Promise<void> => {
      if (call.write(m)) return;
      await new Promise<void>((resolve) => {
        const done = (): void => {
          call.off('drain', done);
          resolve();
        };
        call.on('drain', done);
        const poll = setInterval(() => {
          if (ended) {
            clearInterval(poll);
            done();
          }
        }, 50);
        call.once('drain', () => clearInterval(poll));
      });
    };

    try {
      // The hello goes first, so the server knows the site before any outcome arrives.
      if (options.site) await write({ hello: options.site });
      let cursor = 0n;
      while (!ended) {
        stats.inFlight = inFlight.size;
        if (stopping && performance.now() >= graceUntil) break;
        // While stopping, wait only until the grace period ends.
        const idle = (): Promise<void> =>
          stopping ? Promise.race([waker.wait(), sleep(Math.max(1, graceUntil - performance.now()))]) : waker.wait();
        const outcome = outcomes.shift();
        if (outcome) {
          await write({ outcome });
          stats.outcomesSent++;
          continue;
        }
        if (inFlight.size >= window) {
          await idle();
          continue;
        }
        const record = await spool.next(cursor);
        if (!record) {
          if (stopping && inFlight.size === 0) break;
          await idle();
          continue;
        }
        cursor = record.sequence;
        inFlight.set(record.sequence, performance.now());
        stats.batchesSent++;
        await write({ batch: record.payload });
      }
    } finally {
      clearInterval(stall);
      cancelSession = undefined;
      if (!ended) {
        call.end();
        call.cancel();
      }
      await acking;
      stats.inFlight = 0;
      stats.connected = false;
      client.close();
    }
    return { healthy, retryAfterMs };
  };

  const loop = async (): Promise<void> => {
    let attempt = 0;
    while (!stopping) {
      let outcome: Awaited<ReturnType<typeof runSession>> = { healthy: false, retryAfterMs: undefined };
      try {
        outcome = await runSession();
      } catch (err) {
        log?.error({ err }, 'telemetry stream session failed');
      }
      if (stopping) break;
      let delay: number;
      if (outcome.retryAfterMs !== undefined) {
        // The server is up and said when: no growing backoff, but never sooner than asked.
        stats.throttled++;
        stats.lastRetryAfterMs = outcome.retryAfterMs;
        attempt = 0;
        delay = outcome.retryAfterMs + Math.floor(random() * outcome.retryAfterMs * 0.1);
      } else {
        attempt = outcome.healthy ? 0 : attempt + 1;
        const ceiling = Math.min(backoff.maxMs, backoff.initialMs * 2 ** Math.min(attempt, 30));
        delay = Math.floor(random() * ceiling);
      }
      log?.info({ attempt, delayMs: delay }, 'reconnecting to the control plane');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, delay);
        wakeBackoff = () => {
          clearTimeout(t);
          resolve();
        };
      });
      wakeBackoff = undefined;
    }
  };
  const running = loop();

  let stopped: Promise<void> | undefined;
  return {
    sendOutcome(init) {
      outcomes.push(create(SetpointOutcomeSchema, init));
      if (outcomes.length > MAX_QUEUED_OUTCOMES) {
        outcomes.shift();
        stats.outcomesDropped++;
      }
      waker.wake();
    },
    stats: () => ({ ...stats }),
    stop(graceMs = 0) {
      stopped ??= (async () => {
        graceUntil = performance.now() + graceMs;
        stopping = true;
        unwatch();
        waker.wake();
        wakeBackoff?.();
        if (graceMs <= 0) cancelSession?.();
        await running;
      })();
      return stopped;
    },
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
