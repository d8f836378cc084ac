import { readdir, rm, rmdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Removes `dir` and everything in it, never following links; a missing dir is no error, and nothing is thrown.
 * Written out rather than left to fs.rm, whose recursive walk first tries rmdir on the full dir, then lstats every
 * entry before unlinking it: for the few flat files of a run's state dir or a trivial job's work dir that was twice
 * the calls, each a thread-pool round trip (issue 20). Here: one listing (its entry types say what each is), one
 * unlink per file or link, fs.rm for any subdirectory, one rmdir. Whatever this cannot remove is left to fs.rm.
 */
export async function removeTree(dir: string): Promise<void> {
  try {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, e.name);
      if (e.isDirectory()) await rm(path, { recursive: true, force: true });
      else await unlink(path);
    }
    await rmdir(dir);
  } catch {
    // A dir already gone, an entry that vanished or would not go: fs.rm settles it (and is a no-op when nothing is left).
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}
