import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseSiteConfig, registerProfileOf, SiteConfigError } from './agent-config.ts';

const acme = (): Record<string, unknown> =>
  JSON.parse(readFileSync(new URL('../../test/fixtures/acme-bc500.register-map.json', import.meta.url), 'utf8')) as Record<string, unknown>;

const ID = '0b5e3f0e-8a4c-4d8e-9a55-3f1d1c2b7a10';
const valid = () => ({
  site: 'site-a',
  server: { url: 'http://127.0.0.1:50051', token: 't0k' },
  devices: [
    { deviceId: ID, kind: 'bess', endpoint: { host: '10.0.0.5', port: 502, unitId: 3 }, profile: 'sunspec', pollingIntervalMs: 1000 },
  ],
  spool: { dir: '/var/lib/powerplane/spool', maxBytes: 268_435_456 },
  batch: { maxReadings: 500, maxDelayMs: 1000 },
});

describe('parseSiteConfig', () => {
  it('accepts a complete config and freezes it', () => {
    const c = parseSiteConfig(valid());
    expect(c.devices[0]).toMatchObject({
      deviceId: ID,
      kind: 'bess',
      endpoint: { host: '10.0.0.5', port: 502, unitId: 3 },
      reversionTimeoutS: 30,
      heartbeatIntervalMs: 5000,
    });
    expect(c.server.token).toBe('t0k');
    expect(Object.isFrozen(c) && Object.isFrozen(c.devices[0])).toBe(true);
  });

  it('takes TLS files for an https server', () => {
    const c = parseSiteConfig({
      ...valid(),
      server: { url: 'https://cp.example:50051', tls: { caFile: 'ca.pem', certFile: 'agent.pem', keyFile: 'agent.key' } },
    });
    expect(c.server.tls).toEqual({ caFile: 'ca.pem', certFile: 'agent.pem', keyFile: 'agent.key' });
  });

  it('applies defaults for unit id, profile, polling interval, spool size and batching', () => {
    const c = parseSiteConfig({
      site: 's',
      server: { url: 'cp.example:50051' },
      devices: [{ deviceId: ID, kind: 'meter', endpoint: { host: 'm', port: 502 } }],
      spool: { dir: 'spool' },
    });
    expect(c.devices[0]).toMatchObject({ profile: 'sunspec', pollingIntervalMs: 1000, endpoint: { unitId: 1 } });
    expect(c.spool.maxBytes).toBe(256 * 1024 * 1024);
    expect(c.batch).toEqual({ maxReadings: 500, maxDelayMs: 1000 });
  });

  it('takes a custom register map, in the shape the registry accepts, as the custom profile', () => {
    const c = valid();
    const { profile: _, ...device } = c.devices[0]!;
    const parsed = parseSiteConfig({ ...c, devices: [{ ...device, registerMap: acme() }] });
    expect(parsed.devices[0]).toMatchObject({ profile: 'custom', registerMap: { name: 'acme-bc500' } });
    const profile = registerProfileOf(parsed.devices[0]!);
    expect(profile.kind === 'custom' && profile.map.control?.timeoutPoint).toBe('timeout');
    expect(registerProfileOf(parseSiteConfig(valid()).devices[0]!)).toEqual({ kind: 'sunspec' });
  });

  it.each([
    [
      (c: any) => {
        delete c.site;
      },
      'site must be a non-empty string (got nothing)',
    ],
    [
      (c: any) => {
        c.server.url = 'ftp://x';
      },
      'server.url must be http://host:port',
    ],
    [
      (c: any) => {
        c.devices = [];
      },
      'devices must be a non-empty array',
    ],
    [
      (c: any) => {
        c.devices[0].deviceId = 'bess-1';
      },
      `devices[0].deviceId must be the device's UUID`,
    ],
    [
      (c: any) => {
        c.devices[0].kind = 'pv';
      },
      `devices[0].kind must be one of 'bess', 'meter' (got "pv")`,
    ],
    [
      (c: any) => {
        c.devices[0].endpoint.port = 70_000;
      },
      'devices[0].endpoint.port must be an integer from 1 to 65535 (got 70000)',
    ],
    [
      (c: any) => {
        c.devices[0].endpoint.unitId = 0;
      },
      'devices[0].endpoint.unitId must be an integer from 1 to 247',
    ],
    [
      (c: any) => {
        c.devices[0].profile = 'modbus-rtu';
      },
      `devices[0].profile must be one of 'sunspec', 'tesla-powerpack', 'custom' (got "modbus-rtu")`,
    ],
    [
      (c: any) => {
        c.devices[0].profile = 'custom';
      },
      'devices[0].registerMap is required for the custom profile (got nothing)',
    ],
    [
      (c: any) => {
        c.devices[0].registerMap = acme();
      },
      'devices[0].registerMap must be absent for the sunspec profile',
    ],
    [
      (c: any) => {
        delete c.devices[0].profile;
        c.devices[0].registerMap = [];
      },
      'devices[0].registerMap must be an object (got an array)',
    ],
    [
      (c: any) => {
        delete c.devices[0].profile;
        c.devices[0].registerMap = { ...acme(), points: [{ name: 'p', address: 1, type: 'int8' }] };
      },
      'devices[0].registerMap.points[0].type must be a point type',
    ],
    [
      (c: any) => {
        delete c.devices[0].profile;
        c.devices[0].registerMap = { ...acme(), control: { powerPoint: 'powerSetpoint' } };
      },
      'devices[0].registerMap.control.timeoutPoint is required',
    ],
    [
      (c: any) => {
        c.devices[0].pollingIntervalMs = 1.5;
      },
      'devices[0].pollingIntervalMs must be an integer',
    ],
    [
      (c: any) => {
        c.devices.push({ ...c.devices[0] });
      },
      `devices[1].deviceId repeats ${ID}`,
    ],
    [
      (c: any) => {
        c.spool.maxBytes = 1000;
      },
      'spool.maxBytes must be an integer from 1048576',
    ],
    [
      (c: any) => {
        delete c.spool.dir;
      },
      'spool.dir must be a non-empty string',
    ],
    [
      (c: any) => {
        c.batch.maxReadings = 0;
      },
      'batch.maxReadings must be an integer from 1 to 10000 (got 0)',
    ],
    [
      (c: any) => {
        c.batch.maxDelay = 5;
      },
      'batch.maxDelay is not a known setting',
    ],
    [
      (c: any) => {
        c.sever = {};
      },
      'sever is not a known setting',
    ],
    [
      (c: any) => {
        c.server.tls = { caFile: 'ca.pem' };
      },
      'server.tls needs an https:// server.url (got "http://127.0.0.1:50051")',
    ],
    [
      (c: any) => {
        c.server.url = 'https://cp:1';
        c.server.tls = { certFile: 'a.pem' };
      },
      'server.tls needs certFile and keyFile together',
    ],
    [
      (c: any) => {
        c.server.url = 'https://cp:1';
        c.server.tls = { caFile: '' };
      },
      'server.tls.caFile must be a non-empty string',
    ],
    [
      (c: any) => {
        c.server.url = 'https://cp:1';
        c.server.tls = { ca: 'x' };
      },
      'server.tls.ca is not a known setting',
    ],
  ])('names the offending field: %#', (mutate, message) => {
    const c = valid();
    mutate(c);
    expect(() => parseSiteConfig(c)).toThrow(SiteConfigError);
    expect(() => parseSiteConfig(c)).toThrow(message);
  });
});
