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
  if (isSmall(entries)) return copySmallTree(root, entries, dest, owner);
  for (const e of entries) {
    const to = join(dest, e.path);
    if (e.kind === 'dir') {
      await mkdir(to);
      // Not from mkdir's mode, which the umask narrows.
      await chmod(to, e.mode);
    } else if (e.kind === 'file') await copyFile(join(root, e.path), to, constants.COPYFILE_EXCL);
    else await symlink(e.target as string, to);
    if (owner) await lchown(to, owner.uid, owner.gid);
  }
  if (owner) await lchown(dest, owner.uid, owner.gid);
  await chmod(dest, 0o700);
}

/** A tree copied with synchronous calls: at most this many entries, no file larger than this. */
const SMALL_TREE_ENTRIES = 32;
const SMALL_FILE_BYTES = 256 * 1024;

const isSmall = (entries: readonly TreeEntry[]): boolean =>
  entries.length <= SMALL_TREE_ENTRIES &&
  entries.every((e) => e.kind !== 'file' || (e.size !== undefined && e.size <= SMALL_FILE_BYTES));

/**
 * copyTree for a small tree (a few small files, as most code archives of quick jobs), in synchronous calls: each
 * fs/promises call was a thread-pool round trip costing about three times the CPU of the call itself (issue 20),
 * and a copy of this size holds the loop for well under a millisecond. The same calls, in the same order.
 */
function copySmallTree(root: string, entries: readonly TreeEntry[], dest: string, owner: FileOwner | undefined): void {
  for (const e of entries) {
    const to = join(dest, e.path);
    if (e.kind === 'dir') {
      mkdirSync(to);
      chmodSync(to, e.mode);
    } else if (e.kind === 'file') copyFileSync(join(root, e.path), to, constants.COPYFILE_EXCL);
    else symlinkSync(e.target as string, to);
    if (owner) lchownSync(to, owner.uid, owner.gid);
  }
  if (owner) lchownSync(dest, owner.uid, owner.gid);
  chmodSync(dest, 0o700);
}
