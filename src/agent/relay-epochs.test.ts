import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../logger.ts';
import { loadRelayEpochs, saveRelayEpochs } from './relay-epochs.ts';

describe('the relay epoch file', () => {
  let dir: string;
  let file: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'pp-epochs-'));
    file = path.join(dir, 'relay-epochs.json');
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  const capture = () => {
    const lines: string[] = [];
    const log = createLogger('error', { write: (l: string) => lines.push(l) });
    return { log, lines };
  };

  it('round-trips epochs beyond 2^53, owner-only, leaving no temporary file, and keeps only configured devices', async () => {
    const big = 2n ** 62n + 7n;
    saveRelayEpochs(
      file,
      new Map([
        ['a', 3n],
        ['b', big],
        ['gone', 9n],
      ]),
    );
    expect(await readdir(dir)).toEqual(['relay-epochs.json']);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(loadRelayEpochs(file, new Set(['a', 'b', 'c']))).toEqual(
      new Map([
        ['a', 3n],
        ['b', big],
      ]),
    );
    saveRelayEpochs(file, new Map([['a', 4n]]));
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual({ a: '4' });
  });

  it('starts empty without a file, and says nothing', () => {
    const { log, lines } = capture();
    expect(loadRelayEpochs(file, new Set(['a']), log).size).toBe(0);
    expect(lines).toEqual([]);
  });

  it.each([
    ['not JSON', '{"a": "3"'],
    ['not an object', '["3"]'],
    ['a number instead of a decimal string', '{"a": 3}'],
    ['a negative epoch', '{"a": "-3"}'],
  ])('starts empty from a damaged file (%s) and logs it as an error', async (_what, body) => {
    await writeFile(file, body);
    const { log, lines } = capture();
    expect(loadRelayEpochs(file, new Set(['a']), log).size).toBe(0);
    expect(lines.join('')).toContain('the relay epoch file is damaged');
  });
});
