import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDispatch, type Dispatch } from '../../src/dispatch/dispatch.ts';
import type { Instruction, SubmitInput } from '../../src/dispatch/instruction.ts';
import { createRegistry } from '../../src/registry/registry.ts';
import type { ResponseCodec } from '../../src/storage/idempotency.ts';
import { EVERY_SITE } from '../../src/storage/site-scope.ts';
import { createTestDatabase, ENGINES, type TestDatabase } from '../support/databases.ts';
import { createTestBattery } from '../support/registry-devices.ts';

/** Instructions as JSON with their dates: enough to answer a retry in this test. */
const codec: ResponseCodec<Instruction[]> = {
  encode: (list) => new TextEncoder().encode(JSON.stringify(list)),
  decode: (bytes) =>
    (JSON.parse(new TextDecoder().decode(bytes)) as Instruction[]).map((i) => ({
      ...i,
      startTime: new Date(i.startTime),
      endTime: new Date(i.endTime),
      createdAt: new Date(i.createdAt),
    })),
};

/**
 * What a submit tells the control loop of its replica: the site as soon as it is known and
 * before anything is stored, then the instructions as stored, and nothing for a retry
 * answered from its stored response.
 */
describe.each(ENGINES)('the steps a submit tells on %s', (engine) => {
  let testDb: TestDatabase;
  let dispatch: Dispatch;
  let deviceId: string;
  const site = `hooks-${engine}`;
  let told: string[] = [];
  let submitted: Instruction[] = [];
  let marks = 0;
  const caller = { principal: 'trader', owner: 'trader', sites: EVERY_SITE };

  const input = (requestId: string, target: SubmitInput['target']): SubmitInput => ({
    requestId,
    target,
    intervals: [{ startTime: new Date(Date.now() - 1_000), endTime: new Date(Date.now() + 600_000), command: { powerKw: 10 } }],
    priority: 0,
  });
  const submit = (request: SubmitInput) =>
    dispatch.submit(request, caller, codec, async () => {
      told.push('audit');
    });

  beforeAll(async () => {
    testDb = await createTestDatabase(engine);
    const database = await testDb.open();
    const registry = createRegistry({ db: database.db });
    deviceId = (await createTestBattery(registry, site, 'b1')).id;
    dispatch = createDispatch({
      db: database.db,
      registry,
      onChange: (changed, reason) => told.push(`change ${changed} ${reason}`),
      onSubmit: {
        submitting: (at) => {
          told.push(`submitting ${at}`);
          return ++marks;
        },
        submitted: (at, list, since) => {
          told.push(`submitted ${at} ${since}`);
          submitted = [...list];
        },
      },
    });
  });
  afterAll(async () => testDb?.drop());

  it.each([
    ['a site', () => ({ site })],
    ['a battery', () => ({ deviceId })],
  ])('tells the site of %s before its audit and store, and the instructions once stored', async (what, target) => {
    told = [];
    const stored = await submit(input(`r-${what}`, target()));
    expect(told).toEqual([`submitting ${site}`, 'audit', `submitted ${site} ${marks}`]);
    expect(submitted).toEqual(stored);
  });

  it('tells no instructions stored for a retry answered from its stored response', async () => {
    const request = input('r-retry', { site });
    const first = await submit(request);
    told = [];
    expect(await submit(request)).toEqual(first);
    expect(told.filter((t) => t.startsWith('submitted'))).toEqual([]);
    expect(told).not.toContain('audit');
  });

  it('tells the instructions of only the call that stored them when two calls with one request id race', async () => {
    const request = input('r-race', { site });
    told = [];
    const [a, b] = await Promise.all([submit(request), submit(request)]);
    expect(b).toEqual(a);
    // The other call was answered with the first one's response (read again, not kept as stored).
    expect(told.filter((t) => t.startsWith('submitted'))).toHaveLength(1);
  });
});
