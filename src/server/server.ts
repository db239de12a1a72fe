import { setMaxListeners } from 'node:events';
import { createChangeNotices } from '../cluster/change-notices.ts';
import { createLeaseManager } from '../cluster/leases.ts';
import { createNotifications } from '../cluster/notifications.ts';
import { createAgentStreams } from '../telemetry/agent-streams.ts';
import { createClusterRelayChannel } from '../telemetry/relay-channel.ts';
import { generateReplicaId } from '../cluster/replica-id.ts';
import { createSetpointFanout } from '../control/setpoint-fanout.ts';
import type { ChangeReason } from '../cluster/cluster.types.ts';
import { siteShard } from '../cluster/shard.ts';
import { SYSTEM_CLOCK } from '../clock.ts';
import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import { startController, type Controller, type WriterFactory } from '../control/controller.ts';
import { relayWriterFactory } from '../control/relay-writer.ts';
import { createControlState } from '../dispatch/control-state.ts';
import { createDispatch } from '../dispatch/dispatch.ts';
import { createDispatchService } from '../dispatch/dispatch.service.ts';
import { createMarketData } from '../dispatch/market-data.ts';
import { createSetpointBus } from '../control/setpoint-bus.ts';
import { createSiteConfigs } from '../dispatch/site-settings.ts';
import { createRegistry } from '../registry/registry.ts';
import { createRegistryService } from '../registry/registry.service.ts';
import { pageBytesFor } from '../page-token.ts';
import { openDatabase, type Database } from '../storage/database.ts';
import { migrate, MIGRATIONS_DIR } from '../storage/migrator.ts';
import { startRetentionJob } from '../storage/retention.ts';
import { createReadings } from '../readings/readings.ts';
import { createReadingsService } from '../readings/readings.service.ts';
import { createFleetService } from '../fleet/fleet.service.ts';
import { createFleetSummaries } from '../fleet/fleet-summary.ts';
import { createTelemetry } from '../telemetry/telemetry.ts';
import { createTelemetryService } from '../telemetry/telemetry.service.ts';
import { createRelayHub } from '../telemetry/relay-hub.ts';
import type { WriteSessions } from '../telemetry/telemetry.repository.ts';
import { createAuditLog } from '../audit/audit.ts';
import { createAuditInterceptor } from '../audit/audit-interceptor.ts';
import { ensureAdminToken } from '../auth/admin-token.ts';
import { createAuthInterceptor } from '../auth/auth-interceptor.ts';
import { createAuthenticator } from '../auth/authenticate.ts';
import { certificatePrincipal } from '../auth/certificate.ts';
import { createJwtVerifier, type JwtVerifier } from '../auth/jwt.ts';
import { createSiteAccess } from '../rpc/site-access.ts';
import { createTokenService } from '../auth/token.service.ts';
import { createTokenStore } from '../auth/tokens.ts';
import { createPrincipalNames } from '../auth/principal-names.ts';
import { withClientGone } from './cancellation.ts';
import { createErrorInterceptor } from './error-interceptor.ts';
import { createConnectionGuard } from './connection-guard.ts';
import { createHealthService, createHealthState, ServingStatus, startHealthProbe, type HealthState } from './health.ts';
import { createHttpRoutes } from './http-routes.ts';
import { createListener } from './listener.ts';
import { createPreAuth } from './pre-auth.ts';
import { routeReplicaMessages } from './replica-messages.ts';
import { createRpcHandler } from './rpc-handler.ts';
import { createDeadlineInterceptor } from './deadline.ts';
import { createRateLimitInterceptor } from './rate-limit.ts';
import { createRequestTextInterceptor } from './request-text.ts';
import { peerContextValues } from '../auth/peer.ts';
import { createMetrics } from './metrics.ts';
import { PRODUCT_SERVICES, registerRoutes } from './routes.ts';

/** A running control plane. */
export interface Server {
  /** The address it listens on (the real port when configured with port 0). */
  readonly address: { host: string; port: number };
  readonly health: HealthState;
  readonly database: Database;
  /** This replica's id among the replicas of its database (its shard leases name it). */
  readonly replicaId: string;
  /** Whether this replica may write the batteries of at least one shard now. */
  controlsBatteries(): boolean;
  /** The WatchSetpoints streams open on this replica. */
  setpointWatchers(): number;
  /**
   * Stops gracefully and idempotently: health NOT_SERVING first, then no new connections,
   * calls in flight drain (up to the grace period), loops stop, the database closes last.
   */
  stop(): Promise<void>;
}

/** Dependencies a caller may supply instead of the defaults (tests share a database). */
export interface ServerDeps {
  readonly log: Logger;
  /** An open database; when given, the server migrates it but does not close it. */
  readonly database?: Database;
  /** Connections telemetry ingest writes with, instead of its own (tests slow them down). */
  readonly ingestSessions?: WriteSessions;
  /** Makes battery setpoint writers instead of Modbus TCP ones (tests); batteries flagged `relay` get relay writers regardless. */
  readonly writerFactory?: WriterFactory;
}

/**
 * Opens the database, applies migrations, builds the domains and serves every API on one
 * port. Resolves once it is listening and SERVING.
 */
export async function startServer(config: Config, deps: ServerDeps): Promise<Server> {
  const log = deps.log;
  const ownsDatabase = !deps.database;
  const database = deps.database ?? (await openDatabase(config.database, { log: log.child({ module: 'storage' }) }));
  const shutdown = new AbortController();
  // Every call in flight listens for the shutdown; hundreds at once are normal here.
  setMaxListeners(0, shutdown.signal);
  try {
    await migrate(database, log.child({ module: 'migrator' }), MIGRATIONS_DIR, {
      shardCount: config.dispatch.shardCount,
      retention: config.retention,
    });
  } catch (err) {
    if (ownsDatabase) await database.close();
    throw err;
  }

  // Messages between the replicas of this database; changes made here are told to the others.
  const replicaId = config.dispatch.replicaId ?? generateReplicaId();
  const notifications = await createNotifications({ database, replicaId, log: log.child({ module: 'cluster' }) }).catch(async (err) => {
    if (ownsDatabase) await database.close();
    throw err;
  });
  const notices = createChangeNotices(replicaId);

  const tokens = createTokenStore({ db: database.db, cacheMs: config.auth.tokenCacheMs });
  const audit = createAuditLog({ db: database.db, log: log.child({ module: 'audit' }) });
  let jwt: JwtVerifier | undefined;
  try {
    jwt = config.auth.jwt ? await createJwtVerifier(config.auth.jwt) : undefined;
    if (config.auth.enabled) await ensureAdminToken(tokens, config.auth.adminTokenFile, log.child({ module: 'auth' }));
  } catch (err) {
    await notifications.close();
    if (ownsDatabase) await database.close();
    throw err;
  }

  const health = createHealthState(PRODUCT_SERVICES);
  const metrics = createMetrics();
  // What a change made here tells this replica's control loop (its own notices it ignores):
  // read that part of the site again and plan it.
  let changed: (site: string, reason: ChangeReason) => void = () => undefined;
  let submit: Pick<Controller, 'submitting' | 'submitted'> = { submitting: () => 0, submitted: () => undefined };
  const registry = createRegistry({ db: database.db, notices, onChange: (site) => changed(site, 'registry') });
  const telemetry = createTelemetry({
    config,
    database,
    metricsRegistry: metrics.metricsRegistry,
    log: log.child({ module: 'telemetry' }),
    ...(deps.ingestSessions ? { sessions: deps.ingestSessions } : {}),
  });
  const readings = createReadings({ db: database.db });
  const bus = createSetpointBus();
  // Relay mode: agent streams by site, shared by the telemetry service and the relay writers.
  // Which replica holds which site's agent streams, so relayed setpoints reach them from any replica.
  const agentStreams = createAgentStreams({ db: database.db, notifications, replicaId, log: log.child({ module: 'agent-streams' }) });
  const relayHub = createRelayHub({ log: log.child({ module: 'relay' }), membership: agentStreams });
  const relayChannel = createClusterRelayChannel({
    hub: relayHub,
    streams: agentStreams,
    notifications,
    replicaId,
    log: log.child({ module: 'relay' }),
  });
  const marketData = createMarketData({
    db: database.db,
    window: { aheadMs: config.dispatch.marketDataAheadMs, behindMs: config.dispatch.marketDataBehindMs },
    notices,
  });
  const dispatch = createDispatch({
    db: database.db,
    registry,
    maxInstructionAheadMs: config.dispatch.maxInstructionAheadMs,
    onChange: (site, reason) => changed(site, reason),
    // A submit's instructions go straight to this replica's control loop, and its planning
    // reads overlap the submit's writes.
    onSubmit: { submitting: (site) => submit.submitting(site), submitted: (site, list, since) => submit.submitted(site, list, since) },
    notices,
  });
  const controlState = createControlState({ db: database.db, registry, dispatch });
  const principalNames = createPrincipalNames({ db: database.db });
  const access = createSiteAccess();
  const siteConfigs = createSiteConfigs({ db: database.db, dispatch, onChange: (site) => changed(site, 'config'), notices });
  const rpcLog = log.child({ module: 'rpc' });
  // Listings page by bytes too, so no page comes near the message limit.
  const pageBytes = pageBytesFor(config.limits.maxMessageBytes);
  const authenticate = createAuthenticator({ tokens, ...(jwt ? { jwt } : {}), certificatePrincipal });
  // Connections that never authenticate are limited per address only while there is authentication.
  const connections =
    config.auth.enabled && config.auth.maxUnauthenticatedConnectionsPerIp > 0
      ? createConnectionGuard({
          maxPerAddress: config.auth.maxUnauthenticatedConnectionsPerIp,
          metricsRegistry: metrics.metricsRegistry,
          log: log.child({ module: 'listener' }),
        })
      : undefined;
  const preAuth = createPreAuth({
    enabled: config.auth.enabled,
    authenticate,
    audit,
    failureLimit: { ratePerS: config.auth.failureRatePerS, burst: config.auth.failureBurst },
    connections,
    metricsRegistry: metrics.metricsRegistry,
    onRefused: metrics.countRefused,
    log: log.child({ module: 'auth' }),
  });
  const httpRoutes = await createHttpRoutes({
    health,
    metricsRegistry: metrics.metricsRegistry,
    metricsAuth: config.auth.enabled && config.auth.metricsAuth ? { preAuth, audit } : undefined,
    contextValues: peerContextValues,
  });
  const handler = createRpcHandler({
    routes: (router) =>
      registerRoutes(router, {
        registry: createRegistryService(registry, access, { pageBytes, maxMessageBytes: config.limits.maxMessageBytes }),
        telemetry: createTelemetryService(telemetry.ingest, log.child({ module: 'telemetry' }), relayHub, {
          metricsRegistry: metrics.metricsRegistry,
        }),
        readings: createReadingsService(readings, access, { pageBytes }),
        dispatch: createDispatchService({ dispatch, marketData, controlState, bus, siteConfigs, access, pageBytes, principalNames }),
        fleet: createFleetService({
          summaries: createFleetSummaries({ db: database.db, controlState, maxTelemetryAgeMs: config.dispatch.maxTelemetryAgeMs }),
          access,
        }),
        tokens: createTokenService(tokens, { pageBytes }),
        health: createHealthService(health, shutdown.signal),
      }),
    // Before the body: the caller is authenticated from its headers (or client
    // certificate), and a call that cannot authenticate is refused without being read.
    beforeBody: (req, method, values) => preAuth.rpc(req, method.parent.typeName, method.name, values),
    // Outermost first: metrics see every call; authentication (the scope check, and for
    // in-memory transports the credentials) before anything else reads the principal;
    // audit outside the error mapping so it records the code callers see.
    interceptors: [
      metrics.interceptor,
      createAuthInterceptor({ enabled: config.auth.enabled, authenticate, audit }),
      // After authentication (the principal is the bucket key), before audit (a call over
      // the limit is refused, never recorded as a requested change).
      createRateLimitInterceptor({ limits: config.limits, metricsRegistry: metrics.metricsRegistry, log: rpcLog, audit }),
      // Outside audit: a caller may get DEADLINE_EXCEEDED early, but the audit row records
      // what the handler really did once it settles. Streams are exempt from the deadline.
      createDeadlineInterceptor({ limits: config.limits, metricsRegistry: metrics.metricsRegistry }),
      // Before audit: text PostgreSQL cannot store is INVALID_ARGUMENT naming the field, never
      // an audit row that fails (UNAVAILABLE) or a query that does (INTERNAL).
      createRequestTextInterceptor(),
      createAuditInterceptor({ audit, log: log.child({ module: 'audit' }) }),
      createErrorInterceptor(rpcLog),
    ],
    // Connect JSON (curl) is strict: a misspelt field or an enum name the API does not know
    // is INVALID_ARGUMENT naming it, never silently dropped (a dropped filter would list
    // every device; a dropped field would store a default). Binary callers keep protobuf's
    // forward compatibility: unknown fields of a newer client are skipped.
    jsonOptions: { ignoreUnknownFields: false },
    readMaxBytes: config.limits.maxMessageBytes,
    writeMaxBytes: config.limits.maxMessageBytes,
    maxTimeoutMs: config.limits.maxTimeoutMs,
    shutdownSignal: shutdown.signal,
    // The verified client certificate (mutual TLS) of each call's connection, for authentication.
    contextValues: withClientGone(peerContextValues),
    fallback: httpRoutes,
    log: rpcLog,
  });
  const listener = createListener(handler, {
    ...config.limits,
    tls: config.tls,
    log: log.child({ module: 'listener' }),
    ...(connections ? { admitConnection: connections.admit } : {}),
  });
  const address = await agentStreams
    .start()
    .then(() => listener.listen(config.port, config.host))
    .catch(async (err) => {
      relayChannel.close();
      await agentStreams.stop();
      await telemetry.close();
      await notifications.close();
      if (ownsDatabase) await database.close();
      throw err;
    });

  // Control: this replica drives the sites of the shards it leases (all of them when it is
  // alone, as on PGlite), and any replica's change reaches the owner.
  // Leases renew on connections of their own: queued behind a busy pool (a fleet-wide plan,
  // an ingest burst) a renewal would miss its deadline and the replica lose its shards.
  // Renewals themselves run on a thread of their own (its own connections), so a busy event
  // loop cannot make them late; this pool claims and releases.
  const leaseDatabase =
    database.kind === 'postgres'
      ? await openDatabase(database.config, { poolSize: 2, log: log.child({ module: 'leases' }), quiet: true })
      : database;
  const leases = createLeaseManager({
    db: leaseDatabase.db,
    replicaId,
    leaseMs: config.dispatch.leaseMs,
    writeGuardMs: config.dispatch.modbusTimeoutMs,
    clock: SYSTEM_CLOCK,
    log: log.child({ module: 'leases' }),
    metricsRegistry: metrics.metricsRegistry,
    notify: (message) => notifications.notify(message),
    ...(database.config.kind === 'postgres' ? { renewalThreadUrl: database.config.url } : {}),
  });
  const shardOf = (site: string) => siteShard(site, leases.shardCount);
  // Before the lease manager has read the shard count, no site is this replica's.
  const fenceOf = (site: string) => (leases.shardCount > 0 ? leases.fence(shardOf(site)) : undefined);
  const controller = startController({
    db: database.db,
    fenceOf,
    shardOf,
    replicaId,
    bus,
    siteConfigs,
    marketData,
    log: log.child({ module: 'controller' }),
    options: config.dispatch,
    metricsRegistry: metrics.metricsRegistry,
    ...(deps.writerFactory ? { writerFactory: deps.writerFactory } : {}),
    relayWriterFactory: relayWriterFactory(
      relayChannel,
      config.dispatch.controlPeriodMs,
      log.child({ module: 'relay-writer' }),
      (site) => fenceOf(site)?.epoch,
    ),
  });
  changed = controller.refresh;
  submit = controller;
  // Watchers here see the setpoint events other replicas write.
  const fanout = createSetpointFanout({ db: database.db, bus, replicaId, log: log.child({ module: 'fanout' }) });
  const unsubscribe = routeReplicaMessages({ replicaId, notifications, controller, leases, fanout });
  try {
    await leases.start(controller.leases);
  } catch (err) {
    unsubscribe();
    await controller.stop();
    await fanout.stop();
    relayChannel.close();
    await agentStreams.stop();
    await notifications.close();
    if (leaseDatabase !== database) await leaseDatabase.close();
    await listener.close(0);
    await telemetry.close();
    if (ownsDatabase) await database.close();
    throw err;
  }
  // Readings past their retention are deleted by the owner of shard 0 (every shard on PGlite).
  const retention = startRetentionJob({
    database,
    retention: config.retention,
    isOwner: () => leases.fence(0) !== undefined,
    clock: SYSTEM_CLOCK,
    log: log.child({ module: 'retention' }),
    metricsRegistry: metrics.metricsRegistry,
  });
  const probe = startHealthProbe(database, health, config.healthProbeIntervalMs, log);
  log.info({ host: address.host, port: address.port, database: database.kind }, `Powerplane listening on ${address.host}:${address.port}`);

  let stopping: Promise<void> | undefined;
  return {
    address,
    health,
    database,
    replicaId,
    controlsBatteries: () => leases.writableShards().length > 0,
    setpointWatchers: () => bus.subscribers,
    stop() {
      stopping ??= (async () => {
        log.info('stopping: health NOT_SERVING, draining calls');
        probe.stop();
        health.setAll(ServingStatus.NOT_SERVING);
        // A moment for health watchers (load balancers) to be told before streams close.
        await new Promise((resolve) => setTimeout(resolve, Math.min(200, config.limits.shutdownGraceMs)));
        shutdown.abort();
        await listener.close(config.limits.shutdownGraceMs);
        // The leases are handed over: each shard's writers stop (without releasing the
        // batteries: no write of 0 kW that the next owner would have to undo), its rows are
        // released and the other replicas take them at once. Then the loop itself stops.
        changed = () => undefined;
        unsubscribe();
        await retention.stop();
        await leases.stop();
        if (leaseDatabase !== database) await leaseDatabase.close();
        await controller.stop();
        await fanout.stop();
        relayChannel.close();
        await agentStreams.stop();
        await notifications.close();
        await telemetry.close();
        if (ownsDatabase) await database.close();
        log.info('stopped');
      })();
      return stopping;
    },
  };
}
