import { describe, expect, it } from 'vitest';
import { UnauthenticatedError } from '../errors.ts';
import { sitesOf } from './jwt.ts';

describe('the sites claim of a JWT', () => {
  it('binds the caller to the sites it names', () => {
    expect(sitesOf(['site-a', 'site-b'])).toEqual(new Set(['site-a', 'site-b']));
  });

  it('means every site only when it is exactly ["*"]', () => {
    expect(sitesOf(['*'])).toBe('*');
  });

  it.each([
    ['missing', undefined, 'the sites claim is missing'],
    ['empty', [], 'the sites claim must be an array of site names or ["*"] for every site'],
    ['a string', 'site-a', 'the sites claim must be an array of site names'],
    ['a blank name', ['site-a', ' '], 'the sites claim must be an array of site names'],
    ['not strings', [1, 2], 'the sites claim must be an array of site names'],
    ['"*" among names', ['*', 'site-a'], 'the sites claim must be ["*"] alone'],
  ])('refuses a claim that is %s (fail closed), naming the claim', (_, claim, message) => {
    expect(() => sitesOf(claim)).toThrow(UnauthenticatedError);
    expect(() => sitesOf(claim)).toThrow(message);
  });
});
