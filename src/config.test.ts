import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { readEnv, redactUrl, toConfig } from './config.ts';
import { SETTINGS } from './config-settings.ts';
import { InvalidArgumentError } from './errors.ts';

describe('configuration', () => {
  it('defaults to 127.0.0.1:50051 on embedded PGlite in ./.powerplane', () => {
    const config = toConfig({});
    expect(config.host).toBe('127.0.0.1');
    expect(config.port).toBe(50051);
    expect(config.database).toEqual({ kind: 'pglite', dataDir: path.resolve('.powerplane') });
    expect(config.limits.maxMessageBytes).toBe(4 * 1024 * 1024);
    expect(config.limits.headersTimeoutMs).toBe(10_000);
    expect(config.limits.idleTimeoutMs).toBe(10_000);
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.limits)).toBe(true);
  });

  it('reads POWERPLANE_ variables and DATABASE_URL from the environment it is given', () => {
    const env = readEnv({
      POWERPLANE_LISTEN: '[::1]:6000',
      DATABASE_URL: 'postgres://u:secret@db:5432/pp',
      POWERPLANE_MAX_CONCURRENT_STREAMS: '7',
      POWERPLANE_HEADERS_TIMEOUT_MS: '2500',
      POWERPLANE_IDLE_TIMEOUT_MS: '60000',
      UNRELATED: 'x',
    });
    const config = toConfig(env);
    expect(config.host).toBe('::1');
    expect(config.port).toBe(6000);
    expect(config.database).toEqual({ kind: 'postgres', url: 'postgres://u:secret@db:5432/pp' });
    expect(config.limits.maxConcurrentStreams).toBe(7);
    expect(config.limits.headersTimeoutMs).toBe(2_500);
    expect(config.limits.idleTimeoutMs).toBe(60_000);
  });

  it('bounds dispatch instructions to 7 days ahead and market data to 31 days ahead and 731 behind unless told otherwise', () => {
    const day = 86_400_000;
    expect(toConfig({}).dispatch).toMatchObject({
      maxInstructionAheadMs: 7 * day,
      marketDataAheadMs: 31 * day,
      marketDataBehindMs: 731 * day,
    });
    const env = readEnv({
      POWERPLANE_MAX_INSTRUCTION_AHEAD_DAYS: '2',
      POWERPLANE_MARKETDATA_AHEAD_DAYS: '3',
      POWERPLANE_MARKETDATA_BEHIND_DAYS: '4',
    });
    expect(toConfig(env).dispatch).toMatchObject({
      maxInstructionAheadMs: 2 * day,
      marketDataAheadMs: 3 * day,
      marketDataBehindMs: 4 * day,
    });
  });

  it('limits failed authentications and unauthenticated connections, and guards /metrics, by default', () => {
    const { auth } = toConfig({});
    expect(auth).toMatchObject({ failureRatePerS: 10, failureBurst: 100, maxUnauthenticatedConnectionsPerIp: 64, metricsAuth: true });
    const env = readEnv({
      POWERPLANE_AUTH_FAILURE_RATE_PER_S: '0',
      POWERPLANE_AUTH_FAILURE_BURST: '5',
      POWERPLANE_MAX_UNAUTHENTICATED_CONNECTIONS_PER_IP: '3',
      POWERPLANE_METRICS_AUTH: 'off',
    });
    expect(toConfig(env).auth).toMatchObject({
      failureRatePerS: 0,
      failureBurst: 5,
      maxUnauthenticatedConnectionsPerIp: 3,
      metricsAuth: false,
    });
  });

  it('leases shards for 1500 ms over 256 shards under a generated replica id unless told otherwise', () => {
    expect(toConfig({}).dispatch).toMatchObject({ leaseMs: 1_500, shardCount: 256, replicaId: undefined });
    const env = readEnv({ POWERPLANE_LEASE_MS: '3000', POWERPLANE_SHARD_COUNT: '16', POWERPLANE_REPLICA_ID: 'eu-west.a:1' });
    expect(toConfig(env).dispatch).toMatchObject({ leaseMs: 3_000, shardCount: 16, replicaId: 'eu-west.a:1' });
  });

  it('keeps every kind of reading forever unless a retention in days is set, and 0 keeps it forever too', () => {
    expect(toConfig({}).retention).toEqual({});
    const env = readEnv({
      POWERPLANE_RETENTION_METER_DAYS: '30',
      POWERPLANE_RETENTION_BESS_DAYS: '7',
      POWERPLANE_RETENTION_DATUM_DAYS: '0',
      POWERPLANE_RETENTION_MARKET_DAYS: '',
    });
    expect(toConfig(env).retention).toEqual({ meter: 30, bess: 7 });
    expect(toConfig(readEnv({ POWERPLANE_RETENTION_DATUM_DAYS: '1', POWERPLANE_RETENTION_MARKET_DAYS: '36600' })).retention).toEqual({
      datum: 1,
      market: 36_600,
    });
    expect(Object.isFrozen(toConfig(env).retention)).toBe(true);
  });

  it('logs in the format that suits stdout unless POWERPLANE_LOG_FORMAT says json or pretty', () => {
    expect(toConfig({}).logFormat).toBe('auto');
    expect(toConfig({ logFormat: '' }).logFormat).toBe('auto');
    expect(toConfig(readEnv({ POWERPLANE_LOG_FORMAT: 'json' })).logFormat).toBe('json');
    expect(toConfig(readEnv({ POWERPLANE_LOG_FORMAT: 'pretty' })).logFormat).toBe('pretty');
  });

  it('keeps memory:// data directories as they are', () => {
    expect(toConfig({ dataDir: 'memory://' }).database).toEqual({ kind: 'pglite', dataDir: 'memory://' });
  });

  it.each([
    [{ listen: 'nope' }, 'POWERPLANE_LISTEN', 'nope'],
    [{ listen: '127.0.0.1:70000' }, 'POWERPLANE_LISTEN', '70000'],
    [{ databaseUrl: 'mysql://x@y/z' }, 'DATABASE_URL', 'mysql'],
    [{ logLevel: 'loud' }, 'POWERPLANE_LOG_LEVEL', 'loud'],
    [{ logFormat: 'fancy' }, 'POWERPLANE_LOG_FORMAT', 'fancy'],
    [{ logFormat: 'JSON' }, 'POWERPLANE_LOG_FORMAT', 'JSON'],
    [{ maxMessageBytes: '12abc' }, 'POWERPLANE_MAX_MESSAGE_BYTES', '12abc'],
    [{ maxTimeoutMs: '-5' }, 'POWERPLANE_MAX_TIMEOUT_MS', '-5'],
    [{ keepaliveIntervalMs: '1.5' }, 'POWERPLANE_KEEPALIVE_INTERVAL_MS', '1.5'],
    [{ headersTimeoutMs: '50' }, 'POWERPLANE_HEADERS_TIMEOUT_MS', '50'],
    [{ headersTimeoutMs: 'soon' }, 'POWERPLANE_HEADERS_TIMEOUT_MS', 'soon'],
    [{ idleTimeoutMs: '0' }, 'POWERPLANE_IDLE_TIMEOUT_MS', '0'],
    [{ idleTimeoutMs: '3600001' }, 'POWERPLANE_IDLE_TIMEOUT_MS', '3600001'],
    [{ auth: 'maybe' }, 'POWERPLANE_AUTH', 'maybe'],
    [{ jwtKeyFile: 'k.pem', jwtAudience: 'a' }, 'POWERPLANE_JWT_ISSUER', 'is required with POWERPLANE_JWT_KEY_FILE'],
    [{ jwtKeyFile: 'k.pem', jwtIssuer: 'i' }, 'POWERPLANE_JWT_AUDIENCE', 'is required with POWERPLANE_JWT_KEY_FILE'],
    [{ jwtKeyFile: 'k.pem', jwtIssuer: 'i', jwtAudience: 'a', jwtAlgorithms: 'RS256 none' }, 'POWERPLANE_JWT_ALGORITHMS', 'none'],
    [{ tokenCacheMs: '-1' }, 'POWERPLANE_TOKEN_CACHE_MS', '-1'],
    [{ registryRatePerS: '-1' }, 'POWERPLANE_REGISTRY_RATE_PER_S', '-1'],
    [{ registryBurst: '0' }, 'POWERPLANE_REGISTRY_BURST', '0'],
    [{ tokensRatePerS: 'fast' }, 'POWERPLANE_TOKENS_RATE_PER_S', 'fast'],
    [{ tokensBurst: '2.5' }, 'POWERPLANE_TOKENS_BURST', '2.5'],
    [{ maxInstructionAheadDays: '0' }, 'POWERPLANE_MAX_INSTRUCTION_AHEAD_DAYS', '0'],
    [{ maxInstructionAheadDays: '400' }, 'POWERPLANE_MAX_INSTRUCTION_AHEAD_DAYS', '400'],
    [{ marketDataAheadDays: 'soon' }, 'POWERPLANE_MARKETDATA_AHEAD_DAYS', 'soon'],
    [{ marketDataBehindDays: '-7' }, 'POWERPLANE_MARKETDATA_BEHIND_DAYS', '-7'],
    [{ stateRefreshPeriods: '0' }, 'POWERPLANE_STATE_REFRESH_PERIODS', '0'],
    [{ stateRefreshPeriods: 'often' }, 'POWERPLANE_STATE_REFRESH_PERIODS', 'often'],
    [{ ingestReadingsPerS: '-1' }, 'POWERPLANE_INGEST_READINGS_PER_S', '-1'],
    [{ ingestReadingsPerS: 'lots' }, 'POWERPLANE_INGEST_READINGS_PER_S', 'lots'],
    [{ ingestBurst: '0' }, 'POWERPLANE_INGEST_BURST', '0'],
    [{ ingestBurst: '4999' }, 'POWERPLANE_INGEST_BURST', 'must not be below POWERPLANE_MAX_BATCH_READINGS (5000)'],
    [{ authFailureRatePerS: '-1' }, 'POWERPLANE_AUTH_FAILURE_RATE_PER_S', '-1'],
    [{ authFailureBurst: '0' }, 'POWERPLANE_AUTH_FAILURE_BURST', '0'],
    [{ maxUnauthenticatedConnectionsPerIp: 'many' }, 'POWERPLANE_MAX_UNAUTHENTICATED_CONNECTIONS_PER_IP', 'many'],
    [{ metricsAuth: 'yes' }, 'POWERPLANE_METRICS_AUTH', 'yes'],
    [{ leaseMs: '299' }, 'POWERPLANE_LEASE_MS', '299'],
    [{ leaseMs: 'long' }, 'POWERPLANE_LEASE_MS', 'long'],
    [{ shardCount: '0' }, 'POWERPLANE_SHARD_COUNT', '0'],
    [{ shardCount: '4097' }, 'POWERPLANE_SHARD_COUNT', '4097'],
    [{ replicaId: 'has space' }, 'POWERPLANE_REPLICA_ID', 'has space'],
    [{ replicaId: '-leading' }, 'POWERPLANE_REPLICA_ID', '-leading'],
    [{ replicaId: 'x'.repeat(129) }, 'POWERPLANE_REPLICA_ID', 'x'.repeat(129)],
    [{ retentionMeterDays: '-1' }, 'POWERPLANE_RETENTION_METER_DAYS', '-1'],
    [{ retentionBessDays: '1.5' }, 'POWERPLANE_RETENTION_BESS_DAYS', '1.5'],
    [{ retentionDatumDays: 'a week' }, 'POWERPLANE_RETENTION_DATUM_DAYS', 'a week'],
    [{ retentionMarketDays: '36601' }, 'POWERPLANE_RETENTION_MARKET_DAYS', '36601'],
  ])('rejects %j naming %s and the value', (env, variable, value) => {
    let caught: unknown;
    try {
      toConfig(env);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(InvalidArgumentError);
    expect((caught as Error).message).toContain(variable);
    expect((caught as Error).message).toContain(value);
  });

  it('limits ingest to 5000 readings a second per caller with bursts of 50000 by default, or bursts of a full batch if larger', () => {
    expect(toConfig({}).telemetry).toMatchObject({ ingestReadingsPerS: 5_000, ingestBurst: 50_000 });
    expect(toConfig(readEnv({ POWERPLANE_MAX_BATCH_READINGS: '80000' })).telemetry).toMatchObject({
      maxBatchReadings: 80_000,
      ingestBurst: 80_000,
    });
    expect(toConfig(readEnv({ POWERPLANE_INGEST_READINGS_PER_S: '0', POWERPLANE_INGEST_BURST: '9000' })).telemetry).toMatchObject({
      ingestReadingsPerS: 0,
      ingestBurst: 9_000,
    });
  });

  it('never prints a database password in errors', () => {
    expect(redactUrl('postgres://user:hunter2@db/x')).toBe('postgres://user:***@db/x');
    expect(() => toConfig({ databaseUrl: 'mysql://user:hunter2@db/x' })).toThrow(/user:\*\*\*@db/);
  });
});

describe('the settings table', () => {
  it('names each variable once, and readEnv reads each of them', () => {
    const names = Object.values(SETTINGS).map((s) => s.env);
    expect(new Set(names).size).toBe(names.length);
    const source = Object.fromEntries(names.map((name) => [name, `value of ${name}`]));
    const env = readEnv(source) as Record<string, string>;
    for (const [key, setting] of Object.entries(SETTINGS)) expect(env[key]).toBe(`value of ${setting.env}`);
  });

  it('lists every POWERPLANE_ variable the product names, so the configuration page misses none', () => {
    const listed = new Set<string>(Object.values(SETTINGS).map((s) => s.env));
    const named = new Set<string>();
    const walk = (dir: string) => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const file = path.join(dir, entry.name);
        if (entry.isDirectory()) walk(file);
        else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts')) {
          for (const match of readFileSync(file, 'utf8').matchAll(/\bPOWERPLANE_[A-Z0-9_]*[A-Z0-9]\b/g)) named.add(match[0]);
        }
      }
    };
    walk(path.dirname(fileURLToPath(import.meta.url)));
    expect([...named].filter((name) => !listed.has(name)).sort()).toEqual([]);
  });

  it('refuses each whole number setting past its range, naming the variable', () => {
    for (const [key, setting] of Object.entries(SETTINGS)) {
      if (!('int' in setting) || key === 'ingestBurst' || key === 'defaultTimeoutMs') continue;
      expect(() => toConfig({ [key]: String(setting.int.max + 1) })).toThrow(setting.env);
    }
  });
});
