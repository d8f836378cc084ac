import { spawn } from 'node:child_process';
import { chownSync } from 'node:fs';
import { chmod, chown, lstat, mkdir, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';

/** Where a container job sees its output dir (beside HOME, containerLayout.ts). */
export const CONTAINER_OUTPUT_DIR = '/mnt/liftoff/outputs';
/** The default cap of a run's output dir (agent config `outputs-max-mib`). */
export const DEFAULT_OUTPUT_CAP_BYTES = 1024 * 1024 * 1024;

/** `<data dir>/job-outputs/<run id>`: on the agent's host, apart from the work dir and the agent's run state. */
export const outputDirOf = (dataDir: string, runId: string): string => join(dataDir, 'job-outputs', runId);

export interface OutputDirSpec {
  path: string;
  capBytes: number;
  /**
   * A root agent's slot an earlier run used, which OutputDirs emptied moments ago (outputDirs.ts): a mounted tmpfs
   * with this cap, root's and 0700, under the parent prepared for its first run. Only its owner is set.
   */
  reused?: boolean;
}

/**
 * Makes a run's output dir, owned by the job's user. A root agent mounts a tmpfs there with `size=` the cap (and
 * nosuid, nodev, noexec): the kernel refuses writes past the cap with ENOSPC, so a job cannot fill the agent's disk
 * (or memory) first, and nothing the job leaves there can be a device or a setuid program. A tmpfs needs no
 * loop device, file-system tools or quota support (a loop-mounted image would need all three, and XFS project
 * quotas a particular file system), and its pages are only taken as the job writes. The cost: outputs live in
 * memory (and swap) until uploaded, which the cap bounds. Containers get the same directory bind-mounted (the one
 * host path they see): a tmpfs mounted by Docker itself would be gone by the time the container has exited, and its
 * checkpoint with it. An agent that is not root cannot mount: the dir is then a plain directory, not capped while
 * the job writes, and the cap is applied when it is collected (collect.ts). Returns whether it is capped.
 */
export async function prepareOutputDir(
  dir: OutputDirSpec,
  owner: { uid: number; gid: number } | undefined,
  note: (line: string) => void,
  opts: { rootAgent?: boolean; container?: boolean } = {},
): Promise<boolean> {
  const root = opts.rootAgent ?? process.getuid?.() === 0;
  if (root && dir.reused) {
    // Every other call here was made for the slot's first run and still holds (see OutputDirSpec.reused).
    // One synchronous call (for every run: the async one cost about three times its CPU, issue 20).
    if (owner) chownSync(dir.path, owner.uid, owner.gid);
    return true;
  }
  // A root agent's job users pass through the parent to their own dir but cannot list the others' (as with work
  // dirs). A non-root agent has no job users of its own (its jobs run as itself, or in containers that get the dir
  // bind-mounted by the Docker daemon, which needs no path through the parent): the parent is then closed to
  // everyone else, so the 0777 a container's dir may need below is never reachable by other users of the host.
  const parentMode = root ? 0o711 : 0o700;
  await mkdir(dirname(dir.path), { recursive: true, mode: parentMode });
  await chmod(dirname(dir.path), parentMode);
  await mkdir(dir.path, { recursive: true, mode: 0o700 });
  const mib = Math.max(1, Math.ceil(dir.capBytes / 1024 / 1024));
  if (root) {
    const uid = owner?.uid ?? 0;
    const gid = owner?.gid ?? 0;
    // A slot an earlier run used and OutputDirs emptied (outputDirs.ts): still mounted, with the same cap.
    const [own, parent] = await Promise.all([stat(dir.path), stat(dirname(dir.path))]);
    if (own.dev !== parent.dev) {
      await chown(dir.path, uid, gid);
      await chmod(dir.path, 0o700);
      return true;
    }
    const options = `size=${mib}m,uid=${uid},gid=${gid},mode=0700,nosuid,nodev,noexec`;
    const failed = await run('mount', ['-t', 'tmpfs', '-o', options, 'liftoff-outputs', dir.path]);
    if (!failed) return true;
    note(
      `LIFTOFF_OUTPUT_DIR is not size-capped while the job runs (mount of a tmpfs failed: ${failed}); its cap of ${mib} MiB applies at upload`,
    );
    if (owner) await chown(dir.path, owner.uid, owner.gid);
    return false;
  }
  // Not root: the job runs as the agent's user (run-as: agent), or, in a container, as some uid the agent cannot
  // chown to; the dir is then open to that uid, behind the 0700 parent.
  if (opts.container) await chmod(dir.path, 0o777);
  note(
    `LIFTOFF_OUTPUT_DIR is not size-capped while the job runs (the agent is not root); its cap of ${mib} MiB applies at upload`,
  );
  return false;
}

/** Unmounts (when mounted) and removes a run's output dir. Safe to call for a dir that never existed. */
export async function removeOutputDir(path: string): Promise<void> {
  const [own, parent] = await Promise.all([
    lstat(path).catch(() => undefined),
    stat(dirname(path)).catch(() => undefined),
  ]);
  if (!own) return;
  // Only a mount point is unmounted: a spawned umount per run whose dir was never mounted cost as much as the rest.
  if (process.getuid?.() === 0 && own.isDirectory() && own.dev !== parent?.dev) await run('umount', [path]);
  // rm never follows the symlinks a job may have left there.
  await rm(path, { recursive: true, force: true }).catch(() => undefined);
}

/** Runs a program (never through a shell); resolves to undefined on success, else its error text. */
function run(program: string, args: string[]): Promise<string | undefined> {
  return new Promise((resolve) => {
    const child = spawn(program, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-500)));
    child.on('error', (e) => resolve(e.message));
    child.on('close', (code) => resolve(code === 0 ? undefined : err.trim() || `${program} exited with ${code}`));
  });
}
