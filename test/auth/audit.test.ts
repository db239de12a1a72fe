import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAuditLog } from '../../src/audit/audit.ts';
import type { Database } from '../../src/storage/database.ts';
import { createTestDatabase, type TestDatabase } from '../support/databases.ts';

describe('the audit trail', () => {
  let testDatabase: TestDatabase;
  let database: Database;
  beforeAll(async () => {
    testDatabase = await createTestDatabase('pglite');
    database = await testDatabase.open({ migrated: true });
  });
  afterAll(async () => {
    await database?.close();
    await testDatabase?.drop();
  });

  it('folds repeated refusals of one principal, method and code into one row a second, and counts them', async () => {
    let clock = 1_000_000;
    const audit = createAuditLog({ db: database.db, now: () => clock });
    const refusal = { principal: 'token:flood', method: 'powerplane.v1.DispatchService/SubmitDispatch', code: 'ResourceExhausted', message: 'over the limit' };
    for (let i = 0; i < 50; i++) await audit.refused(refusal);
    await audit.refused({ ...refusal, code: 'PermissionDenied' });
    clock += 1_000;
    await audit.refused(refusal);
    const rows = (await audit.list({ principal: 'token:flood' })).reverse();
    expect(rows.map((r) => [r.phase, r.code, r.message])).toEqual([
      ['refused', 'ResourceExhausted', 'over the limit'],
      ['refused', 'PermissionDenied', 'over the limit'],
      ['refused', 'ResourceExhausted', 'over the limit (and 49 more like it since the last row)'],
    ]);
  });
});
