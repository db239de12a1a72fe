import type { Logger } from '../logger.ts';

/** A stop request from the operator, and a way to stop listening for it. */
export interface StopSignal {
  /** Aborts on the first SIGINT or SIGTERM. */
  readonly signal: AbortSignal;
  /** Resolves with the signal's name when it arrives. */
  readonly received: Promise<string>;
  /** Stops listening; call when the command ends for another reason. Idempotent. */
  dispose(): void;
}

/**
 * Listens for SIGINT and SIGTERM, the way every long-running command stops: the first one
 * aborts `signal`; the listeners are removed then, so a second Ctrl-C gets Node's default
 * (exit at once) when a graceful stop hangs.
 */
export function onStopSignal(log?: Logger): StopSignal {
  const controller = new AbortController();
  let resolve: (name: string) => void = () => undefined;
  const received = new Promise<string>((r) => (resolve = r));
  const dispose = (): void => {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
  };
  const stop = (name: string): void => {
    dispose();
    log?.info({ signal: name }, 'signal received');
    controller.abort(new Error(`stopped by ${name}`));
    resolve(name);
  };
  const onInt = (): void => stop('SIGINT');
  const onTerm = (): void => stop('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  return { signal: controller.signal, received, dispose };
}
