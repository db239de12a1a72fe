import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { main } from './main.ts';
import { UsageError } from './usage.ts';
import { agentCommand, AGENT_HELP } from './agent.command.ts';

describe('powerplane agent', () => {
  let dir: string;
  let errors: string[];
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'pp-agent-cli-'));
    errors = [];
    vi.spyOn(console, 'error').mockImplementation((...args: unknown[]) => {
      errors.push(args.join(' '));
    });
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

  const usage = async (argv: string[]) => {
    const err = await agentCommand(argv).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(UsageError);
    return (err as Error).message;
  };
  const writeConfig = async (patch: (c: Record<string, any>) => void = () => undefined) => {
    const file = path.join(dir, 'site.json');
    const device = { deviceId: '9b2a4a55-0000-4000-8000-000000000001', kind: 'meter', endpoint: { host: '127.0.0.1', port: 1 } };
    const config: Record<string, any> = {
      site: 's',
      server: { url: 'http://127.0.0.1:1' },
      devices: [device],
      spool: { dir: path.join(dir, 'spool') },
    };
    patch(config);
    await writeFile(file, JSON.stringify(config));
    return file;
  };

  it('requires --config', async () => {
    expect(await usage([])).toBe('--config is required');
  });

  it.each([
    [['--drain-ms=-1'], '--drain-ms must be a non-negative integer (got "-1")'],
    [['--drain-ms', 'soon'], '--drain-ms must be a non-negative integer (got "soon")'],
    [['--log-level', 'loud'], '--log-level must be one of fatal, error, warn, info, debug, trace, silent (got "loud")'],
    [['--log-format', 'xml'], '--log-format must be one of auto, json, pretty (got "xml")'],
  ])('refuses %j naming the flag', async (flags, message) => {
    expect(await usage(['--config', await writeConfig(), ...flags])).toBe(message);
  });

  it('refuses an unknown flag, and main exits 2 for it', async () => {
    expect(await main(['agent', '--confg', 'x'])).toBe(2);
    expect(errors[0]).toContain("'--confg'");
  });

  it('names the file and the field of a bad config', async () => {
    const file = await writeConfig((c) => (c.devices = [{ deviceId: 'nope', kind: 'bess', endpoint: { host: 'h', port: 502 } }]));
    expect(await usage(['--config', file])).toContain(`${file}: site config: devices[0].deviceId must be the device's UUID`);
  });

  it('reports unreadable and malformed files', async () => {
    expect(await usage(['--config', path.join(dir, 'missing.json')])).toContain('ENOENT');
    const file = path.join(dir, 'bad.json');
    await writeFile(file, '{ "site": ');
    expect(await usage(['--config', file])).toContain(file);
  });

  it('names an unreadable TLS file by its field, opening nothing', async () => {
    const file = await writeConfig((c) => (c.server = { url: 'https://127.0.0.1:1', tls: { caFile: path.join(dir, 'no-ca.pem') } }));
    const message = await usage(['--config', file, '--log-level', 'silent']);
    expect(message).toContain('server.tls.caFile');
    expect(message).toContain('ENOENT');
    // The spool directory is created when the agent opens it: a config error comes first.
    await expect(stat(path.join(dir, 'spool'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
