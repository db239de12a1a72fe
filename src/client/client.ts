/**
 * `createPowerplaneClient`: typed connect-es clients of every `powerplane.v1` service over
 * one connection, with the defaults a trading system needs (a bearer token, a deadline on
 * every unary call, retries of idempotent calls) and the helpers for streams.
 */
import { randomUUID } from 'node:crypto';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { createClient, type CallOptions, type Client, type Interceptor, type Transport } from '@connectrpc/connect';
import { createConnectTransport, createGrpcTransport, Http2SessionManager } from '@connectrpc/connect-node';
import { TokenService } from '../../gen/powerplane/v1/auth_pb.ts';
import { DeviceRegistryService } from '../../gen/powerplane/v1/devices_pb.ts';
import { DispatchService, type SetpointEvent, type WatchSetpointsRequestSchema } from '../../gen/powerplane/v1/dispatch_pb.ts';
import { FleetService } from '../../gen/powerplane/v1/fleet_pb.ts';
import { ReadingsService } from '../../gen/powerplane/v1/readings_pb.ts';
import { TelemetryService } from '../../gen/powerplane/v1/telemetry_pb.ts';
import { SYSTEM_CLIENT_CLOCK, withResilience, type ClientClock } from './resilient-transport.ts';
import { watchSetpoints } from './watch.ts';

/** The default deadline of a unary call, ms. */
export const DEFAULT_TIMEOUT_MS = 30_000;

/** The default number of attempts of a retryable call, the first included. */
export const DEFAULT_MAX_ATTEMPTS = 4;

/** The services of `powerplane.v1`, by the name of their client in {@link PowerplaneClient}. */
export const SERVICES = {
  telemetry: TelemetryService,
  readings: ReadingsService,
  devices: DeviceRegistryService,
  dispatch: DispatchService,
  fleet: FleetService,
  tokens: TokenService,
} as const;

/** Where and how to reach a Powerplane control plane. */
export interface PowerplaneClientOptions {
  /** `http://host:port` (cleartext) or `https://host:port` (TLS), e.g. `http://127.0.0.1:50051`. */
  readonly baseUrl: string;
  /** Bearer token sent as `authorization: Bearer <token>` on every call; none when absent or empty. */
  readonly token?: string;
  /**
   * `grpc`: gRPC over HTTP/2. `connect`: the Connect protocol (binary protobuf) over
   * HTTP/1.1 unless `httpVersion` says `2`, for networks whose proxies do not pass HTTP/2.
   * The server speaks both on one port.
   */
  readonly transport: 'grpc' | 'connect';
  /** Deadline of a unary call whose caller gives none, ms; default 30000, 0 for none. Server streams never get one. */
  readonly timeoutMs?: number;
  /** Attempts of an idempotent call while the server answers UNAVAILABLE, the first included, 1–10; default 4, 1 turns retries off. */
  readonly maxAttempts?: number;
  /** HTTP version of the `connect` transport; default `1.1`. gRPC is always HTTP/2. */
  readonly httpVersion?: '1.1' | '2';
  /** For an `https://` base URL: CAs to trust instead of the system's, and a client certificate for mutual TLS (PEM). */
  readonly tls?: { readonly ca?: string | Buffer; readonly cert?: string | Buffer; readonly key?: string | Buffer };
  /** More client interceptors (logging, tracing), run on every attempt after the bearer token is set. */
  readonly interceptors?: readonly Interceptor[];
}

/** Clients of every `powerplane.v1` service, sharing one connection. */
export interface PowerplaneClient {
  /** Ingest: `StreamReadings`, `WriteReadings`. */
  readonly telemetry: Client<typeof TelemetryService>;
  /** Queries: readings, 5-minute aggregates, settlement periods, datum readings. */
  readonly readings: Client<typeof ReadingsService>;
  /** The device registry. */
  readonly devices: Client<typeof DeviceRegistryService>;
  /** Market data, dispatch instructions, overrides, site settings, control state, setpoint events. */
  readonly dispatch: Client<typeof DispatchService>;
  /** Fleet and per-site totals and open alerts, in one call. */
  readonly fleet: Client<typeof FleetService>;
  /** API tokens. */
  readonly tokens: Client<typeof TokenService>;
  /** The transport behind them (defaults and retries included), for clients of other services such as `grpc.health.v1.Health`. */
  readonly transport: Transport;
  /** Setpoint events one at a time, oldest first, until the caller stops (see {@link watchSetpoints}). */
  watchSetpoints(
    request: MessageInitShape<typeof WatchSetpointsRequestSchema>,
    options?: CallOptions,
  ): AsyncGenerator<SetpointEvent, void, undefined>;
  /** Closes the HTTP/2 connection and fails the calls still on it; an idle connection does not keep the process alive anyway. */
  close(): void;
}

/**
 * Creates clients of every `powerplane.v1` service at `options.baseUrl`. Every call
 * carries the bearer token. Unary calls get a deadline of `timeoutMs` (30 s) unless the
 * caller passes one (`{ timeoutMs }` as the call's options); server streams get none. A
 * read (`Get*`, `List*`), a write with a `request_id` (filled in with a random UUID when
 * left empty, the same on every attempt) and `PublishMarketData` are sent again when the
 * server answers UNAVAILABLE, up to `maxAttempts` in all, after the wait the server's
 * `google.rpc.RetryInfo` asks for or else an exponential backoff with full jitter (100 ms
 * doubling to 2 s), never past the call's deadline. Other calls are sent once. A bad option
 * throws a TypeError naming it.
 *
 * @example
 * const client = createPowerplaneClient({ baseUrl: 'http://127.0.0.1:50051', token, transport: 'grpc' });
 * const { devices } = await client.devices.listDevices({ site: 'site-a' });
 */
export function createPowerplaneClient(options: PowerplaneClientOptions): PowerplaneClient {
  return createPowerplaneClientWith(options, SYSTEM_CLIENT_CLOCK);
}

/** {@link createPowerplaneClient} on a given clock (tests pass a fake one). */
export function createPowerplaneClientWith(options: PowerplaneClientOptions, clock: ClientClock): PowerplaneClient {
  const checked = checkOptions(options);
  const interceptors: Interceptor[] = [...(checked.token ? [bearer(checked.token)] : []), ...(options.interceptors ?? [])];
  const nodeOptions = options.tls ? { ca: options.tls.ca, cert: options.tls.cert, key: options.tls.key } : {};
  let sessions: Http2SessionManager | undefined;
  let inner: Transport;
  if (checked.transport === 'connect' && checked.httpVersion === '1.1') {
    inner = createConnectTransport({ baseUrl: checked.baseUrl, httpVersion: '1.1', interceptors, nodeOptions });
  } else {
    sessions = new Http2SessionManager(checked.baseUrl, {}, nodeOptions);
    const common = { baseUrl: checked.baseUrl, httpVersion: '2' as const, interceptors, sessionManager: sessions };
    inner = checked.transport === 'grpc' ? createGrpcTransport(common) : createConnectTransport(common);
  }
  const transport = withResilience(inner, {
    timeoutMs: checked.timeoutMs,
    maxAttempts: checked.maxAttempts,
    newRequestId: randomUUID,
    clock,
  });
  const dispatch = createClient(SERVICES.dispatch, transport);
  return {
    telemetry: createClient(SERVICES.telemetry, transport),
    readings: createClient(SERVICES.readings, transport),
    devices: createClient(SERVICES.devices, transport),
    dispatch,
    fleet: createClient(SERVICES.fleet, transport),
    tokens: createClient(SERVICES.tokens, transport),
    transport,
    watchSetpoints: (request, callOptions) => watchSetpoints(dispatch, request, callOptions),
    close: () => sessions?.abort(),
  };
}

function bearer(token: string): Interceptor {
  return (next) => (req) => {
    req.header.set('authorization', `Bearer ${token}`);
    return next(req);
  };
}

function checkOptions(options: PowerplaneClientOptions) {
  const fail = (field: string, rule: string, got: unknown) =>
    new TypeError(`createPowerplaneClient: options.${field} ${rule} (got ${JSON.stringify(got) ?? String(got)})`);
  let url: URL | undefined;
  try {
    url = new URL(options.baseUrl);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    throw fail('baseUrl', 'must be an http:// or https:// URL such as http://127.0.0.1:50051', options.baseUrl);
  }
  if (options.transport !== 'grpc' && options.transport !== 'connect')
    throw fail('transport', "must be 'grpc' or 'connect'", options.transport);
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (typeof timeoutMs !== 'number' || !Number.isFinite(timeoutMs) || timeoutMs < 0) {
    throw fail('timeoutMs', 'must be a number of milliseconds, 0 or more', options.timeoutMs);
  }
  const maxAttempts = options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1 || maxAttempts > 10) {
    throw fail('maxAttempts', 'must be an integer from 1 to 10', options.maxAttempts);
  }
  const httpVersion = options.httpVersion ?? '1.1';
  if (httpVersion !== '1.1' && httpVersion !== '2') throw fail('httpVersion', "must be '1.1' or '2'", options.httpVersion);
  if (options.token !== undefined && (typeof options.token !== 'string' || /[\r\n]/.test(options.token))) {
    throw fail('token', 'must be a string without line breaks', typeof options.token === 'string' ? '<redacted>' : options.token);
  }
  if (options.tls && url.protocol !== 'https:') throw fail('tls', 'needs an https:// baseUrl', options.baseUrl);
  return { baseUrl: options.baseUrl, transport: options.transport, timeoutMs, maxAttempts, httpVersion, token: options.token };
}
