import { createContextKey, type HandlerContext } from '@connectrpc/connect';

/**
 * Resolves once the call's `requested` audit record is stored; rejects with UNAVAILABLE if
 * it cannot be. A handler whose policy has `auditOverlapsReads` must await it before its
 * first write; for every other call it has resolved before the handler runs.
 */
export const auditRecordedKey = createContextKey<() => Promise<void>>(() => Promise.resolve(), {
  description: 'the requested audit record is stored',
});

/** See {@link auditRecordedKey}: awaited by a handler right before it writes anything. */
export function auditRecorded(ctx: HandlerContext): Promise<void> {
  return ctx.values.get(auditRecordedKey)();
}
