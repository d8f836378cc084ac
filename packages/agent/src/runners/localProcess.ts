import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { RunnerError } from '@liftoff/core';
import type { JobContext, RunHandle, RunOutcome, Runner, RunnerDeps } from './types.js';

/**
 * The pid record lives in the run's agent-owned state dir (0700, never the work dir): a restarted agent signals the
 * process group it names, so a job able to write it could make the agent kill any process on the host.
 */
const PID_FILE = 'process.json';

/**
 * Runs the entry point and args as an argv array (never through a shell) in the job's directory, in a process group
 * of its own so that cancelling stops the job's children too.
 */
export class LocalProcessRunner implements Runner {
  readonly type = 'local-process' as const;

  constructor(private readonly deps: Pick<RunnerDeps, 'logger'>) {}

  async start(job: JobContext): Promise<RunHandle> {
    const [program, ...rest] = job.spec.entry_point;
    if (!program) throw new RunnerError('The job has no entry point.');
    // job.env is the whole environment (jobEnv.ts); nothing of the agent's is added here. With a user of its own,
    // libuv sets the gid, drops every supplementary group (setgroups(0, NULL)) and sets the uid before exec.
    const child = spawn(program, [...rest, ...job.spec.args], {
      cwd: job.workDir,
      env: job.env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(job.user ? { uid: job.user.uid, gid: job.user.gid } : {}),
    });
    // Listen before any await: a short job can exit (and close its pipes) before the next tick.
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once('close', (code, signal) => resolve({ code, signal })),
    );
    const spawned = new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', reject);
    });
    for (const stream of [child.stdout, child.stderr]) {
      const decoder = new StringDecoder('utf8');
      stream.on('data', (b: Buffer) => {
        const text = decoder.write(b);
        if (text) job.onOutput(text);
      });
      stream.on('end', () => {
        const text = decoder.end();
        if (text) job.onOutput(text);
      });
    }

    try {
      await spawned;
    } catch (e) {
      throw new RunnerError(`Could not start "${program}": ${(e as Error).message}. Check the entry point (-E).`, e);
    }
    const pid = child.pid as number;
    // Remembered so that an agent restarted after a crash can find and stop the orphaned process group.
    await writeFile(join(job.stateDir, PID_FILE), JSON.stringify({ pid, start: await processStartTime(pid) }), {
      mode: 0o600,
    });

    let cancelled = false;
    return {
      wait: async (): Promise<RunOutcome> => {
        const { code, signal } = await exited;
        // The leader may exit before children it left behind; they belong to the run, so they go with it.
        killGroup(pid, 'SIGKILL');
        if (cancelled) return { state: 'stopped', exitCode: code };
        if (code === 0) return { state: 'finished', exitCode: 0 };
        if (signal)
          return {
            state: 'failed',
            exitCode: 128 + signalNumber(signal),
            message: `The process was killed by ${signal}.`,
          };
        return { state: 'failed', exitCode: code, message: `The process exited with code ${String(code)}.` };
      },
      cancel: async (graceMs: number) => {
        cancelled = true;
        killGroup(pid, 'SIGTERM');
        const timer = setTimeout(() => killGroup(pid, 'SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
        killGroup(pid, 'SIGKILL');
      },
    };
  }

  /** A local process cannot be re-attached to after the agent died; stop what is left of it and say so. */
  async reconcile(run: { runId: string; stateDir: string }): Promise<RunOutcome> {
    let killed = false;
    try {
      const saved = JSON.parse(await readFile(join(run.stateDir, PID_FILE), 'utf8')) as {
        pid: number;
        start: string | null;
      };
      // Only signal the group if the pid still belongs to the process we started (pids get reused).
      if (saved.start !== null && (await processStartTime(saved.pid)) === saved.start) {
        killGroup(saved.pid, 'SIGKILL');
        killed = true;
      }
    } catch {
      // No pid record: the process never started or its state dir is gone.
    }
    this.deps.logger.warn({ run: run.runId, killed }, 'local-process run from a previous agent incarnation');
    return {
      state: 'failed',
      exitCode: null,
      message: `The agent restarted while this run was active; a local process cannot be re-adopted${killed ? ', so its leftover processes were stopped' : ''}. Launch it again.`,
    };
  }
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // Already gone.
  }
}

/** Field 22 of /proc/<pid>/stat: the start time in clock ticks, which tells a reused pid from the original. */
async function processStartTime(pid: number): Promise<string | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

const SIGNALS: Partial<Record<NodeJS.Signals, number>> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGABRT: 6,
  SIGKILL: 9,
  SIGSEGV: 11,
  SIGPIPE: 13,
  SIGTERM: 15,
};
const signalNumber = (s: NodeJS.Signals): number => SIGNALS[s] ?? 0;
