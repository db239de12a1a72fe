/**
 * Setpoint events one at a time. `WatchSetpoints` sends events in batches (up to 500 in a
 * burst); {@link watchSetpoints} flattens them and ends the stream when the caller stops.
 */
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { CallOptions, Client } from '@connectrpc/connect';
import type { DispatchService, SetpointEvent, WatchSetpointsRequestSchema } from '../../gen/powerplane/v1/dispatch_pb.ts';

/**
 * Yields the setpoint events `request` selects (a site, a battery, some phases), oldest
 * first, as `dispatch.watchSetpoints` receives them, until the server ends the stream or
 * the caller stops: by `options.signal`, or by leaving the `for await` loop, which cancels
 * the stream (connect-es alone would keep it open until the signal fires). There is no
 * deadline unless `options.timeoutMs` sets one, and no reconnection: events that happen
 * while no stream is open are not replayed, so a caller that must not miss one re-reads
 * `GetControlState` after reconnecting.
 */
export async function* watchSetpoints(
  dispatch: Client<typeof DispatchService>,
  request: MessageInitShape<typeof WatchSetpointsRequestSchema>,
  options: CallOptions = {},
): AsyncGenerator<SetpointEvent, void, undefined> {
  const stop = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
  try {
    for await (const response of dispatch.watchSetpoints(request, { ...options, signal })) yield* response.events;
  } finally {
    stop.abort();
  }
}
