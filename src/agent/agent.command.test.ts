import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { agentCommand, AGENT_HELP } from './agent.command.ts';

describe('powerplane agent', () => {
  let dir: string;
  let errors: string[];
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'pp-agent-cli-'));
    errors = [];
    vi.spyOn(console, 'error').mockImplementation((...args: unknown[]) => { errors.push(args.join(' ')); });
  });
  afterEach(async () => {
    vi.restoreAllMocks();
    await rm(dir, { recursive: true, force: true });
  });

  it('prints its help', async () => {
    const log = vi.spyOn(console, 'log').mockImplementation(() => undefined);
    expect(await agentCommand(['--help'])).toBe(0);
    expect(log).toHaveBeenCalledWith(AGENT_HELP);
  });

  it('requires --config', async () => {
    expect(await agentCommand([])).toBe(2);
    expect(errors[0]).toMatch(/^--config is required/);
  });

  it('names the file and the field of a bad config, and exits 2', async () => {
    const file = path.join(dir, 'site.json');
    await writeFile(file, JSON.stringify({ site: 's', server: { url: 'http://127.0.0.1:1' }, devices: [{ deviceId: 'nope', kind: 'bess', endpoint: { host: 'h', port: 502 } }], spool: { dir } }));
    expect(await agentCommand(['--config', file])).toBe(2);
    expect(errors[0]).toContain(`${file}: site config: devices[0].deviceId must be the device's UUID`);
  });

  it('reports unreadable and malformed files', async () => {
    expect(await agentCommand(['--config', path.join(dir, 'missing.json')])).toBe(2);
    expect(errors[0]).toContain('ENOENT');
    const file = path.join(dir, 'bad.json');
    await writeFile(file, '{ "site": ');
    expect(await agentCommand(['--config', file])).toBe(2);
    expect(errors[1]).toContain(file);
  });
});
