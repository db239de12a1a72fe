import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../errors.ts';
import { DEFAULT_TOKEN_LIFETIME_DAYS, defaultTokenExpiry, MAX_TOKEN_LIFETIME_DAYS, validateNewToken } from './tokens.ts';

const NOW = Date.UTC(2026, 10, 23, 12);
const DAY_MS = 86_400_000;
const token = (expireTime?: Date) => ({ name: 'agent', scopes: ['telemetry:write'], ...(expireTime ? { expireTime } : {}) });

describe('the lifetime of a new token', () => {
  it('defaults to 90 days and allows at most 365', () => {
    expect(DEFAULT_TOKEN_LIFETIME_DAYS).toBe(90);
    expect(MAX_TOKEN_LIFETIME_DAYS).toBe(365);
    expect(defaultTokenExpiry(NOW)).toEqual(new Date(NOW + 90 * DAY_MS));
  });

  it('accepts an expiry up to 365 days ahead, with 5 minutes of slack for the client clock', () => {
    const limit = new Date(NOW + 365 * DAY_MS + 5 * 60_000);
    expect(validateNewToken(token(limit), NOW).expireTime).toEqual(limit);
    expect(validateNewToken(token(new Date(NOW + 1)), NOW).expireTime).toEqual(new Date(NOW + 1));
  });

  it.each([
    ['now', new Date(NOW), 'expire_time must be in the future'],
    ['in the past', new Date(NOW - DAY_MS), 'expire_time must be in the future'],
    ['past the maximum', new Date(NOW + 365 * DAY_MS + 5 * 60_000 + 1), 'expire_time must be at most 365 days ahead'],
    ['not a time', new Date(Number.NaN), 'expire_time must be a valid time'],
  ])('refuses an expiry %s, naming the field', (_, expireTime, message) => {
    expect(() => validateNewToken(token(expireTime), NOW)).toThrow(InvalidArgumentError);
    expect(() => validateNewToken(token(expireTime), NOW)).toThrow(message);
  });

  it('leaves a token without expiry to callers of the store itself (the first-start admin token)', () => {
    expect(validateNewToken(token(), NOW).expireTime).toBeUndefined();
  });
});
