import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import type { KyselyPlugin } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, ENGINES, type TestDatabase } from '../../test/support/databases.ts';
import { registerBattery } from '../../test/support/fleet.ts';
import { serveInMemory, type InMemoryApi } from '../../test/support/services.ts';
import { SCOPES, UNRESTRICTED, type Principal } from '../rpc/principal.ts';
import type { Database } from '../storage/database.ts';

/**
 * `principal_name` of dispatch instructions, in memory on both engines: the name people know
 * the submitter by (a token's name, a JWT's or certificate's subject), looked up once per
 * answer, never per instruction.
 */

const MINUTE = 60_000;

/** Counts the statements that read the tokens table. */
function tokenReads(): KyselyPlugin & { count: number } {
  return {
    count: 0,
    transformQuery(args) {
      if (JSON.stringify(args.node).includes('api_tokens')) this.count++;
      return args.node;
    },
    transformResult: (args) => Promise.resolve(args.result),
  };
}

const principal = (id: string, kind: Principal['kind']): Principal => ({ id, kind, scopes: new Set(SCOPES), sites: '*' });

describe.each(ENGINES)('principal_name on %s', (engine) => {
  let testDb: TestDatabase;
  let api: InMemoryApi;
  let database: Database;
  const reads = tokenReads();

  beforeAll(async () => {
    testDb = await createTestDatabase(engine);
    database = await testDb.open();
    api = serveInMemory(database, testDb.config, { db: database.db.withPlugin(reads) });
    await registerBattery(api.as(UNRESTRICTED).registry, 'site-p', 'p0', { host: '127.0.0.1', port: 1, unitId: 1 });
  });
  afterAll(async () => {
    await api?.close();
    await testDb?.drop();
  });

  it("names each submitter by its token's name, its JWT or certificate subject, or its id when it has no name", async () => {
    const { token } = await api.as(UNRESTRICTED).tokens.createToken({ name: 'trading <desk> 1', scopes: ['dispatch:write'] });
    const submitters = [
      [principal(`token:${token!.id}`, 'token'), 'trading <desk> 1'],
      [principal('jwt:trader-7', 'jwt'), 'trader-7'],
      [principal('cert:ops-console', 'certificate'), 'ops-console'],
      [UNRESTRICTED, 'unrestricted'],
    ] as const;
    const start = Date.now() + 60 * MINUTE;
    for (const [i, [caller, name]] of submitters.entries()) {
      const { instructions } = await api.as(caller).dispatch.submitDispatch({
        requestId: `named-${i}`,
        target: { case: 'site', value: 'site-p' },
        intervals: [
          {
            startTime: timestampFromMs(start + i * MINUTE),
            endTime: timestampFromMs(start + (i + 1) * MINUTE),
            command: { case: 'powerKw', value: 5 },
          },
        ],
      });
      expect(instructions[0]).toMatchObject({ principal: caller.id, principalName: name });
      const { instruction } = await api.as(UNRESTRICTED).dispatch.getDispatch({ id: instructions[0]!.id });
      expect(instruction?.principalName).toBe(name);
    }
    const before = reads.count;
    const { instructions } = await api.as(UNRESTRICTED).dispatch.listDispatches({ site: 'site-p', pageSize: 10 });
    expect(instructions.map((i) => i.principalName).sort()).toEqual(submitters.map(([, name]) => name).sort());
    // The token's name was read once and is remembered (a token is never renamed).
    expect(reads.count).toBe(before);
  });

  it('reads the names of a page of instructions by many tokens in one statement', async () => {
    const ops = api.as(UNRESTRICTED);
    const start = Date.now() + 120 * MINUTE;
    for (let i = 0; i < 5; i++) {
      const { token } = await ops.tokens.createToken({ name: `desk ${i}`, scopes: ['dispatch:write'] });
      // Stored as a submit stores it, without an answer that would read (and remember) the name.
      await database.withSession((s) =>
        s.query(
          `insert into powerplane.dispatch_instructions (request_id, site, start_time, end_time, power_kw, principal)
           values ($1, 'site-q', $2, $3, 1, $4)`,
          [`q-${i}`, new Date(start + i * MINUTE).toISOString(), new Date(start + (i + 1) * MINUTE).toISOString(), `token:${token!.id}`],
        ),
      );
    }
    const before = reads.count;
    const { instructions } = await ops.dispatch.listDispatches({ site: 'site-q', pageSize: 10 });
    expect(instructions.map((i) => i.principalName).sort()).toEqual(['desk 0', 'desk 1', 'desk 2', 'desk 3', 'desk 4']);
    expect(reads.count).toBe(before + 1);
    // Remembered: the same page again reads no name.
    await ops.dispatch.listDispatches({ site: 'site-q', pageSize: 10 });
    expect(reads.count).toBe(before + 1);
  });
});
