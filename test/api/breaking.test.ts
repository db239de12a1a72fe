/**
 * `buf breaking` against the committed image of the released API (api/released/), the check
 * CI runs: the current proto/ passes it, and a copy of proto/ with a released field deleted
 * fails it, naming the field.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '../..');
const BUF = path.join(ROOT, 'node_modules/.bin/buf');
const RELEASED = path.join(ROOT, 'api/released/powerplane-v1.binpb');

let dir: string;

function breaking(cwd: string) {
  const run = spawnSync(BUF, ['breaking', '--against', RELEASED], { cwd, encoding: 'utf8' });
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'buf-breaking-'));
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('breaking-change check against the released API', () => {
  it('passes for the current proto/ (additions since the release are not breaks)', () => {
    const run = breaking(ROOT);
    expect(run.output).toBe('');
    expect(run.status).toBe(0);
  });

  it('fails for a copy of proto/ without a released field, naming the field', () => {
    cpSync(path.join(ROOT, 'proto'), path.join(dir, 'proto'), { recursive: true });
    cpSync(path.join(ROOT, 'buf.yaml'), path.join(dir, 'buf.yaml'));
    const file = path.join(dir, 'proto/powerplane/v1/dispatch.proto');
    const before = readFileSync(file, 'utf8');
    const after = before.replace(/^ {2}double value = 3;\n/m, '');
    expect(after).not.toBe(before);
    writeFileSync(file, after);

    const run = breaking(dir);
    expect(run.status).not.toBe(0);
    expect(run.output).toContain('Previously present field "3" with name "value" on message "MarketDataPoint" was deleted');
  });
});
