import { SCOPES, type Scope } from './principal.ts';

/**
 * The classes of rate-limited methods (`server/rate-limit.ts`); each has its own token
 * bucket per caller and its own rate and burst settings (`POWERPLANE_DISPATCH_RATE_PER_S`, …).
 */
export const RATE_LIMIT_CLASSES = ['dispatch', 'marketdata', 'registry', 'tokens'] as const;
/** One of {@link RATE_LIMIT_CLASSES}. */
export type RateLimitClass = (typeof RATE_LIMIT_CLASSES)[number];

/**
 * What one RPC needs and how it is treated: any one of `scopes`; `audited` calls are
 * recorded before and after; a method with a `rateLimit` class is limited per caller in
 * that class's bucket, every other method is not rate-limited.
 */
export interface MethodPolicy {
  readonly scopes: readonly Scope[];
  readonly audited?: boolean;
  readonly rateLimit?: RateLimitClass;
  /**
   * The handler waits for its `requested` audit record itself (`auditRecorded` in the
   * audit interceptor) before its first write, so its reads overlap that record's insert.
   * Only for handlers on the latency path of a dispatch.
   */
  readonly auditOverlapsReads?: boolean;
}

/** Needs no credentials: health (load balancers) and reflection (grpcurl's `list`, the schema only). */
export const PUBLIC = 'public';

const READ: readonly Scope[] = ['readings:read'];
const DISPATCH_READ: readonly Scope[] = ['readings:read', 'dispatch:write', 'control:write'];

/**
 * Every RPC's settings, by service and method: the scope it needs, whether it is audited,
 * and its rate-limit class. The authentication interceptor refuses any method missing here
 * (fail closed); a test checks every served method has an entry.
 */
export const POLICY: Readonly<Record<string, Readonly<Record<string, MethodPolicy | typeof PUBLIC>>>> = {
  'powerplane.v1.TelemetryService': {
    StreamReadings: { scopes: ['telemetry:write'] },
    WriteReadings: { scopes: ['telemetry:write'] },
  },
  'powerplane.v1.ReadingsService': {
    ListMeterReadings: { scopes: READ },
    ListBessReadings: { scopes: READ },
    GetLatestBessState: { scopes: READ },
    ListMeterAggregates: { scopes: READ },
    ListSettlementPeriods: { scopes: READ },
    ListBatterySeries: { scopes: READ },
    ListDatumReadings: { scopes: READ },
  },
  'powerplane.v1.DeviceRegistryService': {
    CreateDevice: { scopes: ['registry:admin'], audited: true, rateLimit: 'registry' },
    GetDevice: { scopes: ['readings:read', 'registry:admin'] },
    ListDevices: { scopes: ['readings:read', 'registry:admin'] },
    UpdateDevice: { scopes: ['registry:admin'], audited: true, rateLimit: 'registry' },
    DeactivateDevice: { scopes: ['registry:admin'], audited: true, rateLimit: 'registry' },
    BatchUpsertDevices: { scopes: ['registry:admin'], audited: true, rateLimit: 'registry' },
  },
  'powerplane.v1.DispatchService': {
    // Audited: market data drives batteries (a NIV chase follows it), so who sent what matters.
    PublishMarketData: { scopes: ['marketdata:write'], audited: true, rateLimit: 'marketdata' },
    ListMarketData: { scopes: ['readings:read', 'marketdata:write', 'dispatch:write'] },
    SubmitDispatch: { scopes: ['dispatch:write'], audited: true, auditOverlapsReads: true, rateLimit: 'dispatch' },
    CancelDispatch: { scopes: ['dispatch:write'], audited: true, rateLimit: 'dispatch' },
    GetDispatch: { scopes: DISPATCH_READ },
    ListDispatches: { scopes: DISPATCH_READ },
    SetControlMode: { scopes: ['control:write'], audited: true, rateLimit: 'dispatch' },
    WatchSetpoints: { scopes: DISPATCH_READ },
    GetControlState: { scopes: DISPATCH_READ },
    SetSiteConfig: { scopes: ['control:write'], audited: true, rateLimit: 'dispatch' },
    GetSiteConfig: { scopes: DISPATCH_READ },
  },
  'powerplane.v1.FleetService': {
    GetFleetSummary: { scopes: DISPATCH_READ },
  },
  'powerplane.v1.TokenService': {
    CreateToken: { scopes: ['tokens:admin'], audited: true, rateLimit: 'tokens' },
    ListTokens: { scopes: ['tokens:admin'] },
    RevokeToken: { scopes: ['tokens:admin'], audited: true, rateLimit: 'tokens' },
    // Any scope: every caller may learn what its own credential allows.
    GetCaller: { scopes: SCOPES },
  },
  'grpc.health.v1.Health': { Check: PUBLIC, Watch: PUBLIC, List: PUBLIC },
  'grpc.reflection.v1.ServerReflection': { ServerReflectionInfo: PUBLIC },
  'grpc.reflection.v1alpha.ServerReflection': { ServerReflectionInfo: PUBLIC },
};

/** The policy of one method, or undefined when it has none (refused). */
export function policyOf(service: string, method: string): MethodPolicy | typeof PUBLIC | undefined {
  return POLICY[service]?.[method];
}
