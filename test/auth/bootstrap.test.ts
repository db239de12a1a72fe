import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TokenService } from '../../gen/powerplane/v1/auth_pb.ts';
import { bearer } from '../../src/auth/bearer.ts';
import { toConfig } from '../../src/config.ts';
import { startServer } from '../../src/server/server.ts';
import { ENGINES, silentLog } from '../support/databases.ts';
import { startTestServer } from '../support/server.ts';

describe.each(ENGINES)('the first start on %s', (engine) => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'powerplane-bootstrap-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('creates one admin token, writes it only to the data directory, and reuses it on the next start', async () => {
    const auth = toConfig({ dataDir: dir }).auth;
    expect(auth.enabled).toBe(true);
    const t = await startTestServer(engine, { auth });
    try {
      const file = path.join(dir, 'admin.token');
      expect(((await stat(file)).mode & 0o777).toString(8)).toBe('600');
      const secret = (await readFile(file, 'utf8')).trim();
      const tokens = createClient(TokenService, createGrpcTransport({ baseUrl: t.baseUrl, interceptors: [bearer(secret)] }));
      const listed = (await tokens.listTokens({})).tokens;
      expect(listed).toHaveLength(1);
      expect(listed[0]!.scopes).toContain('tokens:admin');
      // The operator's key on the machine does not expire (every token made through the API does).
      expect(listed[0]!.expireTime).toBeUndefined();

      // A second server on the same database finds the admin and leaves the file alone.
      await rm(file);
      const again = await startServer(
        { ...toConfig({ listen: '127.0.0.1:0' }), database: t.testDatabase.config, auth },
        { log: silentLog, database: t.server.database },
      );
      await again.stop();
      await expect(stat(file)).rejects.toThrow(/ENOENT/);
    } finally {
      await t.stop();
    }
  });
});
