import { waitFor as waitUntil } from '../support/wait.ts';
import type { SetpointEvent } from '../../src/modbus/types.ts';

/** Polls `predicate` every 10 ms until it holds or `timeoutMs` passes (the shared bounded wait). */
export function waitFor(predicate: () => boolean, timeoutMs = 3000): Promise<void> {
  return waitUntil('the condition', predicate, timeoutMs, 10);
}

/** Collects setpoint events and finds them. */
export function eventLog(): { events: SetpointEvent[]; onEvent: (e: SetpointEvent) => void; has: (seq: number, phase: SetpointEvent['phase']) => boolean; final: (seq: number) => SetpointEvent | undefined } {
  const events: SetpointEvent[] = [];
  return {
    events,
    onEvent: (e) => { events.push(e); },
    has: (seq, phase) => events.some((e) => e.seq === seq && e.phase === phase),
    final: (seq) => events.filter((e) => e.seq === seq && (e.phase === 'verified' || e.phase === 'dropped' || (e.phase === 'failed' && !e.willRetry))).at(-1),
  };
}
