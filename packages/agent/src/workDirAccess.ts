import { chmod, lchown, lstat, readdir, realpath, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ConfigInvalidError } from '@liftoff/core';

/** The owner a job's files are handed to: its own uid and gid. */
export interface FileOwner {
  uid: number;
  gid: number;
}

/**
 * Hands a fetched source (cloned or unpacked by the agent) over to the job's user: every entry, links included
 * (lchown never follows them), loses setuid/setgid bits, and the top directory becomes 0700 so that no other job
 * user can look in. Runs before the job starts, so nothing of the job's can race it.
 */
export async function handOver(dir: string, identity: FileOwner): Promise<void> {
  const walk = async (path: string): Promise<void> => {
    const st = await lstat(path);
    await lchown(path, identity.uid, identity.gid);
    if (st.isSymbolicLink()) return;
    if (st.mode & 0o6000) await chmod(path, st.mode & 0o1777);
    if (st.isDirectory()) for (const e of await readdir(path)) await walk(join(path, e));
  };
  await walk(dir);
  await chmod(dir, 0o700);
}

/**
 * Job users must reach their work dirs (every parent searchable by others) and nobody but the agent may swap a
 * parent for a link to somewhere else (no parent writable by others unless sticky, each owned by root or the agent).
 * The work root itself is made 0711 by the agent: jobs enter their own dir but cannot list the others.
 */
export async function assertWorkRootReachable(workRoot: string, agentUid: number): Promise<void> {
  let dir = dirname(await realpath(workRoot));
  const problems: string[] = [];
  for (;;) {
    const st = await stat(dir);
    if (!(st.mode & 0o001)) {
      problems.push(
        `job users cannot enter ${dir} (mode ${(st.mode & 0o7777).toString(8).padStart(4, '0')}), so they cannot reach their work dirs under ${workRoot}. Give the agent a --data-dir whose parent directories others may enter (e.g. /var/lib/liftoff), or run "chmod o+x ${dir}" if nothing secret is listed there`,
      );
    }
    if (st.mode & 0o002 && !(st.mode & 0o1000)) {
      problems.push(
        `${dir} is writable by everyone: a job could replace the path to another job's work dir. Use a data dir under a directory only root can write`,
      );
    }
    if (st.uid !== 0 && st.uid !== agentUid) {
      problems.push(
        `${dir} belongs to uid ${st.uid}, who could swap the work dirs under it. Use a data dir whose parents belong to root or the agent`,
      );
    }
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  if (problems.length) throw new ConfigInvalidError('the agent data dir', problems);
}
