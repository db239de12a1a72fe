import { describe, expect, it } from 'vitest';
import { createPowerplaneClient, type PowerplaneClientOptions } from './client.ts';

const good: PowerplaneClientOptions = { baseUrl: 'http://127.0.0.1:50051', token: 't', transport: 'grpc' };

describe('createPowerplaneClient', () => {
  it('gives a client of every service', () => {
    const client = createPowerplaneClient(good);
    expect(Object.keys(client).sort()).toEqual(
      ['close', 'devices', 'dispatch', 'fleet', 'readings', 'telemetry', 'tokens', 'transport', 'watchSetpoints'].sort(),
    );
    client.close();
  });

  it.each([
    [{ baseUrl: '127.0.0.1:50051' }, 'options.baseUrl must be an http:// or https:// URL'],
    [{ baseUrl: 'ftp://host' }, 'options.baseUrl must be an http:// or https:// URL'],
    [{ transport: 'rest' }, "options.transport must be 'grpc' or 'connect' (got \"rest\")"],
    [{ timeoutMs: -1 }, 'options.timeoutMs must be a number of milliseconds, 0 or more (got -1)'],
    [{ timeoutMs: Number.NaN }, 'options.timeoutMs must be a number of milliseconds, 0 or more'],
    [{ maxAttempts: 0 }, 'options.maxAttempts must be an integer from 1 to 10 (got 0)'],
    [{ maxAttempts: 2.5 }, 'options.maxAttempts must be an integer from 1 to 10 (got 2.5)'],
    [{ httpVersion: '3' }, "options.httpVersion must be '1.1' or '2' (got \"3\")"],
    [{ token: 'a\r\nx-evil: 1' }, 'options.token must be a string without line breaks (got "<redacted>")'],
    [{ tls: { ca: 'pem' } }, 'options.tls needs an https:// baseUrl'],
  ])('refuses %j naming the option', (bad, message) => {
    expect(() => createPowerplaneClient({ ...good, ...(bad as object) } as PowerplaneClientOptions)).toThrow(message);
  });
});
