import { chmodSync, copyFileSync, lchownSync, mkdirSync, symlinkSync } from 'node:fs';
import { chmod, constants, copyFile, lchown, lstat, mkdir, readdir, readlink, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { FileOwner } from './workDirAccess.js';

/** One entry of an extracted archive tree, relative to its root; parents come before their children. */
export interface TreeEntry {
  path: string;
  kind: 'dir' | 'file' | 'link';
  /** Permission bits of a directory (a file's come with its copy). */
  mode: number;
  /** A link's target, as stored. */
  target?: string;
  /** A file's size in bytes. */
  size?: number;
}

/** Trees with more entries than this are not listed: they are copied by fs.cp and handed over by a walk. */
export const MAX_LISTED_ENTRIES = 10_000;

/**
 * Lists an extracted archive tree once, so that each run's copy is made from the list: fs.cp stats every parent of
 * the destination up to / and each entry on both sides, and the hand-over walk (workDirAccess.ts) stats and lists
 * it all again, which for a small archive was most of a trivial job's file-system calls in the agent (issue 20).
 * Undefined, and the caller copies the slow way, for a tree past `max` entries or holding anything but directories,
 * regular files and symlinks, or any setuid, setgid or sticky bit (extractArchive caps modes, so none should be
 * there; the slow way strips them).
 */
export async function listTree(root: string, max = MAX_LISTED_ENTRIES): Promise<TreeEntry[] | undefined> {
  const entries: TreeEntry[] = [];
  const dirs = [''];
  while (dirs.length) {
    const rel = dirs.shift() as string;
    for (const d of await readdir(join(root, rel), { withFileTypes: true })) {
      if (entries.length >= max) return undefined;
      const path = rel ? `${rel}/${d.name}` : d.name;
      const st = await lstat(join(root, path));
      if (st.mode & 0o7000) return undefined;
      if (st.isDirectory()) {
        entries.push({ path, kind: 'dir', mode: st.mode & 0o777 });
        dirs.push(path);
      } else if (st.isFile()) entries.push({ path, kind: 'file', mode: st.mode & 0o777, size: st.size });
      else if (st.isSymbolicLink())
        entries.push({ path, kind: 'link', mode: 0, target: await readlink(join(root, path)) });
      else return undefined;
    }
  }
  // Breadth first: every directory is listed before anything inside it.
  return entries;
}

/**
 * Makes `dest` (an existing, empty directory) a copy of the listed tree at `root`: links copied verbatim (a
 * relative link must not become a path into the cache), never followed, and nothing overwritten (COPYFILE_EXCL).
 * With `owner`, every entry and `dest` itself are then the owner's (lchown, before the job exists, so nothing of the
 * job's can race it), as the hand-over walk would leave them. `dest` ends 0700 either way.
 */
export async function copyTree(
  root: string,
  entries: readonly TreeEntry[],
  dest: string,
  owner: FileOwner | undefined,
): Promise<void> {
  const call = isSmall(entries) ? SYNC_CALLS : ASYNC_CALLS;
  for (const e of entries) {
    const to = join(dest, e.path);
    if (e.kind === 'dir') {
      await call.mkdir(to);
      // Not from mkdir's mode, which the umask narrows.
      await call.chmod(to, e.mode);
    } else if (e.kind === 'file') await call.copyFile(join(root, e.path), to);
    else await call.symlink(e.target as string, to);
    if (owner) await call.lchown(to, owner.uid, owner.gid);
  }
  if (owner) await call.lchown(dest, owner.uid, owner.gid);
  await call.chmod(dest, 0o700);
}

/** The file-system calls copyTree makes; a file is never copied over an existing one (COPYFILE_EXCL). */
interface TreeCalls {
  mkdir(path: string): unknown;
  chmod(path: string, mode: number): unknown;
  copyFile(from: string, to: string): unknown;
  symlink(target: string, path: string): unknown;
  lchown(path: string, uid: number, gid: number): unknown;
}

const ASYNC_CALLS: TreeCalls = {
  mkdir: (path) => mkdir(path),
  chmod,
  copyFile: (from, to) => copyFile(from, to, constants.COPYFILE_EXCL),
  symlink: (target, path) => symlink(target, path),
  lchown,
};

/**
 * The same calls made synchronously, for a small tree (a few small files, as most code archives of quick jobs): each
 * fs/promises call was a thread-pool round trip costing about three times the CPU of the call itself (issue 20), and
 * a copy of this size holds the loop for well under a millisecond.
 */
const SYNC_CALLS: TreeCalls = {
  mkdir: (path) => mkdirSync(path),
  chmod: chmodSync,
  copyFile: (from, to) => copyFileSync(from, to, constants.COPYFILE_EXCL),
  symlink: (target, path) => symlinkSync(target, path),
  lchown: lchownSync,
};

/** A tree copied with synchronous calls: at most this many entries, no file larger than this. */
const SMALL_TREE_ENTRIES = 32;
const SMALL_FILE_BYTES = 256 * 1024;

const isSmall = (entries: readonly TreeEntry[]): boolean =>
  entries.length <= SMALL_TREE_ENTRIES &&
  entries.every((e) => e.kind !== 'file' || (e.size !== undefined && e.size <= SMALL_FILE_BYTES));
