import { createClient, createRouterTransport, type Client, type Interceptor } from '@connectrpc/connect';
import type { Kysely } from 'kysely';
import { Registry as MetricsRegistry } from 'prom-client';
import { TokenService } from '../../gen/powerplane/v1/auth_pb.ts';
import { DeviceRegistryService } from '../../gen/powerplane/v1/devices_pb.ts';
import { DispatchService } from '../../gen/powerplane/v1/dispatch_pb.ts';
import { FleetService } from '../../gen/powerplane/v1/fleet_pb.ts';
import { ReadingsService } from '../../gen/powerplane/v1/readings_pb.ts';
import { TelemetryService } from '../../gen/powerplane/v1/telemetry_pb.ts';
import { createAuditInterceptor } from '../../src/audit/audit-interceptor.ts';
import { createAuditLog } from '../../src/audit/audit.ts';
import { principalKey, type Principal } from '../../src/rpc/principal.ts';
import { createSiteAccess } from '../../src/rpc/site-access.ts';
import { createTokenService } from '../../src/auth/token.service.ts';
import { createTokenStore } from '../../src/auth/tokens.ts';
import { createPrincipalNames } from '../../src/auth/principal-names.ts';
import type { ChangeNotices } from '../../src/cluster/change-notices.ts';
import { toConfig, type DatabaseConfig } from '../../src/config.ts';
import { createControlState } from '../../src/dispatch/control-state.ts';
import { createDispatchService } from '../../src/dispatch/dispatch.service.ts';
import { createDispatch } from '../../src/dispatch/dispatch.ts';
import { createFleetService } from '../../src/fleet/fleet.service.ts';
import { createFleetSummaries } from '../../src/fleet/fleet-summary.ts';
import { createMarketData } from '../../src/dispatch/market-data.ts';
import { createSetpointBus } from '../../src/control/setpoint-bus.ts';
import type { SetpointBus } from '../../src/dispatch/setpoint-events.ts';
import { createSiteConfigs } from '../../src/dispatch/site-settings.ts';
import { createReadingsService } from '../../src/readings/readings.service.ts';
import { createReadings } from '../../src/readings/readings.ts';
import { createRegistryService } from '../../src/registry/registry.service.ts';
import { createRegistry } from '../../src/registry/registry.ts';
import { createErrorInterceptor } from '../../src/server/error-interceptor.ts';
import { createRequestTextInterceptor } from '../../src/server/request-text.ts';
import { createHealthService, createHealthState } from '../../src/server/health.ts';
import { PRODUCT_SERVICES, registerRoutes } from '../../src/server/routes.ts';
import type { Database } from '../../src/storage/database.ts';
import { createTelemetryService } from '../../src/telemetry/telemetry.service.ts';
import { createTelemetry } from '../../src/telemetry/telemetry.ts';
import { silentLog } from './databases.ts';

/** Clients of every product service, calling as one principal. */
export interface Clients {
  readonly registry: Client<typeof DeviceRegistryService>;
  readonly readings: Client<typeof ReadingsService>;
  readonly dispatch: Client<typeof DispatchService>;
  readonly fleet: Client<typeof FleetService>;
  readonly telemetry: Client<typeof TelemetryService>;
  readonly tokens: Client<typeof TokenService>;
}

/** The product's services in memory, over a real database. */
export interface InMemoryApi {
  /**
   * Clients whose calls run as `principal`, in Connect's binary format, or with `json` in
   * Connect JSON (TelemetryService takes the two through different decoders).
   */
  as(principal: Principal, options?: { readonly json?: boolean }): Clients;
  /** The setpoint bus WatchSetpoints streams from: a test publishes on it. */
  readonly bus: SetpointBus;
  /** How many WatchSetpoints subscriptions were ever made (a watch has opened once it grows). */
  subscriptions(): number;
  /** The sites dispatch and site settings asked the control loop to replan since the last call, in order. */
  takeReplans(): string[];
  /** Stops what the services started (telemetry's connections); the database stays open. */
  close(): Promise<void>;
}

/** Options of {@link serveInMemory}. */
export interface InMemoryOptions {
  /** What the domains query through (e.g. with a plugin that records statements); default `database.db`. */
  readonly db?: Kysely<object>;
  /** Most bytes of rows on one page of every listing, as the server derives it from its message limit; default 1 MiB. */
  readonly pageBytes?: number;
  /** How the domains tell other replicas of their changes, as the server wires them; default none. */
  readonly notices?: ChangeNotices;
  /** The telemetry age limit of the fleet summary, ms; default the configuration's default (30 s). */
  readonly maxTelemetryAgeMs?: number;
  /** The wall clock of the fleet summary; default the system's. */
  readonly now?: () => Date;
  /** Most batteries a fleet summary lists with `include_batteries`; default the server's. */
  readonly summaryBatteries?: number;
}

/**
 * The real services (`server/routes.ts`) over `database`, served through
 * `createRouterTransport` with the real request-text, audit and error interceptors in the
 * server's order. Authentication is not the subject: each client's calls carry the
 * principal it was made for, as the authentication interceptor would leave it. The audit
 * trail and telemetry ingest always use `database` itself, whatever `options.db` is.
 */
export function serveInMemory(database: Database, databaseConfig: DatabaseConfig, options: InMemoryOptions = {}): InMemoryApi {
  const db = options.db ?? database.db;
  const pageBytes = options.pageBytes !== undefined ? { pageBytes: options.pageBytes } : {};
  let replans: string[] = [];
  const onChange = (site: string) => void replans.push(site);
  const notices = options.notices ? { notices: options.notices } : {};
  const registry = createRegistry({ db, ...notices });
  const dispatch = createDispatch({ db, registry, onChange, ...notices });
  const access = createSiteAccess();
  const config = { ...toConfig({ listen: '127.0.0.1:0', auth: 'off' }), database: databaseConfig };
  const telemetry = createTelemetry({ config, database, metricsRegistry: new MetricsRegistry(), log: silentLog });
  const shutdown = new AbortController();
  const bus = createSetpointBus();
  let subscriptions = 0;
  const countedBus: SetpointBus = {
    publish: (record) => bus.publish(record),
    subscribe: (...args) => {
      subscriptions++;
      return bus.subscribe(...args);
    },
    get subscribers() {
      return bus.subscribers;
    },
  };
  const controlState = createControlState({ db, registry, dispatch, ...(options.now ? { now: options.now } : {}) });
  const summaries = createFleetSummaries({
    db,
    controlState,
    maxTelemetryAgeMs: options.maxTelemetryAgeMs ?? config.dispatch.maxTelemetryAgeMs,
    ...(options.now ? { now: options.now } : {}),
  });
  const services = {
    registry: createRegistryService(registry, access, pageBytes),
    readings: createReadingsService(createReadings({ db }), access, pageBytes),
    fleet: createFleetService({ summaries, access, ...(options.summaryBatteries ? { maxBatteries: options.summaryBatteries } : {}) }),
    dispatch: createDispatchService({
      dispatch,
      marketData: createMarketData({ db, ...notices }),
      controlState,
      bus: countedBus,
      siteConfigs: createSiteConfigs({ db, dispatch, onChange, ...notices }),
      access,
      principalNames: createPrincipalNames({ db }),
      ...pageBytes,
    }),
    telemetry: createTelemetryService(telemetry.ingest, silentLog),
    tokens: createTokenService(createTokenStore({ db, cacheMs: 0 }), pageBytes),
    health: createHealthService(createHealthState(PRODUCT_SERVICES), shutdown.signal),
  };
  const audit = createAuditLog({ db: database.db, log: silentLog });
  return {
    bus: countedBus,
    subscriptions: () => subscriptions,
    takeReplans() {
      const taken = replans;
      replans = [];
      return taken;
    },
    as(principal, { json = false } = {}) {
      const authenticated: Interceptor = (next) => (req) => {
        req.contextValues.set(principalKey, principal);
        return next(req);
      };
      const transport = createRouterTransport((router) => registerRoutes(router, services), {
        router: {
          interceptors: [
            authenticated,
            createRequestTextInterceptor(),
            createAuditInterceptor({ audit, log: silentLog }),
            createErrorInterceptor(silentLog),
          ],
          // As the server: a misspelt JSON field is refused, never silently dropped.
          jsonOptions: { ignoreUnknownFields: false },
        },
        transport: { useBinaryFormat: !json },
      });
      return {
        registry: createClient(DeviceRegistryService, transport),
        readings: createClient(ReadingsService, transport),
        dispatch: createClient(DispatchService, transport),
        fleet: createClient(FleetService, transport),
        telemetry: createClient(TelemetryService, transport),
        tokens: createClient(TokenService, transport),
      };
    },
    async close() {
      shutdown.abort();
      await telemetry.close();
    },
  };
}
