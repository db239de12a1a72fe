import type { Logger } from '../logger.ts';
import { requestInFlight } from './request-guard.ts';

/** Options of {@link installLastResort}. */
export interface LastResortOptions {
  readonly log: Logger;
  /** Ends the process after an error outside every request. Default `process.exit`. */
  readonly exit?: (code: number) => void;
}

/**
 * Installs the process's handler of last resort for uncaught exceptions and unhandled
 * rejections (Node raises the latter as uncaught exceptions with origin
 * `unhandledRejection` when nothing listens for `unhandledRejection`).
 *
 * - An error raised in a request's async context (see `request-guard.ts`: a timer, a
 *   promise or an I/O callback the request's handler started, or a listener of its
 *   request's or response's events) is logged and answered by that request, and the
 *   process keeps serving. Node runs `uncaughtException` listeners in the context the
 *   error was raised in, and for an unhandled rejection in the rejected promise's, which
 *   is how the request is found.
 * - Any other error is logged as fatal and the process exits with code 1, as Node's
 *   default would: its state is unknown, and systemd or Kubernetes restart it; every
 *   battery falls back on its own reversion timeout meanwhile.
 *
 * For `serve`, not for library code: tests and embedders keep Node's behaviour unless
 * they install it. Returns the function that removes it.
 */
export function installLastResort(options: LastResortOptions): () => void {
  const { log } = options;
  const exit = options.exit ?? ((code: number) => process.exit(code));
  const onUncaught = (err: Error, origin: NodeJS.UncaughtExceptionOrigin): void => {
    const request = requestInFlight();
    if (request) {
      try {
        request.fail(err, origin);
        return;
      } catch (failure) {
        log.fatal({ err, failure, origin }, 'an error escaped a request and could not be answered: exiting');
        exit(1);
        return;
      }
    }
    log.fatal({ err, origin }, 'uncaught error outside any request: exiting');
    exit(1);
  };
  process.on('uncaughtException', onUncaught);
  return () => {
    process.off('uncaughtException', onUncaught);
  };
}
