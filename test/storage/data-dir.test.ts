import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.ts';
import { secureDataDir } from '../../src/storage/data-dir.ts';
import { openDatabase } from '../../src/storage/database.ts';
import { migrate } from '../../src/storage/migrator.ts';
import { silentLog } from '../support/databases.ts';

/** A logger that keeps its JSON lines, to assert on warnings. */
function capturingLog() {
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger('info', { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  return { log, lines };
}

/** Every entry below `root` (not following links) with its permission bits. */
async function modes(root: string): Promise<Array<{ path: string; mode: number }>> {
  const found: Array<{ path: string; mode: number }> = [];
  for (const entry of await fs.readdir(root, { recursive: true })) {
    const stat = await fs.lstat(path.join(root, entry));
    if (!stat.isSymbolicLink()) found.push({ path: entry, mode: stat.mode & 0o7777 });
  }
  return found;
}

const dirMode = async (dir: string) => (await fs.stat(dir)).mode & 0o777;

let tmp: string;
beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'powerplane-data-dir-'));
});
afterAll(async () => {
  if (tmp) await fs.rm(tmp, { recursive: true, force: true });
});

describe('the embedded database data directory', () => {
  it('is created 0700 with every file and directory PGlite writes owner-only, catalog and new tables alike', async () => {
    const dataDir = path.join(tmp, 'fresh');
    const { log, lines } = capturingLog();
    const database = await openDatabase({ kind: 'pglite', dataDir }, { log });
    try {
      await migrate(database, silentLog);
      // Files created after start-up (a new table, its index, WAL) go through the same layer.
      await database.withSession((s) => s.exec('create table public.later (id int primary key); insert into public.later values (1);'));
    } finally {
      await database.close();
    }
    expect(await dirMode(dataDir)).toBe(0o700);
    const entries = await modes(dataDir);
    expect(entries.map((e) => e.path)).toEqual(
      expect.arrayContaining(['postgresql.conf', 'pg_hba.conf', path.join('global', 'pg_control'), 'PG_VERSION']),
    );
    expect(entries.filter((e) => e.mode & 0o022)).toEqual([]);
    expect(entries.filter((e) => e.mode & 0o077)).toEqual([]);
    expect(lines.filter((line) => line.level === 40)).toEqual([]);
  });

  it('fixes an existing directory left writable by everyone, warns naming what it fixed, and still opens it', async () => {
    const dataDir = path.join(tmp, 'loose');
    const first = await openDatabase({ kind: 'pglite', dataDir }, { log: silentLog });
    await first.withSession((s) => s.exec("create table public.kept (v text); insert into public.kept values ('still here');"));
    await first.close();
    // What PGlite's own runtime used to leave, and what an outsider could then do.
    for (const entry of await modes(dataDir)) {
      const full = path.join(dataDir, entry.path);
      await fs.chmod(full, (await fs.stat(full)).isDirectory() ? 0o777 : 0o666);
    }
    await fs.chmod(dataDir, 0o777);
    const loose = (await modes(dataDir)).length;

    const { log, lines } = capturingLog();
    const second = await openDatabase({ kind: 'pglite', dataDir }, { log });
    try {
      const rows = await second.withSession((s) => s.query<{ v: string }>('select v from public.kept'));
      expect(rows).toEqual([{ v: 'still here' }]);
    } finally {
      await second.close();
    }
    expect(await dirMode(dataDir)).toBe(0o700);
    expect((await modes(dataDir)).filter((e) => e.mode & 0o022)).toEqual([]);
    const warning = lines.find((line) => line.level === 40);
    expect(warning).toMatchObject({ dataDir, dirModeWas: '777', writableEntries: loose });
    expect(warning?.examples).toEqual(expect.arrayContaining(['PG_VERSION']));
    expect(String(warning?.msg)).toContain(`fixed the permissions of the data directory ${dataDir}`);
  });
});

describe('secureDataDir', () => {
  it('removes group and other write below the directory, keeps other bits, and leaves links and their targets alone', async () => {
    const outside = path.join(tmp, 'outside.txt');
    await fs.writeFile(outside, 'not ours');
    await fs.chmod(outside, 0o666);
    const dataDir = path.join(tmp, 'plain');
    await fs.mkdir(path.join(dataDir, 'sub'), { recursive: true });
    await fs.writeFile(path.join(dataDir, 'sub', 'file'), 'x');
    await fs.writeFile(path.join(dataDir, 'readable'), 'x');
    await fs.chmod(path.join(dataDir, 'sub', 'file'), 0o662);
    await fs.chmod(path.join(dataDir, 'readable'), 0o644);
    await fs.chmod(path.join(dataDir, 'sub'), 0o757);
    await fs.symlink(outside, path.join(dataDir, 'link'));
    await fs.chmod(dataDir, 0o750);

    const { log, lines } = capturingLog();
    const fix = await secureDataDir(dataDir, log);

    expect(fix).toEqual({ dirModeWas: '750', writableEntries: ['sub', path.join('sub', 'file')] });
    expect(await dirMode(dataDir)).toBe(0o700);
    expect(Object.fromEntries((await modes(dataDir)).map((e) => [e.path, e.mode]))).toEqual({
      readable: 0o644,
      sub: 0o755,
      [path.join('sub', 'file')]: 0o640,
    });
    expect((await fs.stat(outside)).mode & 0o777).toBe(0o666);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 40, dirModeWas: '750', writableEntries: 2, examples: ['sub', path.join('sub', 'file')] });
  });

  it('says nothing about a directory that is already private', async () => {
    const dataDir = path.join(tmp, 'private');
    const { log, lines } = capturingLog();
    expect(await secureDataDir(dataDir, log)).toEqual({ writableEntries: [] });
    expect(await dirMode(dataDir)).toBe(0o700);
    expect(await secureDataDir(dataDir, log)).toEqual({ writableEntries: [] });
    expect(lines).toEqual([]);
  });

  it('follows a data directory that is itself a link, and secures its target', async () => {
    const target = path.join(tmp, 'linked-target');
    await fs.mkdir(target, { mode: 0o755 });
    await fs.chmod(target, 0o755);
    const link = path.join(tmp, 'linked');
    await fs.symlink(target, link);
    expect(await secureDataDir(link, silentLog)).toEqual({ dirModeWas: '755', writableEntries: [] });
    expect(await dirMode(target)).toBe(0o700);
  });

  it('refuses a data directory that is a file, naming it', async () => {
    const file = path.join(tmp, 'a-file');
    await fs.writeFile(file, '');
    await expect(secureDataDir(file, silentLog)).rejects.toThrow(/a-file/);
  });
});
