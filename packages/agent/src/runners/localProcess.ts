import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { constants } from 'node:os';
import { RunnerError } from '@liftoff/core';
import { prepareOutputDir } from '../outputs/outputDir.js';
import { OutputTail, followSupervised } from './supervised.js';
import { SupervisorClient } from './supervisorClient.js';
import {
  isAlive,
  killGroup,
  readExitStatus,
  readProcessRecord,
  readUnsupervisedRecord,
  supervisorPath,
  type ExitStatus,
  type ProcessRecord,
} from './supervisorFiles.js';
import type { AdoptContext, JobContext, RunHandle, RunOutcome, Runner, RunnerDeps } from './types.js';

/**
 * Runs the entry point and args as an argv array (never through a shell) in the job's directory, in a process group
 * of its own so that cancelling stops the job's children too. The job runs under the agent's supervisor
 * (supervisor.ts, one per data dir) that outlives the agent: its output goes to a file and its exit status to a
 * record in the run's agent-owned state dir, so an agent restarted after a crash re-attaches to a job that still
 * runs, or reports how one that ended meanwhile ended, with all its output.
 */
export class LocalProcessRunner implements Runner {
  readonly type = 'local-process' as const;

  private readonly supervisor = new SupervisorClient();

  constructor(private readonly deps: Pick<RunnerDeps, 'logger'>) {}

  async close(): Promise<void> {
    this.supervisor.close();
  }

  /**
   * Ends every process of a run's own uid (jobUsers.ts release); false when it cannot. A job that ran in a cgroup of
   * its own has nothing left once its status says so (supervisorFiles.ts ExitStatus.contained); otherwise the
   * supervisor makes kill(-1) as the uid.
   */
  killAllAs(stateDir: string, identity: { uid: number; gid: number }): Promise<boolean> {
    if (readExitStatus(stateDir)?.contained) return Promise.resolve(true);
    return this.supervisor.killAllAs(stateDir, identity);
  }

  async start(job: JobContext): Promise<RunHandle> {
    const [program, ...rest] = job.spec.entry_point;
    if (!program) throw new RunnerError('The job has no entry point.');
    if (job.outputDir) await prepareOutputDir(job.outputDir, job.user, job.onNote);
    // job.env is the whole environment (jobEnv.ts); nothing of the agent's is added here.
    const { record, ended } = await this.supervisor.start({
      program,
      args: [...rest, ...job.spec.args],
      cwd: job.workDir,
      env: job.env,
      ...(job.user ? { uid: job.user.uid, gid: job.user.gid, uidOfItsOwn: job.user.dynamic === true } : {}),
      dir: job.stateDir,
    });
    // Before any output: a restarted agent counts the job's output in the server's log from this note on.
    job.onNote(`process ${record.job.pid} started (supervisor ${record.supervisor.pid})`);
    return supervisedHandle(job.stateDir, record, job, false, ended);
  }

  /**
   * A run from before an agent restart: re-attached while its supervisor lives; reported from its records when the
   * job ended meanwhile; failed, with what output there is, when neither the supervisor nor a status is left.
   */
  async reconcile(run: AdoptContext): Promise<RunHandle | RunOutcome> {
    const dir = run.stateDir;
    const record = readProcessRecord(dir);
    const cancelled = existsSync(supervisorPath(dir, 'cancel'));
    if (readExitStatus(dir)) {
      const done =
        "the job ended while the agent was down; its output and exit status come from its supervisor's records";
      return supervisedHandle(dir, record, run, cancelled, undefined, done);
    }
    if (record && isAlive(record.supervisor)) {
      run.onNote(
        `re-attached to process ${record.job.pid} (supervisor ${record.supervisor.pid}) after the agent restarted`,
      );
      run.onRunning();
      return supervisedHandle(dir, record, run, cancelled, (await this.supervisor.reattach(dir))?.ended);
    }
    // What the file holds is all the output there will ever be.
    const tail = new OutputTail(supervisorPath(dir, 'output'), run.onOutput);
    await tail.pump();
    await tail.close();
    const stranded = record !== undefined && isAlive(record.job);
    if (stranded) killGroup(record.job.pid, 'SIGKILL');
    this.deps.logger.warn({ run: run.runId, record, stranded }, 'local-process run without supervisor or status');
    if (!record) {
      const unsupervised = readUnsupervisedRecord(dir);
      if (unsupervised) {
        const killed = isAlive(unsupervised);
        if (killed) killGroup(unsupervised.pid, 'SIGKILL');
        return {
          state: 'failed',
          exitCode: null,
          message: `The job was started by an agent version without supervision, which cannot be re-adopted${killed ? '; its leftover processes were stopped' : ''}. Launch it again.`,
        };
      }
      return {
        state: 'failed',
        exitCode: null,
        message: "The agent stopped before the job's process started, and restarted. Launch it again.",
      };
    }
    return {
      state: 'failed',
      exitCode: null,
      message: `Neither the job's supervisor nor its exit status survived until the agent restarted (the host rebooted, or the supervisor was killed)${stranded ? '; the job, still running without it, was stopped' : ''}. How the job ended is unknown: launch it again.`,
    };
  }
}

/**
 * Stops what is left of a run the server no longer counts as active (it ended, or was declared lost, while the
 * agent was down): the job's process group, and waits for its supervisor to go. True when something still ran.
 */
export async function stopLeftover(stateDir: string): Promise<boolean> {
  const record = readProcessRecord(stateDir);
  if (!record) {
    const unsupervised = readUnsupervisedRecord(stateDir);
    if (!unsupervised || !isAlive(unsupervised)) return false;
    killGroup(unsupervised.pid, 'SIGKILL');
    return true;
  }
  if (readExitStatus(stateDir)) return false;
  const running = isAlive(record.job) || isAlive(record.supervisor);
  if (!running) return false;
  killGroup(record.job.pid, 'SIGKILL');
  // The supervisor (shared by the agent's jobs, so it stays) writes the status once the job's pipes close; waited
  // for so that it is not writing into the dir as the dir is removed. A job child that escaped the group holds the
  // pipes until it is killed by uid afterwards.
  for (let i = 0; i < 50 && isAlive(record.supervisor) && !readExitStatus(stateDir); i++) {
    await new Promise((r) => setTimeout(r, 100));
  }
  return true;
}

/** A started or re-attached job: its output followed from the file, its end read from the status record. */
function supervisedHandle(
  dir: string,
  record: ProcessRecord | undefined,
  ctx: Pick<AdoptContext, 'onOutput' | 'onNote'>,
  alreadyCancelled: boolean,
  wake?: Promise<void>,
  /** A note for the log once all output is shipped. */
  closingNote?: string,
): RunHandle {
  let cancelled = alreadyCancelled;
  const ended = followSupervised(dir, record, ctx.onOutput, wake);
  ended.catch(() => undefined); // Awaited by wait() and cancel(); this only keeps it from counting as unhandled.
  const signal = (sig: NodeJS.Signals) => {
    // After the status is written the group is gone and its pid may be reused: nothing is signalled then.
    if (!record || readExitStatus(dir)) return;
    if (isAlive(record.supervisor) || isAlive(record.job)) killGroup(record.job.pid, sig);
  };
  return {
    wait: async (): Promise<RunOutcome> => {
      const status = await ended;
      // A supervisor killed from outside leaves its job without a reader for its output: it goes too.
      if (!status && record && isAlive(record.job)) killGroup(record.job.pid, 'SIGKILL');
      if (closingNote) ctx.onNote(closingNote);
      if (status?.outputError) ctx.onNote(`part of the job's output was lost: ${status.outputError}`);
      return outcomeOf(status, cancelled);
    },
    cancel: async (graceMs: number) => {
      cancelled = true;
      // Recorded first: an agent that dies while cancelling reports the run `stopped` after its restart.
      await writeFile(supervisorPath(dir, 'cancel'), '', { mode: 0o600 }).catch(() => undefined);
      signal('SIGTERM');
      const timer = setTimeout(() => signal('SIGKILL'), graceMs);
      await ended;
      clearTimeout(timer);
    },
  };
}

function outcomeOf(status: ExitStatus | undefined, cancelled: boolean): RunOutcome {
  if (!status) {
    return {
      state: 'failed',
      exitCode: null,
      message: "The job's supervisor ended without recording how the job ended (it was killed). Launch it again.",
    };
  }
  if (cancelled) return { state: 'stopped', exitCode: status.code };
  if (status.error !== undefined) {
    return { state: 'failed', exitCode: null, message: `The job could not be started: ${status.error}.` };
  }
  if (status.signal) {
    const n = (constants.signals as Record<string, number | undefined>)[status.signal] ?? 0;
    return { state: 'failed', exitCode: 128 + n, message: `The process was killed by ${status.signal}.` };
  }
  if (status.code === 0) return { state: 'finished', exitCode: 0 };
  return { state: 'failed', exitCode: status.code, message: `The process exited with code ${String(status.code)}.` };
}
