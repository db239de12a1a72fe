import fs from 'node:fs/promises';
import path from 'node:path';
import type { PGlite } from '@electric-sql/pglite';
import { NodeFS } from '@electric-sql/pglite/nodefs';
import type { Logger } from '../logger.ts';

/** Permission bits no file or directory of the embedded database keeps: all of group and other. */
const NOT_OWNER = 0o077;

/** Paths named in the warning about a fixed data directory; the rest are counted. */
const NAMED_IN_WARNING = 20;

/** What {@link secureDataDir} changed. */
export interface DataDirFix {
  /** The data directory's own mode before, when it was not 0700 (octal string, e.g. "755"). */
  readonly dirModeWas?: string;
  /** Entries below it (relative paths) that were writable by group or other, now not. */
  readonly writableEntries: readonly string[];
}

/**
 * Makes the embedded database's data directory private before PGlite opens it: creates it
 * with mode 0700 when missing; otherwise sets it to 0700 and removes group and other write
 * from everything below it (symbolic links are neither followed nor changed), logging a
 * warning that names what was fixed. A directory left writable by others lets any local
 * user rewrite `postgresql.conf`, `pg_hba.conf` or the catalog. Fails with the path when a
 * mode cannot be changed (an entry owned by another user), rather than starting on files
 * others may write.
 */
export async function secureDataDir(dataDir: string, log: Logger): Promise<DataDirFix> {
  const created = await fs.mkdir(dataDir, { recursive: true, mode: 0o700 });
  // mkdir's mode is reduced by the umask; 0700 needs no such help, but state it anyway.
  if (created !== undefined) await chmod(dataDir, 0o700);
  // The directory itself may be a link (to another disk); what lies below it is not followed.
  const stat = await fs.stat(dataDir);
  if (!stat.isDirectory()) throw new Error(`the data directory ${dataDir} is not a directory`);
  const dirMode = stat.mode & 0o777;
  const fix: { dirModeWas?: string; writableEntries: string[] } = { writableEntries: [] };
  if (dirMode !== 0o700) {
    await chmod(dataDir, 0o700);
    fix.dirModeWas = dirMode.toString(8);
  }
  await removeGroupOtherWrite(dataDir, '', fix.writableEntries);
  if (fix.dirModeWas !== undefined || fix.writableEntries.length > 0) {
    log.warn(
      {
        dataDir,
        ...(fix.dirModeWas !== undefined ? { dirModeWas: fix.dirModeWas } : {}),
        writableEntries: fix.writableEntries.length,
        examples: fix.writableEntries.slice(0, NAMED_IN_WARNING),
      },
      `fixed the permissions of the data directory ${dataDir}: ` +
        [
          ...(fix.dirModeWas !== undefined ? [`it was mode ${fix.dirModeWas}, now 700`] : []),
          ...(fix.writableEntries.length > 0
            ? [`${fix.writableEntries.length} entries below it were writable by group or other, now not`]
            : []),
        ].join('; ') +
        ' (another local user may have changed its files: check postgresql.conf and pg_hba.conf)',
    );
  }
  return fix;
}

async function removeGroupOtherWrite(root: string, relative: string, fixed: string[]): Promise<void> {
  const entries = await fs.readdir(path.join(root, relative), { withFileTypes: true });
  for (const entry of entries) {
    const rel = path.join(relative, entry.name);
    const full = path.join(root, rel);
    if (entry.isSymbolicLink()) continue;
    const mode = (await fs.lstat(full)).mode & 0o7777;
    if (mode & 0o022) {
      await chmod(full, mode & ~0o022);
      fixed.push(rel);
    }
    if (entry.isDirectory()) await removeGroupOtherWrite(root, rel, fixed);
  }
}

async function chmod(file: string, mode: number): Promise<void> {
  try {
    await fs.chmod(file, mode);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new Error(`cannot make ${file} mode ${mode.toString(8)} (${code}); fix the data directory's owner and permissions`, {
      cause: err,
    });
  }
}

/** The parts of Emscripten's NODEFS that {@link OwnerOnlyNodeFS} wraps. */
interface NodeFsOps {
  node_ops: {
    mknod(parent: unknown, name: string, mode: number, dev: number): unknown;
    setattr(node: unknown, attr: { mode?: number }): void;
  };
  stream_ops: { setattr(stream: unknown, attr: { mode?: number }): void };
  [OWNER_ONLY]?: true;
}

const OWNER_ONLY = Symbol('powerplane.ownerOnly');

/**
 * PGlite's Node filesystem with every file and directory it creates or chmods kept
 * owner-only (group and other bits cleared, as PostgreSQL's own data directories are).
 *
 * The process umask is not enough, and so is not changed: PGlite's Emscripten runtime
 * creates a file, then `chmod`s it to the mode PostgreSQL asked for (0666 for most of the
 * catalog), which the umask does not reduce. This wraps the one layer every data-directory
 * write goes through (NODEFS node and stream operations, also used by PGlite's initdb
 * through the main module's filesystem). Should a PGlite release rename those operations,
 * opening fails here rather than silently writing 0666 files; the storage tests check the
 * modes of a fresh directory.
 */
export class OwnerOnlyNodeFS extends NodeFS {
  override async init(pg: PGlite, opts: Parameters<NodeFS['init']>[1]): ReturnType<NodeFS['init']> {
    const { emscriptenOpts } = await super.init(pg, opts);
    return {
      emscriptenOpts: {
        ...emscriptenOpts,
        preRun: [(mod) => restrictNodeFs(mod.NODEFS as unknown as NodeFsOps), ...(emscriptenOpts.preRun ?? [])],
      },
    };
  }
}

function restrictNodeFs(nodefs: NodeFsOps): void {
  if (nodefs[OWNER_ONLY]) return;
  const { node_ops: nodeOps, stream_ops: streamOps } = nodefs;
  if (typeof nodeOps?.mknod !== 'function' || typeof nodeOps.setattr !== 'function' || typeof streamOps?.setattr !== 'function') {
    throw new Error('this PGlite version has no NODEFS operations to restrict; the data directory would be created writable by every user');
  }
  const mknod = nodeOps.mknod;
  const setattr = nodeOps.setattr;
  const streamSetattr = streamOps.setattr;
  nodeOps.mknod = (parent, name, mode, dev) => mknod(parent, name, mode & ~NOT_OWNER, dev);
  nodeOps.setattr = (node, attr) => setattr(node, ownerOnly(attr));
  streamOps.setattr = (stream, attr) => streamSetattr(stream, ownerOnly(attr));
  nodefs[OWNER_ONLY] = true;
}

function ownerOnly<A extends { mode?: number }>(attr: A): A {
  return attr.mode === undefined ? attr : { ...attr, mode: attr.mode & ~NOT_OWNER };
}
