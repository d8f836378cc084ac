import { opendirSync, rmdirSync, unlinkSync, type Dirent } from 'node:fs';
import { readdir, rm, rmdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';

/** A dir with at most this many entries, none a dir, is removed with synchronous calls. */
const SYNC_ENTRIES = 32;

/**
 * Removes `dir` and everything in it, never following links; a missing dir is no error, and nothing is thrown.
 * Written out rather than left to fs.rm, whose recursive walk first tries rmdir on the full dir, then lstats every
 * entry before unlinking it: for the few flat files of a run's state dir or a trivial job's work dir that was twice
 * the calls, each a thread-pool round trip (issue 20). Here: one listing (its entry types say what each is), one
 * unlink per file or link, fs.rm for any subdirectory, one rmdir. Whatever this cannot remove is left to fs.rm.
 *
 * A dir of a few plain entries (every run's state dir, most trivial jobs' work dirs) goes with synchronous calls:
 * each async one cost about three times the CPU of the call, and a few unlinks block the loop for less than that.
 * A bigger or nested tree (what a job may leave in its work dir) is removed with async calls, so the agent's loop is
 * never held by how much a job wrote.
 */
export async function removeTree(dir: string): Promise<void> {
  try {
    const few = fewPlainEntries(dir);
    if (few) {
      for (const name of few) unlinkSync(join(dir, name));
      rmdirSync(dir);
      return;
    }
    await removeEntries(dir, await readdir(dir, { withFileTypes: true }));
    await rmdir(dir);
  } catch {
    // A dir already gone, an entry that vanished or would not go: fs.rm settles it (and is a no-op when nothing is left).
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}

/** The names in `dir` when there are at most SYNC_ENTRIES and none is a dir; read no further than that. */
function fewPlainEntries(dir: string): string[] | undefined {
  const d = opendirSync(dir, { bufferSize: SYNC_ENTRIES + 1 });
  try {
    const names: string[] = [];
    for (let e = d.readSync(); e; e = d.readSync()) {
      if (e.isDirectory() || names.length === SYNC_ENTRIES) return undefined;
      names.push(e.name);
    }
    return names;
  } finally {
    d.closeSync();
  }
}

async function removeEntries(dir: string, entries: Dirent[]): Promise<void> {
  for (const e of entries) {
    const path = join(dir, e.name);
    if (e.isDirectory()) await rm(path, { recursive: true, force: true });
    else await unlink(path);
  }
}
