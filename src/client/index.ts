/**
 * `powerplane/client`: the package entry point for programs that call Powerplane's API
 * from Node.js. It holds the client factory, its helpers, and everything of the generated
 * `powerplane.v1` code a caller needs (services, message schemas and types, enums), so
 * no caller reaches into the package's folders. Messages are plain objects: pass an
 * object literal, or build one with `create(Schema, init)`.
 */
export {
  createPowerplaneClient,
  DEFAULT_MAX_ATTEMPTS,
  DEFAULT_TIMEOUT_MS,
  type PowerplaneClient,
  type PowerplaneClientOptions,
} from './client.ts';
export { listAll } from './paging.ts';
export { watchSetpoints } from './watch.ts';
export { INITIAL_BACKOFF_MS, MAX_BACKOFF_MS } from './backoff.ts';
export { isRetryable } from './call-policy.ts';

export * from '../../gen/powerplane/v1/auth_pb.ts';
export * from '../../gen/powerplane/v1/devices_pb.ts';
export * from '../../gen/powerplane/v1/dispatch_pb.ts';
export * from '../../gen/powerplane/v1/fleet_pb.ts';
export * from '../../gen/powerplane/v1/readings_pb.ts';
export * from '../../gen/powerplane/v1/telemetry_pb.ts';
export { RetryInfoSchema, type RetryInfo } from '../../gen/google/rpc/error_details_pb.ts';

// The runtime pieces a caller of the generated code needs, from the very copies the client
// uses (an `instanceof ConnectError` against another copy of the package would fail).
export { create, toJson, fromJson, toBinary, fromBinary } from '@bufbuild/protobuf';
export { timestampDate, timestampFromDate, timestampFromMs, timestampMs, durationFromMs, durationMs } from '@bufbuild/protobuf/wkt';
export { Code, ConnectError, type CallOptions, type Client, type Interceptor } from '@connectrpc/connect';
