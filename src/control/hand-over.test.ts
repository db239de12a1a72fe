import { describe, expect, it } from 'vitest';
import { settle } from '../clock.fixtures.ts';
import { handOver, type HandOverSteps } from './hand-over.ts';

const setpoints = (n: number) => Array.from({ length: n }, (_, i) => ({ deviceId: `b${i}` }));
const change = (deviceId: string) => ({ deviceId, cause: `new ${deviceId}` });

/** Steps that log what happens, each store held until the test lets it finish. */
function steps(mayApply: () => boolean = () => true) {
  const log: string[] = [];
  const pending: Array<{ ids: string[]; finish: (err?: Error, refused?: boolean) => void }> = [];
  const s: HandOverSteps<{ deviceId: string }, { deviceId: string }> = {
    record(changes) {
      const ids = changes.map((c) => c.deviceId);
      log.push(`store ${ids.join(',')}`);
      return new Promise<boolean>((resolve, reject) =>
        pending.push({ ids, finish: (err, refused) => (err ? reject(err) : resolve(!refused)) }),
      );
    },
    mayApply,
    apply: (sp) => log.push(`apply ${sp.deviceId}`),
  };
  /** Lets the oldest store in flight finish (stored, refused or failed) and the hand-over go on. */
  const finish = async (err?: Error, refused = false) => {
    pending.shift()!.finish(err, refused);
    await settle();
  };
  return { log, steps: s, finish, inFlight: () => pending.length };
}

describe("a site's hand-over to its writers", () => {
  it("stores a small site's changes in one go, then hands every setpoint over", async () => {
    const t = steps();
    const done = handOver(setpoints(3), [change('b0'), change('b2')], t.steps, 4);
    await settle();
    expect(t.log).toEqual(['store b0,b2']);
    await t.finish();
    expect(await done).toBe(true);
    expect(t.log).toEqual(['store b0,b2', 'apply b0', 'apply b1', 'apply b2']);
  });

  it("hands a chunk over only once its changes are stored, and stores the next chunk's while it is written", async () => {
    const t = steps();
    const done = handOver(setpoints(5), [change('b0'), change('b1'), change('b3'), change('b4')], t.steps, 2);
    await settle();
    expect(t.log).toEqual(['store b0,b1']);
    await t.finish();
    expect(t.log).toEqual(['store b0,b1', 'store b3', 'apply b0', 'apply b1']);
    await t.finish();
    expect(t.log).toEqual(['store b0,b1', 'store b3', 'apply b0', 'apply b1', 'store b4', 'apply b2', 'apply b3']);
    await t.finish();
    expect(await done).toBe(true);
    expect(t.log.at(-1)).toBe('apply b4');
    expect(t.inFlight()).toBe(0);
  });

  it('stops before the chunk whose turn comes once the site may no longer be written, awaiting the store in flight', async () => {
    let mine = true;
    const t = steps(() => mine);
    const done = handOver(setpoints(4), [change('b0'), change('b2')], t.steps, 2);
    await settle();
    await t.finish();
    expect(t.log).toEqual(['store b0', 'store b2', 'apply b0', 'apply b1']);
    mine = false;
    await t.finish();
    expect(await done).toBe(false);
    expect(t.log).toEqual(['store b0', 'store b2', 'apply b0', 'apply b1']);
  });

  it("hands nothing more over once a chunk's changes are refused", async () => {
    const t = steps();
    const done = handOver(setpoints(4), [change('b0'), change('b2')], t.steps, 2);
    await settle();
    await t.finish();
    await t.finish(undefined, true);
    expect(await done).toBe(false);
    expect(t.log).toEqual(['store b0', 'store b2', 'apply b0', 'apply b1']);
    expect(t.inFlight()).toBe(0);
  });

  it('hands nothing more over once a store fails', async () => {
    const t = steps();
    const done = handOver(setpoints(4), [change('b0'), change('b2')], t.steps, 2);
    await settle();
    await t.finish();
    await t.finish(new Error('database gone'));
    await expect(done).rejects.toThrow('database gone');
    expect(t.log).toEqual(['store b0', 'store b2', 'apply b0', 'apply b1']);
  });
});
