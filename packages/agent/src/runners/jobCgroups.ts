import { existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A cgroup (v2) of its own for each job the supervisor starts under another uid, so that when the job ends every
 * process it left behind goes with one write to the cgroup's `cgroup.kill`, and an empty cgroup (its rmdir succeeds)
 * proves that nothing of the job is left. A job cannot leave its cgroup: moving a process needs write access to
 * `cgroup.procs` of a common ancestor, which belongs to root; a daemon that left the job's process group, a setuid
 * program it ran, a process that changed uid: all stay in it and are born into it (a fork inherits the cgroup).
 *
 * Why here, beside the kill(-1) made as the run's uid (jobUsers.ts killAllAs) it makes unnecessary: that kill is a
 * second spawn per job, which halves the rate at which trivial jobs can run (bench/RESULTS.md, the two-spawn floor),
 * and it cannot reach a process that took another uid. A cgroup costs a mkdir, two writes and an rmdir.
 *
 * How a job gets in without a helper process (node cannot spawn into a cgroup, CLONE_INTO_CGROUP is not exposed):
 * the supervisor moves itself into the job's new cgroup, spawns (libuv forks before spawn() returns, so the job is
 * born there), and moves itself back, all synchronously, so no other code of the supervisor runs meanwhile. Node
 * built-ins only and synchronous: the supervisor imports this and must start fast; cgroupfs calls do not block on a
 * disk.
 *
 * Used only where it works: a writable cgroup v2 hierarchy holding the supervisor's cgroup, `cgroup.kill` (Linux
 * 5.14), and a probe that moved the supervisor into a child and back at start-up. Anywhere else (no cgroup v2, a
 * container with a read-only cgroupfs, an agent that is not root) jobs run as before and the agent ends a run's uid
 * with kill(-1).
 */

/** Names of the job cgroups this module makes, below the supervisor's own: `liftoff-job-<supervisor pid>-<n>`. */
const PREFIX = 'liftoff-job-';
/** How long to wait for killed processes to leave an ended job's cgroup (one in uninterruptible sleep can linger). */
const EMPTY_WAIT_MS = 5_000;

export type CgroupDetection = { cgroups: JobCgroups; why?: undefined } | { cgroups?: undefined; why: string };

export class JobCgroups {
  private seq = 0;
  /** Set when the supervisor could not move back out of a job's cgroup: no job gets one from then on. */
  private broken = false;

  private constructor(
    /** The supervisor's own cgroup dir, where the job cgroups are made and where it returns after each spawn. */
    readonly home: string,
    private readonly pid: number,
  ) {}

  /**
   * Finds the supervisor's cgroup and proves it can be used: a child made there, the supervisor moved into it and
   * back, and removed. Also removes the empty job cgroups of supervisors that are gone (killed before they could).
   */
  static detect(pid: number): CgroupDetection {
    const home = ownCgroupDir();
    if (typeof home !== 'string') return { why: home.why };
    const cgroups = new JobCgroups(home, pid);
    const probe = join(home, `${PREFIX}${pid}-probe`);
    try {
      mkdirSync(probe);
    } catch (err) {
      return { why: `cannot create a cgroup in ${home}: ${(err as Error).message}` };
    }
    try {
      if (!existsSync(join(probe, 'cgroup.kill')))
        return { why: 'the kernel has no cgroup.kill (Linux 5.14 or later)' };
      try {
        cgroups.moveSelf(probe);
      } catch (err) {
        return { why: `cannot move a process into a cgroup below ${home}: ${(err as Error).message}` };
      }
      try {
        cgroups.moveSelf(home);
      } catch (err) {
        // Stays in the probe cgroup, which is then never removed nor killed.
        return { why: `cannot move back into ${home}: ${(err as Error).message}` };
      }
    } finally {
      // Fails only while the probe holds the supervisor (see above).
      tryRemove(probe);
    }
    cgroups.removeStale();
    return { cgroups };
  }

  /**
   * Runs `spawn` with the supervisor inside a new job cgroup, so that the process it forks is born there. Returns
   * that cgroup's path, or undefined when the job could not get one (it then runs in the supervisor's cgroup, and the
   * agent ends its uid by kill(-1)). A spawn that throws leaves no cgroup behind.
   */
  spawnInside<T>(spawn: () => T): { result: T; cgroup: string | undefined } {
    if (this.broken) return { result: spawn(), cgroup: undefined };
    const cgroup = join(this.home, `${PREFIX}${this.pid}-${++this.seq}`);
    try {
      mkdirSync(cgroup);
      this.moveSelf(cgroup);
    } catch {
      // A limit on descendants, a cgroup removed from outside: this job only runs without one.
      tryRemove(cgroup);
      return { result: spawn(), cgroup: undefined };
    }
    let result: T;
    try {
      result = spawn();
    } catch (err) {
      this.moveBack();
      if (!this.broken) tryRemove(cgroup);
      throw err;
    }
    this.moveBack();
    return { result, cgroup: this.broken ? undefined : cgroup };
  }

  private moveBack(): void {
    try {
      this.moveSelf(this.home);
    } catch {
      // The supervisor stays in this cgroup: it must never be killed, so it is handed out as no cgroup at all.
      this.broken = true;
    }
  }

  /**
   * Ends a job's cgroup: when processes are left, kills them all with one write to `cgroup.kill` and waits until they
   * are gone; then removes it. True once it is removed, so that nothing of the job is left on the host.
   */
  async end(cgroup: string): Promise<boolean> {
    const deadline = Date.now() + EMPTY_WAIT_MS;
    for (let attempt = 0; ; attempt++) {
      try {
        rmdirSync(cgroup);
        return true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EBUSY') return false;
      }
      try {
        // Again on every round: a process that was forking as the first kill came is reached by the next.
        writeFileSync(join(cgroup, 'cgroup.kill'), '1');
      } catch {
        return false;
      }
      if (Date.now() >= deadline) return false;
      await new Promise((r) => setTimeout(r, Math.min(2 ** attempt, 100)));
    }
  }

  private moveSelf(cgroup: string): void {
    writeFileSync(join(cgroup, 'cgroup.procs'), String(this.pid));
  }

  /** Job cgroups of supervisors no longer running: the empty ones go (rmdir refuses the others). */
  private removeStale(): void {
    let names: string[];
    try {
      names = readdirSync(this.home);
    } catch {
      return;
    }
    for (const name of names) {
      const owner = /^liftoff-job-(\d+)-/.exec(name)?.[1];
      if (owner && Number(owner) !== this.pid && !existsSync(`/proc/${owner}`)) tryRemove(join(this.home, name));
    }
  }
}

function tryRemove(dir: string): void {
  try {
    rmdirSync(dir);
  } catch {
    // Not there, or not empty.
  }
}

/** This process's own cgroup v2 dir, from /proc/self/cgroup and the cgroup2 mount that shows it. */
export function ownCgroupDir(): string | { why: string } {
  let path: string | undefined;
  let mounts: string;
  try {
    path = /^0::(\/.*)$/m.exec(readFileSync('/proc/self/cgroup', 'utf8'))?.[1];
    mounts = readFileSync('/proc/self/mountinfo', 'utf8');
  } catch (err) {
    return { why: `cannot read /proc: ${(err as Error).message}` };
  }
  if (!path) return { why: 'this process is in no cgroup v2 hierarchy' };
  for (const line of mounts.split('\n')) {
    // "<id> <parent> <major:minor> <root> <mount point> <options> [optional...] - <fs type> <source> <super options>"
    const [before, after] = line.split(' - ');
    if (!before || after?.split(' ')[0] !== 'cgroup2') continue;
    const fields = before.split(' ');
    const root = unescapeMount(fields[3] ?? '');
    const point = unescapeMount(fields[4] ?? '');
    if (root === '/') return join(point, path);
    if (path === root || path.startsWith(`${root}/`)) return join(point, path.slice(root.length));
  }
  return { why: `no cgroup v2 mount shows this process's cgroup ${path}` };
}

/** mountinfo writes space, tab, newline and backslash in paths as octal escapes. */
const unescapeMount = (s: string): string =>
  s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
