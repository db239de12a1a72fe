import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { RegisterMapError } from './errors.ts';
import { registerProfileFor } from './register-profile.ts';

const acme = JSON.parse(readFileSync(new URL('../../test/fixtures/acme-bc500.register-map.json', import.meta.url), 'utf8')) as object;

describe('registerProfileFor', () => {
  it('names the built-in profiles without a map, whatever map is stored beside them', () => {
    expect(registerProfileFor({ registerProfile: 'sunspec' })).toEqual({ kind: 'sunspec' });
    expect(registerProfileFor({ registerProfile: 'tesla-powerpack', registerMap: acme })).toEqual({ kind: 'tesla-powerpack' });
  });

  it('parses the map of a custom profile', () => {
    const profile = registerProfileFor({ registerProfile: 'custom', registerMap: acme });
    expect(profile.kind).toBe('custom');
    if (profile.kind !== 'custom') return;
    expect(profile.map.name).toBe('acme-bc500');
    expect(profile.map.control).toMatchObject({ powerPoint: 'powerSetpoint', timeoutPoint: 'timeout' });
  });

  it('refuses a custom profile without a map, or with a bad one, naming the field', () => {
    expect(() => registerProfileFor({ registerProfile: 'custom' })).toThrow(RegisterMapError);
    expect(() =>
      registerProfileFor({ registerProfile: 'custom', registerMap: { points: [{ name: 'p', address: 1, type: 'int8' }] } }),
    ).toThrow(/^points\[0\]\.type must be a point type/);
  });

  it('refuses an unknown profile name', () => {
    expect(() => registerProfileFor({ registerProfile: 'modbus-rtu' as never })).toThrow(
      /registerProfile must be one of sunspec \| tesla-powerpack \| custom \(got modbus-rtu\)/,
    );
  });
});
