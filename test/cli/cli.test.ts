import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const BIN = path.resolve(import.meta.dirname, '../../bin/powerplane.js');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI to completion (bounded by `timeoutMs`, then killed). */
function run(args: string[], timeoutMs = 60_000, env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, POWERPLANE_LOG_LEVEL: 'warn', ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Starts `powerplane serve` and resolves with its URL once it says it is serving. */
function serve(dataDir: string): Promise<{ child: ChildProcess; url: string; stopped: Promise<number | null> }> {
  const child = spawn(process.execPath, [BIN, 'serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir, '--log-level', 'warn']);
  const stopped = new Promise<number | null>((resolve) => child.on('close', resolve));
  return new Promise((resolve, reject) => {
    let stderr = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`serve did not start: ${stderr}`));
    }, 30_000);
    child.stderr!.on('data', (d) => {
      stderr += d;
      const match = /serving on (http:\/\/127\.0\.0\.1:\d+)/.exec(stderr);
      if (match) {
        clearTimeout(timer);
        resolve({ child, url: match[1]!, stopped });
      }
    });
    child.on('close', () => reject(new Error(`serve exited: ${stderr}`)));
  });
}

describe('the powerplane command', () => {
  let dataDir: string;
  beforeAll(async () => {
    dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'powerplane-cli-'));
  });
  afterAll(() => fs.rm(dataDir, { recursive: true, force: true }));

  it('prints its version', async () => {
    const pkg = JSON.parse(await fs.readFile(path.resolve(import.meta.dirname, '../../package.json'), 'utf8'));
    const result = await run(['version']);
    expect(result).toMatchObject({ code: 0, stdout: `powerplane ${pkg.version}\n` });
  });

  it.each(['serve', 'migrate', 'devices', 'tokens', 'simulate', 'version'])('explains %s with --help', async (command) => {
    const result = await run([command, '--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`powerplane ${command}`);
  });

  it('lists its commands and refuses an unknown one with exit code 2', async () => {
    expect((await run(['--help'])).stdout).toMatch(/serve[\s\S]*migrate[\s\S]*devices[\s\S]*simulate[\s\S]*version/);
    const result = await run(['frobnicate']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('unknown command "frobnicate"');
  });

  it('refuses a bad flag value naming the variable', async () => {
    const result = await run(['serve', '--listen', 'nowhere']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('POWERPLANE_LISTEN');
    expect(result.stderr).toContain('nowhere');
  });

  it('migrates, serves, adds and lists devices, stops on SIGTERM and keeps the data across restarts', async () => {
    const migrated = await run(['migrate', '--data-dir', dataDir]);
    expect(migrated.code).toBe(0);
    expect(migrated.stdout).toMatch(/applied: 1_flux_schema/);

    const first = await serve(dataDir);
    // No --token: the CLI uses the admin token the server's first start wrote to the data directory.
    const added = await run([
      'devices',
      'add',
      '--server',
      first.url,
      '--data-dir',
      dataDir,
      '--type',
      'meter',
      '--name',
      'grid meter',
      '--site',
      'cli-site',
      '--host',
      '127.0.0.1',
      '--port',
      '1502',
    ]);
    expect(added.stderr).toBe('');
    expect(added.code).toBe(0);
    expect(added.stdout).toMatch(/^[0-9a-f-]{36}\tcli-site\tmeter\tactive\tgrid meter\n$/);

    const bad = await run([
      'devices',
      'add',
      '--server',
      first.url,
      '--data-dir',
      dataDir,
      '--type',
      'meter',
      '--name',
      '',
      '--site',
      'cli-site',
      '--host',
      'h',
    ]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('device.name is required');

    first.child.kill('SIGTERM');
    expect(await first.stopped).toBe(0);

    const second = await serve(dataDir);
    const listed = await run(['devices', 'list', '--server', second.url, '--data-dir', dataDir, '--json']);
    expect(listed.code).toBe(0);
    expect(JSON.parse(listed.stdout.trim())).toMatchObject({ name: 'grid meter', site: 'cli-site', type: 'DEVICE_TYPE_METER' });

    const created = await run([
      'tokens',
      'create',
      '--server',
      second.url,
      '--data-dir',
      dataDir,
      '--name',
      'agent cli-site',
      '--scope',
      'telemetry:write',
      '--site',
      'cli-site',
    ]);
    expect(created.code).toBe(0);
    const secret = created.stdout.trim();
    expect(secret).toMatch(/^pp_[A-Za-z0-9_-]{43}$/);
    const tokens = await run(['tokens', 'list', '--server', second.url, '--data-dir', dataDir, '--json']);
    const agent = tokens.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { id: string; name: string; sites: string[] })
      .find((t) => t.name === 'agent cli-site');
    expect(agent).toMatchObject({ scopes: ['telemetry:write'], sites: ['cli-site'] });
    expect(tokens.stdout).not.toContain(secret);
    const refused = await run(['devices', 'list', '--server', second.url, '--token', secret]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('needs the scope readings:read or registry:admin');
    // POWERPLANE_TOKEN is the token when --token is not given (here instead of the admin file).
    const fromEnv = await run(['devices', 'list', '--server', second.url, '--data-dir', dataDir], 60_000, { POWERPLANE_TOKEN: secret });
    expect(fromEnv.stderr).toContain('needs the scope readings:read or registry:admin');
    const anonymous = await run(['devices', 'list', '--server', second.url, '--data-dir', path.join(dataDir, 'elsewhere')]);
    expect(anonymous.stderr).toContain('credentials required');
    expect((await run(['tokens', 'revoke', '--server', second.url, '--data-dir', dataDir, '--id', agent!.id])).stdout).toContain('revoked');
    const badScope = await run(['tokens', 'create', '--server', second.url, '--data-dir', dataDir, '--name', 'x', '--scope', 'everything']);
    expect(badScope.stderr).toContain('scopes[0] must be one of');
    second.child.kill('SIGINT');
    expect(await second.stopped).toBe(0);
  }, 180_000);

  it('adds a battery with a custom register map from --register-map FILE, and refuses a bad file or map', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'powerplane-cli-map-'));
    try {
      // The README's custom-map example.
      const map = JSON.parse(await fs.readFile(path.resolve(import.meta.dirname, '../fixtures/acme-bc500.register-map.json'), 'utf8')) as {
        points: object[];
      };
      const good = path.join(dir, 'acme.json');
      const refused = path.join(dir, 'refused.json');
      const notJson = path.join(dir, 'not-json.json');
      await fs.writeFile(good, JSON.stringify(map));
      await fs.writeFile(refused, JSON.stringify({ ...map, points: [{ ...map.points[0], type: 'uint17' }, ...map.points.slice(1)] }));
      await fs.writeFile(notJson, '{"name": "acme-bc500",');
      // Nothing listens on port 9 (discard): the file errors must come before any call.
      let url = 'http://127.0.0.1:9';
      const add = (file: string, name: string) =>
        run([
          'devices',
          'add',
          '--server',
          url,
          '--data-dir',
          dir,
          '--type',
          'bess',
          '--name',
          name,
          '--site',
          'cli-map',
          '--host',
          '127.0.0.1',
          '--port',
          '1502',
          '--charge-kw',
          '250',
          '--discharge-kw',
          '250',
          '--capacity-kwh',
          '500',
          '--min-soe',
          '10',
          '--max-soe',
          '90',
          '--register-map',
          file,
        ]);

      // File problems are usage errors (exit 2) naming the flag and the file.
      const missing = await add(path.join(dir, 'missing.json'), 'x');
      expect(missing.code).toBe(2);
      expect(missing.stderr).toContain(`--register-map ${path.join(dir, 'missing.json')}: cannot be read (ENOENT)`);
      const broken = await add(notJson, 'x');
      expect(broken.code).toBe(2);
      expect(broken.stderr).toContain(`--register-map ${notJson}: is not JSON`);

      const server = await serve(dir);
      url = server.url;
      try {
        const added = await add(good, 'acme-1');
        expect(added.stderr).toBe('');
        expect(added.code).toBe(0);
        expect(added.stdout).toMatch(/^[0-9a-f-]{36}\tcli-map\tbess\tactive\tacme-1\n$/);
        const listed = await run(['devices', 'list', '--server', url, '--data-dir', dir, '--site', 'cli-map', '--json']);
        expect(JSON.parse(listed.stdout.trim())).toMatchObject({
          name: 'acme-1',
          bess: { modbus: { registerProfile: 'REGISTER_PROFILE_CUSTOM', registerMap: { name: 'acme-bc500', points: map.points } } },
        });

        // The server judges the map: INVALID_ARGUMENT naming the field, exit 1.
        const bad = await add(refused, 'acme-2');
        expect(bad.code).toBe(1);
        expect(bad.stderr).toContain('invalid_argument');
        expect(bad.stderr).toContain('device.bess.modbus.register_map.points[0].type');
      } finally {
        server.child.kill('SIGTERM');
        expect(await server.stopped).toBe(0);
      }
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
