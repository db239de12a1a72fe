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
import { create, fromBinary, toBinary, type MessageInitShape } from '@bufbuild/protobuf';
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';
import * as grpc from '@grpc/grpc-js';
import { RetryInfoSchema } from '../../gen/google/rpc/error_details_pb.ts';
import {
  SetpointOutcomeSchema,
  StreamReadingsRequestSchema,
  StreamReadingsResponseSchema,
  type ReadingsAck,
  type RelaySetpoint,
  type SetpointOutcome,
  type StreamReadingsResponse,
} from '../../gen/powerplane/v1/telemetry_pb.ts';
import type { Logger } from '../logger.ts';
import type { Spool } from './spool.ts';

/** The gRPC method path of StreamReadings. */
export const STREAM_READINGS_PATH = '/powerplane.v1.TelemetryService/StreamReadings';

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

/** A running stream client. */
export interface StreamClient {
  /** Queues a relayed setpoint's outcome for the stream (at most 256 wait while disconnected; the oldest is dropped). */
  sendOutcome(outcome: MessageInitShape<typeof SetpointOutcomeSchema>): void;
  stats(): StreamClientStats;
  /** Stops: for up to `graceMs` (default 0) it keeps sending what the spool holds and waits for the acks, then ends the call. Idempotent. */
  stop(graceMs?: number): Promise<void>;
}

type Outgoing = { batch: Uint8Array } | { outcome: SetpointOutcome } | { hello: string };

const MAX_QUEUED_OUTCOMES = 256;

/**
 * Encodes a request without decoding the spooled batch: field 1 (`batch`), wire type 2,
 * is the tag byte 0x0a, a varint length and the batch's bytes.
 */
export function encodeRequest(message: Outgoing): Buffer {
  if ('hello' in message) {
    return Buffer.from(toBinary(StreamReadingsRequestSchema, create(StreamReadingsRequestSchema, { message: { case: 'hello', value: { site: message.hello } } })));
  }
  if ('outcome' in message) {
    return Buffer.from(toBinary(StreamReadingsRequestSchema, create(StreamReadingsRequestSchema, { message: { case: 'setpointOutcome', value: message.outcome } })));
  }
  const len = message.batch.length;
  const header: number[] = [0x0a];
  let n = len;
  while (n > 0x7f) {
    header.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  header.push(n);
  const out = Buffer.allocUnsafe(header.length + len);
  out.set(header, 0);
  out.set(message.batch, header.length);
  return out;
}

/** PEM material for a TLS connection to the control plane. */
export interface AgentTls {
  readonly ca?: Buffer;
  readonly cert?: Buffer;
  readonly key?: Buffer;
}

/** Splits a URL into a grpc-js target and credentials (TLS for `https://`, with `tls` if given). */
export function grpcTarget(url: string, tls?: AgentTls): { target: string; credentials: grpc.ChannelCredentials } {
  const m = /^(https?):\/\/(.+?)\/?$/.exec(url);
  if (!m) return { target: url, credentials: grpc.credentials.createInsecure() };
  return {
    target: m[2]!,
    credentials: m[1] === 'https' ? grpc.credentials.createSsl(tls?.ca ?? null, tls?.key ?? null, tls?.cert ?? null) : grpc.credentials.createInsecure(),
  };
}

/** The longest retry delay the client honours, ms: a larger one (a bad server clock, a bug) is cut to this. */
export const MAX_RETRY_DELAY_MS = 5 * 60_000;

/**
 * The wait a gRPC status asks for, in ms: the `google.rpc.RetryInfo` in its
 * `grpc-status-details-bin` (a `google.rpc.Status`), else its `retry-after` in whole
 * seconds, at most {@link MAX_RETRY_DELAY_MS}; undefined when it says neither.
 */
export function retryDelayOf(metadata: grpc.Metadata): number | undefined {
  for (const value of metadata.get('grpc-status-details-bin')) {
    if (typeof value === 'string') continue;
    try {
      const info = retryInfoIn(value);
      if (info !== undefined) return Math.min(MAX_RETRY_DELAY_MS, info);
    } catch {
      // Malformed details: fall back to retry-after.
    }
  }
  const [header] = metadata.get('retry-after');
  const seconds = typeof header === 'string' && /^\d+$/.test(header.trim()) ? Number(header.trim()) : NaN;
  return Number.isFinite(seconds) ? Math.min(MAX_RETRY_DELAY_MS, seconds * 1000) : undefined;
}

/** The RetryInfo delay among the details of an encoded google.rpc.Status, ms. */
function retryInfoIn(status: Uint8Array): number | undefined {
  const reader = new BinaryReader(status);
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    // Status.details (3) holds google.protobuf.Any messages: type_url (1), value (2).
    if (field !== 3 || wireType !== WireType.LengthDelimited) {
      reader.skip(wireType, field);
      continue;
    }
    const any = new BinaryReader(reader.bytes());
    let typeUrl = '';
    let value: Uint8Array | undefined;
    while (any.pos < any.len) {
      const [f, w] = any.tag();
      if (f === 1 && w === WireType.LengthDelimited) typeUrl = any.string();
      else if (f === 2 && w === WireType.LengthDelimited) value = any.bytes();
      else any.skip(w, f);
    }
    if (value && typeUrl.endsWith('/google.rpc.RetryInfo')) {
      const delay = fromBinary(RetryInfoSchema, value).retryDelay;
      return Math.max(0, Number(delay?.seconds ?? 0n) * 1000 + Math.ceil((delay?.nanos ?? 0) / 1e6));
    }
  }
  return undefined;
}

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
      if (!pending) await new Promise<void>((r) => { resolve = r; });
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
  const channelOptions: grpc.ChannelOptions = {
    'grpc.keepalive_time_ms': options.keepaliveMs ?? 20_000,
    'grpc.keepalive_timeout_ms': 10_000,
    'grpc.keepalive_permit_without_calls': 1,
    // This client runs its own jittered backoff across channels; the channel itself must not add minutes to it.
    'grpc.initial_reconnect_backoff_ms': 100,
    'grpc.max_reconnect_backoff_ms': 1000,
    'grpc.max_receive_message_length': 16 * 1024 * 1024,
  };
  const metadata = new grpc.Metadata();
  if (options.token) metadata.set('authorization', `Bearer ${options.token}`);

  const stats: StreamClientStats = { connected: false, sessions: 0, batchesSent: 0, acks: 0, inFlight: 0, outcomesSent: 0, outcomesDropped: 0, throttled: 0, lastRetryAfterMs: 0 };
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
    const client = new grpc.Client(target, credentials, channelOptions);
    const call = client.makeBidiStreamRequest<Outgoing, StreamReadingsResponse>(STREAM_READINGS_PATH, serialize, deserialize, metadata.clone());
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
    call.on('metadata', () => { stats.connected = true; });
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
            if (ack.rejectedCount > 0) log?.warn({ sequence: ack.sequence.toString(), rejected: ack.rejectedCount, first: ack.rejections[0] }, 'readings rejected by the control plane');
            options.onAck?.(ack);
            waker.wake();
          });
          break;
        }
        case 'relaySetpoint':
          try { options.onRelaySetpoint?.(res.message.value); } catch (err) { log?.error({ err }, 'relay handler threw'); }
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
    const stall = setInterval(() => {
      const oldest = Math.min(...inFlight.values());
      if (inFlight.size > 0 && performance.now() - oldest > ackTimeoutMs) {
        log?.warn({ inFlight: inFlight.size, ackTimeoutMs }, 'no ack in time; reconnecting');
        call.cancel();
      }
    }, Math.min(1000, ackTimeoutMs));

    const write = async (m: Outgoing): Promise<void> => {
      if (call.write(m)) return;
      await new Promise<void>((resolve) => {
        const done = (): void => { call.off('drain', done); resolve(); };
        call.on('drain', done);
        const poll = setInterval(() => { if (ended) { clearInterval(poll); done(); } }, 50);
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
        const idle = (): Promise<void> => (stopping ? Promise.race([waker.wait(), sleep(Math.max(1, graceUntil - performance.now()))]) : waker.wait());
        const outcome = outcomes.shift();
        if (outcome) {
          await write({ outcome });
          stats.outcomesSent++;
          continue;
        }
        if (inFlight.size >= window) { await idle(); continue; }
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
        wakeBackoff = () => { clearTimeout(t); resolve(); };
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
