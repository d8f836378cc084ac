import { closeSync, fsync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/**
 * What a local-process job leaves in its run's state dir (`<data-dir>/runs/<run id>/`, 0700, owned by the agent's
 * user). The agent's supervisor (supervisor.ts, one per data dir) writes them, the agent reads them, also after a
 * restart. The job never gets
 * a descriptor of any of them: its stdout and stderr are pipes to the supervisor, so it can neither reopen, truncate
 * nor rewrite its output file, and cannot create or replace a file in the dir. Node built-ins only: the supervisor
 * imports this module and must start fast.
 */
export const SUPERVISOR_FILES = {
  /** The job's stdout and stderr, interleaved as they arrived, appended by the supervisor. */
  output: 'output.log',
  /** `ProcessRecord`, written once the job has started. */
  process: 'process.json',
  /** `ExitStatus`, written (temp file + rename) after the job and its process group are gone. */
  status: 'status.json',
  /** Written by the agent when it cancels the run, so that an agent restarted mid-cancel reports `stopped`. */
  cancel: 'cancel',
} as const;

export const supervisorPath = (dir: string, file: keyof typeof SUPERVISOR_FILES): string =>
  join(dir, SUPERVISOR_FILES[file]);

/** A process told apart from a later one with the same pid by its start time (in clock ticks since boot). */
export interface ProcessId {
  pid: number;
  start: string;
}

export interface ProcessRecord {
  /** The supervisor that started the job and holds its pipes (one per data dir, shared by the agent's jobs). */
  supervisor: ProcessId;
  /** The job's leader; its pid is also the job's process group. */
  job: ProcessId;
}

export interface ExitStatus {
  /** The leader's exit code, null when a signal ended it. */
  code: number | null;
  signal: string | null;
  /** The job could not be started (spawn failed); code and signal are then null. */
  error?: string;
  /** Writing the output file failed (a full disk): output from then on was read and dropped. */
  outputError?: string;
  /**
   * The job ran in a cgroup of its own (jobCgroups.ts), and before this status was written every process in it was
   * killed and the cgroup removed: nothing of the job is left, so its uid needs no kill(-1).
   */
  contained?: true;
}

/** What the supervisor gets to start a job: everything needed, as the agent's runner decided it. */
export interface SupervisorRequest {
  program: string;
  args: string[];
  cwd: string;
  env: Record<string, string>;
  uid?: number;
  gid?: number;
  /**
   * The uid is this run's alone (a dynamic one): every process holding it belongs to the run, so kill(-1) made as it
   * may end what the job left behind. Never true of a uid runs share (a fixed `run-as` user).
   */
  uidOfItsOwn?: boolean;
  /** The run's state dir. */
  dir: string;
}

/**
 * The start time of a process (field 22 of /proc/<pid>/stat) and whether it has exited (a zombie, only its parent's
 * wait() missing), or null when there is no such process.
 */
export function processStat(pid: number): { start: string; exited: boolean } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const start = fields[19];
    return start === undefined ? null : { start, exited: fields[0] === 'Z' || fields[0] === 'X' };
  } catch {
    return null;
  }
}

/**
 * True while the process that `p` names still runs: same pid, same start time (pids get reused), not a zombie (an
 * orphaned supervisor whose reaper is slow must not pass for a live one).
 */
export const isAlive = (p: ProcessId): boolean => {
  const now = processStat(p.pid);
  return now !== null && !now.exited && now.start === p.start;
};

/**
 * Writes `data` to `path` so that a reader sees the old file or the whole new one, never a part (temp file, rename).
 * `durable`: also after a crash of the host (fsync of the file, and of the directory for the rename). The fsyncs are
 * asynchronous: the supervisor serves every job of the agent, and a slow disk must not hold up the others. The rest
 * (open, a write of a few hundred bytes, close, rename) are page-cache calls made synchronously: as fs/promises calls
 * each was a thread-pool round trip costing about three times the CPU of the call itself, for every job (issue 20).
 */
export async function writeFileAtomic(path: string, data: string, durable: boolean): Promise<void> {
  const tmp = `${path}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeFileSync(fd, data);
    if (durable) await fsyncOf(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  if (!durable) return;
  const dirFd = openSync(dirname(path), 'r');
  try {
    await fsyncOf(dirFd);
  } finally {
    closeSync(dirFd);
  }
}

/** fsync(2) of `fd`, off the loop. */
export const fsyncOf = (fd: number): Promise<void> =>
  new Promise((resolve, reject) => fsync(fd, (err) => (err ? reject(err) : resolve())));

const isProcessId = (v: unknown): v is ProcessId =>
  typeof v === 'object' &&
  v !== null &&
  Number.isSafeInteger((v as ProcessId).pid) &&
  (v as ProcessId).pid > 1 &&
  typeof (v as ProcessId).start === 'string';

/**
 * The supervisor's own dir, `<data-dir>/supervisor/` (0700, the agent's user): its socket and its log. Derived from
 * a run's state dir, `<data-dir>/runs/<run id>` (runState.ts), so that runners need no more than a job's context.
 */
export const supervisorHome = (stateDir: string): string => join(dirname(dirname(stateDir)), 'supervisor');

/** Named "v1" so that an agent upgraded while an older supervisor still runs jobs starts its own beside it. */
export const SUPERVISOR_SOCKET = 'v1.sock';
export const SUPERVISOR_LOG = 'supervisor.log';

/** Checks a start request field by field: the supervisor serves many jobs, and one malformed request must not end it. */
/**
 * What the supervisor gets to end every process of a run's own uid (jobUsers.ts killAllAs): that uid and gid. Never
 * 0 nor the supervisor's own uid (kill(-1) made as either would signal every process of the host, or the agent's).
 */
export interface KillAllRequest {
  uid: number;
  gid: number;
}

export function isKillAllRequest(v: unknown, ownUid: number): v is KillAllRequest {
  if (typeof v !== 'object' || v === null) return false;
  const { uid, gid } = v as Record<string, unknown>;
  const id = (x: unknown): x is number => Number.isSafeInteger(x) && (x as number) > 0;
  return id(uid) && id(gid) && uid !== ownUid;
}

export function isSupervisorRequest(v: unknown): v is SupervisorRequest {
  if (typeof v !== 'object' || v === null) return false;
  const r = v as Record<string, unknown>;
  const str = (x: unknown): x is string => typeof x === 'string' && !x.includes('\0');
  const id = (x: unknown) => x === undefined || (Number.isSafeInteger(x) && (x as number) >= 0);
  return (
    str(r.program) &&
    r.program !== '' &&
    Array.isArray(r.args) &&
    r.args.every(str) &&
    str(r.cwd) &&
    str(r.dir) &&
    r.dir.startsWith('/') &&
    typeof r.env === 'object' &&
    r.env !== null &&
    Object.values(r.env).every(str) &&
    id(r.uid) &&
    id(r.gid) &&
    (r.uidOfItsOwn === undefined || typeof r.uidOfItsOwn === 'boolean') &&
    (r.uid === undefined) === (r.gid === undefined)
  );
}

/** The process record, or undefined when there is none (the job never started) or it is not one of ours. */
export function readProcessRecord(dir: string): ProcessRecord | undefined {
  try {
    const v = JSON.parse(readFileSync(supervisorPath(dir, 'process'), 'utf8')) as Partial<ProcessRecord>;
    return isProcessId(v.supervisor) && isProcessId(v.job) ? { supervisor: v.supervisor, job: v.job } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The record of agents from before the supervisor (`{pid, start}` of the job alone): such a job had the dead agent's
 * pipes as its stdout, so it can only be stopped.
 */
export function readUnsupervisedRecord(dir: string): ProcessId | undefined {
  try {
    const v = JSON.parse(readFileSync(supervisorPath(dir, 'process'), 'utf8')) as unknown;
    return isProcessId(v) ? { pid: v.pid, start: v.start } : undefined;
  } catch {
    return undefined;
  }
}

export function readExitStatus(dir: string): ExitStatus | undefined {
  let v: Partial<ExitStatus>;
  try {
    v = JSON.parse(readFileSync(supervisorPath(dir, 'status'), 'utf8')) as Partial<ExitStatus>;
  } catch {
    return undefined;
  }
  return {
    code: Number.isSafeInteger(v.code) ? (v.code as number) : null,
    signal: typeof v.signal === 'string' ? v.signal : null,
    ...(typeof v.error === 'string' ? { error: v.error } : {}),
    ...(typeof v.outputError === 'string' ? { outputError: v.outputError } : {}),
    ...(v.contained === true ? { contained: true as const } : {}),
  };
}

/**
 * The argv that makes kill(-1, SIGKILL) once started as a run's own uid (jobUsers.ts killAllAs): procps' kill, as
 * node cannot switch users for one call. `--` keeps `-1` a pid rather than a signal.
 */
export const killAllCommand: readonly string[] = ['kill', '-9', '--', '-1'];

/** Signals a whole process group; a group already gone is no error. */
export function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // Already gone.
  }
}

/** How often a job whose leader has exited is looked at for an empty process group (whenGroupEmpty). */
const GROUP_CHECK_MS = 200;

/**
 * Calls `then` once no process is left in process group `pgid` (signal 0 to the group finds none), looking every
 * GROUP_CHECK_MS; the returned function stops looking. A job's group is usually gone within the first look's wait:
 * the caller stops it when the job's pipes close.
 */
export function whenGroupEmpty(pgid: number, then: () => void): () => void {
  let timer: NodeJS.Timeout | undefined;
  const look = () => {
    try {
      process.kill(-pgid, 0);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ESRCH') return then();
    }
    timer = setTimeout(look, GROUP_CHECK_MS);
  };
  timer = setTimeout(look, GROUP_CHECK_MS);
  return () => clearTimeout(timer);
}
