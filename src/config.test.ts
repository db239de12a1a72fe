import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readEnv, redactUrl, toConfig } from './config.ts';
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
    const env = readEnv({ POWERPLANE_LISTEN: '[::1]:6000', DATABASE_URL: 'postgres://u:secret@db:5432/pp', POWERPLANE_MAX_CONCURRENT_STREAMS: '7', POWERPLANE_HEADERS_TIMEOUT_MS: '2500', POWERPLANE_IDLE_TIMEOUT_MS: '60000', UNRELATED: 'x' });
    const config = toConfig(env);
    expect(config.host).toBe('::1');
    expect(config.port).toBe(6000);
    expect(config.database).toEqual({ kind: 'postgres', url: 'postgres://u:secret@db:5432/pp' });
    expect(config.limits.maxConcurrentStreams).toBe(7);
    expect(config.limits.headersTimeoutMs).toBe(2_500);
    expect(config.limits.idleTimeoutMs).toBe(60_000);
  });

  it('keeps memory:// data directories as they are', () => {
    expect(toConfig({ dataDir: 'memory://' }).database).toEqual({ kind: 'pglite', dataDir: 'memory://' });
  });

  it.each([
    [{ listen: 'nope' }, 'POWERPLANE_LISTEN', 'nope'],
    [{ listen: '127.0.0.1:70000' }, 'POWERPLANE_LISTEN', '70000'],
    [{ databaseUrl: 'mysql://x@y/z' }, 'DATABASE_URL', 'mysql'],
    [{ logLevel: 'loud' }, 'POWERPLANE_LOG_LEVEL', 'loud'],
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

  it('never prints a database password in errors', () => {
    expect(redactUrl('postgres://user:hunter2@db/x')).toBe('postgres://user:***@db/x');
    expect(() => toConfig({ databaseUrl: 'mysql://user:hunter2@db/x' })).toThrow(/user:\*\*\*@db/);
  });
});
