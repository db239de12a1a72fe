/** How the agent reaches the control plane over grpc-js: target, credentials and channel settings. */
import * as grpc from '@grpc/grpc-js';

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
    credentials:
      m[1] === 'https'
        ? grpc.credentials.createSsl(tls?.ca ?? null, tls?.key ?? null, tls?.cert ?? null)
        : grpc.credentials.createInsecure(),
  };
}

/**
 * The channel settings of a session: HTTP/2 keepalive pings every `keepaliveMs` (a ping
 * unanswered for 10 s drops the connection) and messages up to 16 MiB.
 */
export function channelOptions(keepaliveMs: number): grpc.ChannelOptions {
  return {
    'grpc.keepalive_time_ms': keepaliveMs,
    'grpc.keepalive_timeout_ms': 10_000,
    'grpc.keepalive_permit_without_calls': 1,
    // This client runs its own jittered backoff across channels; the channel itself must not add minutes to it.
    'grpc.initial_reconnect_backoff_ms': 100,
    'grpc.max_reconnect_backoff_ms': 1000,
    'grpc.max_receive_message_length': 16 * 1024 * 1024,
  };
}
