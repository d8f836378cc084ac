import type { RunOutcome } from '../types.js';

/** One line of the batched squeue: `%A|%F|%K|%T|%r`. */
export interface QueueRow {
  /** The Slurm job id of this line (an array task's own id). */
  jobId: string;
  /** The array's job id (the id sbatch printed), or the job id for a plain job. */
  arrayJobId: string;
  /** The array task id, a pending range such as `1-2` or `[3-5%1]`, or undefined for a plain job. */
  task: string | undefined;
  state: string;
  reason: string;
}

/** Parses squeue's `-h -o '%A|%F|%K|%T|%r'` output; the reason is last, so a `|` in it stays in it. */
export function parseQueue(stdout: string): QueueRow[] {
  const rows: QueueRow[] = [];
  for (const line of stdout.split('\n')) {
    const [jobId, arrayJobId, task, state, ...reason] = line.trim().split('|');
    if (!jobId || !arrayJobId || task === undefined || !state) continue;
    rows.push({ jobId, arrayJobId, task: task === 'N/A' ? undefined : task, state, reason: reason.join('|') });
  }
  return rows;
}

/** An `--array` spec (`0-9%2`, `1,3,5`, `0-10:2`) → the task ids; Slurm refused anything else at submit. */
export function arrayTasks(spec: string): number[] {
  const tasks: number[] = [];
  for (const part of spec.replace(/%\d+$/, '').split(',')) {
    const m = /^(\d+)(?:-(\d+)(?::(\d+))?)?$/.exec(part.trim());
    if (!m) continue;
    const first = Number(m[1]);
    const last = m[2] === undefined ? first : Number(m[2]);
    const step = Math.max(1, Number(m[3] ?? 1));
    for (let t = first; t <= last && tasks.length < 100_000; t += step) tasks.push(t);
  }
  return tasks;
}

/** Whether a pending-range row (`1-2`, `[3-5%1]`, `4,6`) covers a task. */
export function rangeHas(range: string, task: number): boolean {
  return arrayTasks(range.replace(/^\[|\]$/g, '')).includes(task);
}

const PENDING = new Set(['PENDING', 'CONFIGURING', 'RESV_DEL_HOLD', 'REQUEUE_HOLD', 'REQUEUED', 'REQUEUE_FED']);
const REQUEUE = new Set(['REQUEUED', 'REQUEUE_HOLD', 'REQUEUE_FED']);
const RUNNING = new Set(['RUNNING', 'COMPLETING', 'SIGNALING', 'STAGE_OUT', 'RESIZING']);
const HELD = new Set(['SUSPENDED', 'STOPPED']);
const FAILED = new Set(['FAILED', 'OUT_OF_MEMORY', 'NODE_FAIL', 'BOOT_FAIL', 'DEADLINE', 'TIMEOUT', 'SPECIAL_EXIT']);

/** What one Slurm job (or array task) is doing now, from its squeue line or its exit-code file. */
export type TaskReading =
  | { kind: 'pending'; reason: string; requeued: boolean }
  | { kind: 'running'; warning: string | null }
  | { kind: 'ended'; state: string; reason: string; exitCode: number | null };

export function readRow(row: QueueRow): TaskReading {
  if (PENDING.has(row.state)) return { kind: 'pending', reason: row.reason, requeued: REQUEUE.has(row.state) };
  if (RUNNING.has(row.state)) return { kind: 'running', warning: null };
  if (HELD.has(row.state)) return { kind: 'running', warning: `the Slurm job is ${row.state.toLowerCase()}` };
  return { kind: 'ended', state: row.state, reason: row.reason, exitCode: row.state === 'COMPLETED' ? 0 : null };
}

/** `ExitCode=3:0` of `scontrol -o show job` → 3 (the second number is the signal, 128+n when set). */
export function exitCodeOf(scontrolLine: string): number | null {
  const m = /\bExitCode=(\d+):(\d+)/.exec(scontrolLine);
  if (!m) return null;
  return Number(m[2]) ? 128 + Number(m[2]) : Number(m[1]);
}

/** The message of a Slurm job that did not complete. */
function why(state: string, reason: string, exitCode: number | null, task?: number): string {
  const who = task === undefined ? 'The Slurm job' : `Array task ${task}`;
  const code = exitCode === null ? '' : ` with exit code ${exitCode}`;
  const r = reason && reason !== 'None' ? ` (reason: ${reason})` : '';
  const what: Record<string, string> = {
    OUT_OF_MEMORY: 'ran out of memory (OUT_OF_MEMORY)',
    NODE_FAIL: 'ended because its node failed (NODE_FAIL)',
    BOOT_FAIL: 'could not boot its node (BOOT_FAIL)',
    DEADLINE: 'hit its deadline (DEADLINE)',
    TIMEOUT: 'hit its time limit (TIMEOUT)',
  };
  return `${who} ${what[state] ?? `ended ${state}`}${code}${r}.`;
}

/**
 * Slurm's end states → the run's outcome (docs/slurm.md has the table). CANCELLED is `stopped` only after Liftoff's
 * own cancel; otherwise someone ran scancel outside Liftoff and the run failed. PREEMPTED (no requeue) is
 * `preempted`, so that the queue's preemption retries apply. A requeue never gets here: the job is pending again.
 */
export function outcomeOf(
  tasks: ReadonlyArray<{ task?: number; r: TaskReading & { kind: 'ended' } }>,
  cancelled: boolean,
): RunOutcome {
  const bad = tasks.filter((t) => t.r.state !== 'COMPLETED');
  if (!bad.length) return { state: 'finished', exitCode: 0 };
  const first = bad[0]!;
  const code = first.r.exitCode;
  if (bad.some((t) => t.r.state === 'CANCELLED') && cancelled) return { state: 'stopped', exitCode: code };
  if (first.r.state === 'PREEMPTED') {
    return {
      state: 'preempted',
      exitCode: code,
      message: `${why('PREEMPTED', first.r.reason, code, first.task)} Slurm preempted it without requeueing.`,
    };
  }
  if (first.r.state === 'CANCELLED') {
    return {
      state: 'failed',
      exitCode: code,
      message: `${first.task === undefined ? 'The Slurm job' : `Array task ${first.task}`} was cancelled outside Liftoff (scancel by a user or an admin).`,
    };
  }
  const others =
    bad.length > 1
      ? ` ${bad.length - 1} more task(s) did not complete either (${bad
          .slice(1)
          .map((t) => t.task)
          .join(', ')}).`
      : '';
  return {
    state: 'failed',
    exitCode: code,
    message: `${why(first.r.state, first.r.reason, code, first.task)}${others}`,
  };
}

/** The exit-code file's content → an end reading (the job ran to its end, or was killed with the trap running). */
export function readExitFile(text: string | undefined): (TaskReading & { kind: 'ended' }) | undefined {
  const m = /^(\d+)\s*$/.exec(text ?? '');
  if (!m) return undefined;
  const code = Number(m[1]);
  return {
    kind: 'ended',
    state: code === 0 ? 'COMPLETED' : 'FAILED',
    reason: 'from its exit-code file',
    exitCode: code,
  };
}

export { FAILED as FAILED_STATES };
