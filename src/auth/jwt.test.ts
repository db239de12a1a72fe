import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UnauthenticatedError } from '../errors.ts';
import { createJwtVerifier, sitesOf } from './jwt.ts';
import { stableIdentity } from '../rpc/principal.ts';

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
    ['a name with a NUL', ['site-a', 'b\u0000'], 'each name of the sites claim must not contain a NUL character'],
    ['a name too long', ['s'.repeat(201)], 'each name of the sites claim must be at most 200 characters'],
  ])('refuses a claim that is %s (fail closed), naming the claim', (_, claim, message) => {
    expect(() => sitesOf(claim)).toThrow(UnauthenticatedError);
    expect(() => sitesOf(claim)).toThrow(message);
  });
});

describe('the identity of a JWT caller', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'powerplane-jwt-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('is its issuer and subject, the same for every JWT issued to that subject', async () => {
    const keyFile = path.join(dir, 'secret');
    const secret = 'a shared secret for this test only, long enough for HS256';
    await writeFile(keyFile, secret);
    const verify = await createJwtVerifier({ issuer: 'https://idp.test', audience: 'powerplane', keyFile, algorithms: ['HS256'] });
    const sign = (jti: string) =>
      new SignJWT({ scope: 'dispatch:write', sites: ['site-a'] })
        .setProtectedHeader({ alg: 'HS256' })
        .setIssuer('https://idp.test')
        .setAudience('powerplane')
        .setSubject('desk-a')
        .setJti(jti)
        .setExpirationTime('5m')
        .sign(new TextEncoder().encode(secret));
    const [first, reissued] = await Promise.all([verify(await sign('1')), verify(await sign('2'))]);
    expect(first).toMatchObject({ id: 'jwt:desk-a', identity: 'jwt:https://idp.test desk-a' });
    expect(stableIdentity(reissued)).toBe(stableIdentity(first));
  });

  it('refuses a subject or issuer that could not be stored as the principal of a change', async () => {
    const keyFile = path.join(dir, 'secret-claims');
    const secret = 'another shared secret for this test only, long enough for HS256';
    await writeFile(keyFile, secret);
    const verify = await createJwtVerifier({ issuer: 'https://idp.test', audience: 'powerplane', keyFile, algorithms: ['HS256'] });
    const sign = (subject: string) =>
      new SignJWT({ scope: 'dispatch:write', sites: ['site-a'] })
        .setProtectedHeader({ alg: 'HS256' })
        .setIssuer('https://idp.test')
        .setAudience('powerplane')
        .setSubject(subject)
        .setExpirationTime('5m')
        .sign(new TextEncoder().encode(secret));
    await expect(verify(await sign('desk\u0000a'))).rejects.toThrow('invalid JWT - the sub claim must not contain a NUL character');
    await expect(verify(await sign('d'.repeat(201)))).rejects.toThrow('the sub claim must be at most 200 characters');
    await expect(verify(await sign('desk-a'))).resolves.toMatchObject({ id: 'jwt:desk-a' });
  });
});
