import type { StreamResponse } from '@connectrpc/connect';

/**
 * `res` with `onError` applied to what its message stream throws. A streaming handler
 * runs, and fails, while its messages are read — after the interceptor's `next()` has
 * returned — so an interceptor that handles errors must also watch the stream.
 * `onError` returns the error to throw instead.
 */
export function onStreamError(res: StreamResponse, onError: (err: unknown) => unknown): StreamResponse {
  const messages = res.message;
  return {
    ...res,
    message: (async function* () {
      try {
        yield* messages;
      } catch (err) {
        throw await onError(err);
      }
    })(),
  };
}
