/**
 * A connect-es transport that gives unary calls a default deadline and sends idempotent
 * calls again after UNAVAILABLE. It wraps the HTTP transport rather than being an
 * interceptor, because a transport's interceptors run after the deadline is fixed: this
 * way each attempt carries the time that is really left (`grpc-timeout` /
 * `connect-timeout-ms`), and the one deadline bounds every attempt and every wait.
 */
import type { DescMessage, DescMethodStreaming, DescMethodUnary, MessageInitShape } from '@bufbuild/protobuf';
import { Code, ConnectError, type ContextValues, type StreamResponse, type Transport, type UnaryResponse } from '@connectrpc/connect';
import { backoffDelayMs, retryInfoDelayMs } from './backoff.ts';
import { isRetryable, withRequestId } from './call-policy.ts';

/** The headers a caller passes with a call, as the transport takes them. */
type HeaderInit = Parameters<Transport['unary']>[3];

/** Time, waits and chance as the client uses them; tests pass their own. */
export interface ClientClock {
  /** Milliseconds on a monotonic scale. */
  now(): number;
  /** Resolves after `ms`; rejects with a CANCELED ConnectError as soon as `signal` aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /** A uniform draw in [0, 1). */
  random(): number;
}

/** `performance.now()`, Node's timers and `Math.random`. */
export const SYSTEM_CLIENT_CLOCK: ClientClock = Object.freeze({
  now: () => performance.now(),
  sleep: (ms: number, signal?: AbortSignal) =>
    new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(abortError(signal));
      const onAbort = () => {
        clearTimeout(timer);
        reject(abortError(signal!));
      };
      const timer = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      signal?.addEventListener('abort', onAbort, { once: true });
    }),
  random: () => Math.random(),
});

/** What {@link withResilience} does. */
export interface ResilienceOptions {
  /** Deadline of a unary call whose caller gave none, ms; 0 means none. Server streams never get one. */
  readonly timeoutMs: number;
  /** Attempts of a retryable call in all, the first included; 1 turns retries off. */
  readonly maxAttempts: number;
  /** A new `request_id` for a write whose caller left it empty. */
  readonly newRequestId: () => string;
  readonly clock: ClientClock;
}

/**
 * `inner` with, for unary calls: the default deadline when the caller gave none (a caller's
 * `timeoutMs` of 0 or less means none); a `request_id` filled in for writes that have one,
 * the same on every attempt; and, for retryable calls ({@link isRetryable}), up to
 * `maxAttempts` attempts while the server answers UNAVAILABLE, waiting what its RetryInfo
 * asks for, else the jittered backoff. A wait that would end past the deadline is not
 * started: the call fails with the last UNAVAILABLE. A caller's abort ends a wait at once.
 * Streams go through unchanged.
 */
export function withResilience(inner: Transport, options: ResilienceOptions): Transport {
  const { clock } = options;
  return {
    async unary<I extends DescMessage, O extends DescMessage>(
      method: DescMethodUnary<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: HeaderInit,
      input: MessageInitShape<I>,
      contextValues?: ContextValues,
    ): Promise<UnaryResponse<I, O>> {
      const budget = timeoutMs ?? options.timeoutMs;
      const deadline = budget > 0 ? clock.now() + budget : Infinity;
      const message = withRequestId(method, input, options.newRequestId);
      const attempts = isRetryable(method) ? options.maxAttempts : 1;
      for (let attempt = 1; ; attempt++) {
        // Whole milliseconds, never more than is left: both protocols send an integer.
        const left = deadline === Infinity ? undefined : Math.max(1, Math.floor(deadline - clock.now()));
        try {
          return await inner.unary(method, signal, left, header, message, contextValues);
        } catch (e) {
          const err = ConnectError.from(e);
          if (err.code !== Code.Unavailable || attempt >= attempts || signal?.aborted) throw err;
          const wait = retryInfoDelayMs(err) ?? backoffDelayMs(attempt, () => clock.random());
          if (clock.now() + wait + 1 > deadline) throw err;
          await clock.sleep(wait, signal);
        }
      }
    },
    stream<I extends DescMessage, O extends DescMessage>(
      method: DescMethodStreaming<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: HeaderInit,
      input: AsyncIterable<MessageInitShape<I>>,
      contextValues?: ContextValues,
    ): Promise<StreamResponse<I, O>> {
      return inner.stream(method, signal, timeoutMs, header, input, contextValues);
    },
  };
}

function abortError(signal: AbortSignal): ConnectError {
  return signal.reason instanceof ConnectError
    ? signal.reason
    : new ConnectError('the operation was aborted', Code.Canceled, undefined, undefined, signal.reason);
}
