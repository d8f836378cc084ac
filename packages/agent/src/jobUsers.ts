import { execFile, spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { ConfigInvalidError, type RunAsConfig } from '@liftoff/core';
import { killAllCommand } from './runners/supervisorFiles.js';

const run = promisify(execFile);

/** The user and group one job runs as. */
export interface JobIdentity {
  uid: number;
  gid: number;
  /** USER/LOGNAME of the job: the passwd name, or `job-<uid>` for a dynamic uid. */
  name: string;
  /** A uid of this run alone: every process still holding it when the run ends is the run's and is killed. */
  dynamic: boolean;
}

/** Default `dynamic` range: inside 1879048192–2147483646, which systemd leaves unassigned (not subuid, not users). */
export const DEFAULT_DYNAMIC_RANGE = { first: 1_900_000_000, count: 65_536 } as const;

/** What an agent needs to run jobs as other users: switch ids, hand files over, signal and remove what they own. */
const NEEDED_CAPS: ReadonlyArray<[number, string]> = [
  [0, 'CAP_CHOWN'],
  [1, 'CAP_DAC_OVERRIDE'],
  [3, 'CAP_FOWNER'],
  [5, 'CAP_KILL'],
  [6, 'CAP_SETGID'],
  [7, 'CAP_SETUID'],
];

export interface UserSwitching {
  /** The agent's own uid. */
  uid: number;
  /** Capabilities per-job users need that this process lacks (empty: it can switch users). */
  missing: string[];
}

/** Reads the agent's effective capabilities (root has them all unless a container or systemd took some away). */
export function detectUserSwitching(): UserSwitching {
  const uid = process.getuid?.() ?? 0;
  let eff = 0n;
  try {
    const line = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    eff = BigInt(`0x${line?.[1] ?? '0'}`);
  } catch {
    // No /proc: treat as no capabilities; the agent then needs run-as: agent.
  }
  return { uid, missing: NEEDED_CAPS.filter(([bit]) => !((eff >> BigInt(bit)) & 1n)).map(([, name]) => name) };
}

/**
 * Who local-process jobs run as, per the agent config's `run-as`. Without the key an agent that can switch users
 * gives every run a dynamic uid; one that cannot must be told `run-as: agent` (`liftoff up` does that for an
 * ordinary user), because its jobs could then read all its files and secrets.
 */
export class JobUsers {
  private readonly inUse = new Set<number>();
  private readonly byRun = new Map<string, JobIdentity>();
  /** Dynamic uids released since the /proc pass the last pick used began, with when (release, acquire). */
  private readonly releasedAt = new Map<number, number>();

  private constructor(
    readonly mode: 'agent' | 'fixed' | 'dynamic',
    private readonly fixed: JobIdentity | undefined,
    private readonly range: { first: number; count: number },
    /** The line the agent prints at start. */
    readonly summary: string,
  ) {}

  static async resolve(config: RunAsConfig | undefined, switching: UserSwitching): Promise<JobUsers> {
    const where = 'the agent config key "run-as"';
    if (config === 'agent') {
      return new JobUsers(
        'agent',
        undefined,
        DEFAULT_DYNAMIC_RANGE,
        `WARNING: run-as: agent: local-process jobs run as this agent's own user (uid ${switching.uid}) and can read every file and secret it can (its environment through /proc, its credentials, ~/.docker/config.json, other jobs' work dirs). Run the agent as root to give each job a user of its own.`,
      );
    }
    if (switching.missing.length) {
      const what = config === undefined ? 'Local-process jobs' : `${where} asks to run jobs as another user, but jobs`;
      throw new ConfigInvalidError(where, [
        `${what} would run as this agent's own user (uid ${switching.uid}), which cannot switch users (missing ${switching.missing.join(', ')}), and could read all its files and secrets. Run the agent as root so that each job gets a user of its own, or set "run-as: agent" in the agent config to accept that jobs run as uid ${switching.uid}.`,
      ]);
    }
    if (config === undefined || config === 'dynamic' || 'dynamic' in config) {
      const range = config === undefined || config === 'dynamic' ? DEFAULT_DYNAMIC_RANGE : config.dynamic;
      await assertRangeFree(range, switching.uid);
      const last = range.first + range.count - 1;
      return new JobUsers(
        'dynamic',
        undefined,
        range,
        `local-process jobs run as a uid of their own (${range.first}–${last})`,
      );
    }
    const identity = await resolveFixed(config);
    if (identity.uid === 0 || identity.uid === switching.uid) {
      throw new ConfigInvalidError(where, [
        `user ${String(config.user)} is uid ${identity.uid}, ${identity.uid === 0 ? 'root' : "the agent's own user"}: jobs would keep the agent's powers. Name an unprivileged user, or use "dynamic".`,
      ]);
    }
    if (identity.gid === 0) {
      throw new ConfigInvalidError(where, ['group 0 (root) would give jobs root-owned files: name another group']);
    }
    return new JobUsers(
      'fixed',
      identity,
      DEFAULT_DYNAMIC_RANGE,
      `local-process jobs run as ${identity.name} (uid ${identity.uid}, gid ${identity.gid}); they share it, so they can read each other's files (use "dynamic" to separate them)`,
    );
  }

  /** The identity of a new run; undefined with `run-as: agent`. */
  async acquire(runId: string): Promise<JobIdentity | undefined> {
    if (this.mode === 'agent') return undefined;
    if (this.fixed) return this.fixed;
    const pass = await uidsWithProcesses();
    const busy = pass.uids;
    for (const [uid, at] of this.releasedAt) {
      if (at >= pass.at) continue;
      this.releasedAt.delete(uid);
      // Alive after its run's kill(-1): only a process holding the uid through a setuid file gets here.
      if (busy.has(uid) && !this.inUse.has(uid)) void killUserProcesses(uid).catch(() => undefined);
    }
    const free = (uid: number) => !this.inUse.has(uid) && !busy.has(uid) && !this.releasedAt.has(uid);
    // Random picks first: two agents misconfigured with the same range then rarely pick the same uid at once.
    let uid: number | undefined;
    for (let i = 0; i < 64 && uid === undefined; i++) {
      const candidate = this.range.first + Math.floor(Math.random() * this.range.count);
      if (free(candidate)) uid = candidate;
    }
    for (let c = this.range.first; uid === undefined && c < this.range.first + this.range.count; c++) {
      if (free(c)) uid = c;
    }
    if (uid === undefined)
      throw new ConfigInvalidError('the agent config key "run-as"', [
        'every uid of the dynamic range is in use; widen it (count)',
      ]);
    this.inUse.add(uid);
    const identity: JobIdentity = { uid, gid: uid, name: `job-${uid}`, dynamic: true };
    this.byRun.set(runId, identity);
    return identity;
  }

  /**
   * A run re-adopted after an agent restart keeps the identity it was given (recorded in its state dir): its uid is
   * not handed out again, and `release` ends it like any other.
   */
  adopt(runId: string, identity: JobIdentity): void {
    if (!identity.dynamic || this.mode !== 'dynamic') return;
    this.inUse.add(identity.uid);
    this.byRun.set(runId, identity);
  }

  /**
   * Ends every process of the run's uid and gives the uid back. `killer` (the local-process runner) says the job's
   * cgroup already ended them all (runners/jobCgroups.ts), or has the job supervisor make one kill(-1) as the uid
   * itself; without it, or when it cannot, the agent makes that kill (killAllAs). Not a /proc pass per run: those
   * passes were the agent's largest cost on trivial jobs. What kill(-1)
   * cannot reach (a process holding the uid only as its effective one, through a setuid file of the job's) is
   * guarded at the next pick: a released uid is picked again only once a /proc pass that began after its release
   * shows it free (acquire), and such a pass kills what it finds of it.
   */
  async release(runId: string, killer?: (identity: JobIdentity) => Promise<boolean>): Promise<void> {
    const identity = this.byRun.get(runId);
    if (!identity) return;
    this.byRun.delete(runId);
    const killed = (await killer?.(identity).catch(() => false)) || (await killAllAs(identity));
    if (!killed) await killUserProcesses(identity.uid);
    this.releasedAt.set(identity.uid, Date.now());
    this.inUse.delete(identity.uid);
  }
}

async function resolveFixed(config: { user: string | number; group?: string | number }): Promise<JobIdentity> {
  const where = 'the agent config key "run-as"';
  const passwd = await getent('passwd', String(config.user));
  let uid: number;
  let gid: number | undefined;
  let name: string;
  if (passwd) {
    uid = Number(passwd[2]);
    gid = Number(passwd[3]);
    name = passwd[0] ?? String(uid);
  } else if (typeof config.user === 'number') {
    uid = config.user;
    name = `job-${uid}`;
  } else {
    throw new ConfigInvalidError(where, [
      `user "${config.user}" does not exist on this host: create it, or give a numeric uid`,
    ]);
  }
  if (config.group !== undefined) {
    const group = await getent('group', String(config.group));
    if (group) gid = Number(group[2]);
    else if (typeof config.group === 'number') gid = config.group;
    else
      throw new ConfigInvalidError(where, [
        `group "${config.group}" does not exist on this host: create it, or give a numeric gid`,
      ]);
  }
  return { uid, gid: gid ?? uid, name, dynamic: false };
}

/**
 * `getent` asks NSS (files, LDAP, sssd ...), which node has no API for; it runs with an argv, never a shell. Returns
 * the entry's fields, or undefined when there is none.
 */
async function getent(db: 'passwd' | 'group', key: string): Promise<string[] | undefined> {
  try {
    const { stdout } = await run('getent', [db, '--', key], { timeout: 10_000 });
    const line = stdout.split('\n')[0];
    return line ? line.split(':') : undefined;
  } catch {
    return undefined;
  }
}

/** A dynamic range must not hold a real user (who would then own a job's files) nor the agent. */
async function assertRangeFree(range: { first: number; count: number }, agentUid: number): Promise<void> {
  const inRange = (uid: number) => uid >= range.first && uid < range.first + range.count;
  const clashes: string[] = [];
  if (inRange(agentUid)) clashes.push(`the agent's own uid ${agentUid}`);
  const passwd = await readFile('/etc/passwd', 'utf8').catch(() => '');
  for (const line of passwd.split('\n')) {
    const [name, , uid] = line.split(':');
    if (name && uid !== undefined && inRange(Number(uid))) clashes.push(`user ${name} (uid ${uid})`);
  }
  if (clashes.length) {
    throw new ConfigInvalidError('the agent config key "run-as"', [
      `the dynamic uid range ${range.first}–${range.first + range.count - 1} holds ${clashes.join(', ')}: jobs would act as them. Pick a range no user has.`,
    ]);
  }
}

/** How long a pass's uids stand for the host's when picking a uid (acquire). */
const BUSY_UIDS_TTL_MS = 1_000;
let busyUids: { at: number; uids: Promise<Set<number>> } | undefined;

/**
 * uids (real, effective or saved) of every process on the host, from a pass at most a second old, and when that pass
 * began. This agent's own
 * runs' uids are never picked anyway (JobUsers.inUse), and a released one has no process left (release kills until
 * none is); the pass only guards against processes this agent does not know of (another agent misconfigured with an
 * overlapping range, leftovers of an earlier one), for which a second-old view serves as well. At many jobs a
 * second, one pass per acquisition was the larger half of the agent's remaining work on trivial jobs.
 */
async function uidsWithProcesses(): Promise<{ at: number; uids: Set<number> }> {
  const now = Date.now();
  if (!busyUids || now - busyUids.at >= BUSY_UIDS_TTL_MS || now < busyUids.at) {
    const uids = nextPass().then((ps) => new Set(ps.flatMap((p) => p.uids)));
    busyUids = { at: now, uids };
    uids.catch(() => (busyUids = undefined));
  }
  const { at, uids } = busyUids;
  return { at, uids: await uids };
}

/**
 * A pass over /proc that starts after this call: the one starting now if none runs, else the one after the pass in
 * flight, shared by every caller that asked meanwhile (jobs ending together share it). Every caller sees processes
 * as they were after it asked, which is what killing a run's leftovers needs.
 */
let passInFlight: Promise<unknown> | undefined;
let nextQueued: Promise<Array<{ pid: number; uids: number[] }>> | undefined;
function nextPass(): Promise<Array<{ pid: number; uids: number[] }>> {
  if (!passInFlight) {
    const pass = processUids();
    passInFlight = pass.finally(() => (passInFlight = undefined));
    return pass;
  }
  nextQueued ??= passInFlight.then(() => {
    nextQueued = undefined;
    return nextPass();
  });
  return nextQueued;
}

/**
 * Read synchronously into one reused buffer, on purpose: a status file is a kernel-made page of ~1.5 KB whose Uid line
 * is in its first few hundred bytes, and a pass reads every process's. fs/promises' readFile costs an fstat (which
 * says 0 bytes for /proc files, so it then reads in 64 KiB buffers), a thread-pool hop and a promise per file: profiled
 * with 100 trivial jobs (bench/throughput.mjs) those passes were a third of the agent's CPU. Synchronous, a pass over
 * a few hundred processes blocks the event loop for about a millisecond.
 */
const statusBuffer = Buffer.alloc(4096);

function readStatus(pid: string): string {
  let fd: number;
  try {
    fd = openSync(`/proc/${pid}/status`, 'r');
  } catch {
    return ''; // gone since readdir
  }
  try {
    const n = readSync(fd, statusBuffer, 0, statusBuffer.length, 0);
    return statusBuffer.toString('latin1', 0, n);
  } catch {
    return '';
  } finally {
    closeSync(fd);
  }
}

async function processUids(): Promise<Array<{ pid: number; uids: number[] }>> {
  const out: Array<{ pid: number; uids: number[] }> = [];
  const entries = await readdir('/proc').catch(() => [] as string[]);
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    const m = /^Uid:\s+(\d+)\s+(\d+)\s+(\d+)/m.exec(readStatus(e));
    if (m) out.push({ pid: Number(e), uids: [Number(m[1]), Number(m[2]), Number(m[3])] });
  }
  return out;
}

/**
 * SIGKILLs, in one kill(-1) made as `identity` itself, every process with its uid as the real or saved one: a
 * process may signal exactly those, and kill(-1) signals all it may but itself. The kernel walks the process list
 * under the lock that fork takes to add a child, so no child appears behind the walk, and a process with SIGKILL
 * pending forks no more: one call reaches them all. procps' kill makes the call (node cannot switch users for one
 * call); it is spawned with an argv, never a shell, with the uid and gid and no supplementary groups (libuv drops
 * them). Its exit status does not say whether anything was found, so none is read. Resolves false when the program
 * could not run (no procps): the caller then falls back to /proc passes.
 */
function killAllAs(identity: JobIdentity): Promise<boolean> {
  return new Promise((resolve) => {
    const [program, ...args] = killAllCommand;
    const child = spawn(program as string, args, { uid: identity.uid, gid: identity.gid, stdio: 'ignore' });
    child.once('error', () => resolve(false));
    child.once('exit', () => resolve(true));
  });
}

/**
 * SIGKILLs every process running as `uid`, until none is left (a forking job could otherwise outrun one pass). Only
 * for uids that belong to one run: a job that left its process group (setsid, a daemon) still holds its uid.
 */
export async function killUserProcesses(uid: number): Promise<void> {
  for (let pass = 0; pass < 50; pass++) {
    const left = (await nextPass()).filter((p) => p.uids.includes(uid));
    if (!left.length) return;
    for (const p of left) {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        // Gone already.
      }
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}
