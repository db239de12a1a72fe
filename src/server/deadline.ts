import { Code, ConnectError, type Interceptor } from '@connectrpc/connect';
import type { Registry as MetricsRegistry } from 'prom-client';
import type { ServerLimits } from '../config.ts';
import { refusalCounter } from '../rpc/refusals.ts';

/** Headers by which gRPC, gRPC-Web (`grpc-timeout`) and Connect (`connect-timeout-ms`) clients send a deadline. */
const DEADLINE_HEADERS = ['grpc-timeout', 'connect-timeout-ms'];

/** Dependencies of {@link createDeadlineInterceptor}. */
export interface DeadlineDeps {
  readonly limits: Pick<ServerLimits, 'defaultTimeoutMs'>;
  /** The server's Prometheus registry; calls cut short are counted there. */
  readonly metricsRegistry: MetricsRegistry;
}

/**
 * Gives every unary call a deadline and ends the call when it passes, even if the handler
 * ignores its signal.
 *
 * - A call whose client sent no deadline gets `defaultTimeoutMs`: the handler's signal is
 *   replaced by one that also aborts then, with a DEADLINE_EXCEEDED reason, so database
 *   work that listens to it stops; connect-node 2.1.1 would otherwise leave `signal`
 *   unbounded (it arms a timer only from the client's header, and `maxTimeoutMs` only
 *   refuses longer ones).
 * - Either deadline (the client's, which connect turns into the same signal, or the
 *   default) is raced: the caller gets DEADLINE_EXCEEDED at once rather than when the
 *   handler finally returns. Its result is then dropped.
 * - Other aborts of the signal (server shutdown, client gone) are not raced, so a graceful
 *   stop still lets calls in flight finish.
 * - Streams are exempt: StreamReadings, WatchSetpoints and Health.Watch live for hours and
 *   are kept honest by HTTP/2 keepalive and flow control instead.
 */
export function createDeadlineInterceptor(deps: DeadlineDeps): Interceptor {
  const { defaultTimeoutMs } = deps.limits;
  const cutShort = refusalCounter(deps.metricsRegistry);
  return (next) => async (req) => {
    if (req.stream) return next(req);
    const hasClientDeadline = DEADLINE_HEADERS.some((name) => req.header.has(name));
    let timer: NodeJS.Timeout | undefined;
    let signal = req.signal;
    let unlink = () => undefined as void;
    if (!hasClientDeadline) {
      const controller = new AbortController();
      const forward = () => controller.abort(req.signal.reason);
      if (req.signal.aborted) forward();
      else req.signal.addEventListener('abort', forward, { once: true });
      unlink = () => req.signal.removeEventListener('abort', forward);
      timer = setTimeout(() => {
        controller.abort(
          new ConnectError(
            `the call ran past the default deadline of ${defaultTimeoutMs} ms - send a deadline to allow longer`,
            Code.DeadlineExceeded,
          ),
        );
      }, defaultTimeoutMs);
      timer.unref();
      signal = controller.signal;
    }
    let onAbort = () => undefined as void;
    const deadline = new Promise<never>((_, reject) => {
      onAbort = () => {
        const reason: unknown = signal.reason;
        if (reason instanceof ConnectError && reason.code === Code.DeadlineExceeded) reject(reason);
      };
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    });
    const call = next({ ...req, signal });
    // Whichever loses the race must not surface as an unhandled rejection.
    call.catch(() => undefined);
    deadline.catch(() => undefined);
    try {
      return await Promise.race([call, deadline]);
    } catch (err) {
      if (err === signal.reason && err instanceof ConnectError && err.code === Code.DeadlineExceeded) cutShort.inc({ reason: 'deadline' });
      throw err;
    } finally {
      clearTimeout(timer);
      unlink();
      signal.removeEventListener('abort', onAbort);
    }
  };
}
