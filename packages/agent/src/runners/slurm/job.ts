import { writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { AdoptContext, RunHandle, RunOutcome } from '../types.js';
import type { Accounting } from './accounting.js';
import { envPath, exitFile } from './batchScript.js';
import { LogFollower } from './logs.js';
import type { SlurmPoller, Tick } from './poller.js';
import {
  arrayTasks,
  exitCodeOf,
  outcomeOf,
  rangeHas,
  readExitFile,
  readRow,
  type QueueRow,
  type TaskReading,
} from './state.js';
import type { Owner, Transport } from './transport.js';

/** What the agent records about a submitted job in the run's agent-owned state dir (the job cannot write there). */
export interface JobRecord {
  jobId: string;
  runDir: string;
  /** The `--array` spec, for an array job. */
  array?: string;
  owner?: Owner;
}

export const RECORD_FILE = 'slurm.json';
const CANCEL_FILE = 'slurm-cancel';

type Ended = TaskReading & { kind: 'ended' };

/**
 * One Slurm job (or job array) followed through the runner's shared poller until it ended and its output was
 * drained. Its state comes from squeue; once Slurm forgot the job (MinJobAge after its end), from its exit-code file.
 */
export class SlurmJob implements RunHandle {
  private cancelled: boolean;
  private running = false;
  private everRan = false;
  private requeues = 0;
  private warning: string | null = null;
  private failures = 0;
  private stopWatch: (() => void) | undefined;
  private finishing = false;
  private readonly logs: LogFollower;
  private readonly tasks: number[] | undefined;
  private resolve!: (o: RunOutcome) => void;
  private readonly outcome = new Promise<RunOutcome>((r) => (this.resolve = r));
  /** Ticks are handled one at a time (log reads and exit-file reads are async). */
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly rec: JobRecord,
    private readonly stateDir: string,
    private readonly transport: Transport,
    private readonly poller: SlurmPoller,
    private readonly cb: Pick<AdoptContext, 'onOutput' | 'onNote' | 'onRunning' | 'onStarting' | 'onWarning'>,
    private readonly logger: Logger,
    private readonly killWait: () => Promise<string>,
    private readonly accounting: Accounting,
  ) {
    this.cancelled = existsSync(join(stateDir, CANCEL_FILE));
    this.logs = new LogFollower(transport, rec.runDir, rec.owner, cb.onOutput, (m) =>
      this.logger.warn({ job: rec.jobId, problem: m }, 'slurm output not read'),
    );
    this.tasks = rec.array ? arrayTasks(rec.array) : undefined;
    if (this.tasks) for (const t of this.tasks) this.logs.add(`${rec.jobId}_${t}`, t);
    else this.logs.add(rec.jobId);
    this.stopWatch = poller.watch(rec.jobId, (t) => {
      this.chain = this.chain
        .then(() => this.onTick(t))
        .catch((err: unknown) => this.logger.error({ err }, 'slurm tick'));
    });
  }

  wait(): Promise<RunOutcome> {
    return this.outcome;
  }

  /**
   * `scancel <id>`: Slurm sends SIGTERM to the batch step and SIGKILL after the cluster's KillWait, a grace of its
   * own (not `scancel --signal`, which ended jobs FAILED/JobLaunchFailure). A pending job just leaves the queue.
   */
  async cancel(graceMs: number): Promise<void> {
    if (!this.cancelled) {
      this.cancelled = true;
      // Recorded first: an agent that dies while cancelling reports the run `stopped` after its restart.
      await writeFile(join(this.stateDir, CANCEL_FILE), '', { mode: 0o600 }).catch(() => undefined);
      const kw = await this.killWait().catch(() => 'KillWait');
      this.cb.onNote(
        `cancelling slurm job ${this.rec.jobId} with scancel: Slurm sends SIGTERM, then SIGKILL after the cluster's ${kw} (the agent's ${Math.round(graceMs / 1000)} s grace does not apply)`,
      );
      const r = await this.transport
        .run(['scancel', this.rec.jobId])
        .catch((e: Error) => ({ code: null, stderr: e.message, stdout: '' }));
      if (r.code !== 0) this.cb.onNote(`scancel ${this.rec.jobId} failed: ${r.stderr.trim()}`);
      this.poller.poke();
    }
    await this.outcome;
  }

  /** The agent goes away without ending the run: the job keeps running in Slurm. */
  detach(): void {
    this.stopWatch?.();
  }

  private setWarning(w: string | null): void {
    if (w === this.warning) return;
    this.warning = w;
    if (w) this.cb.onNote(`warning: ${w}`);
    this.cb.onWarning(w);
  }

  private async readExit(key: string): Promise<Ended | undefined> {
    const b = await this.transport
      .readFrom(exitFile(this.rec.runDir, key), 0, 64, this.rec.owner)
      .catch(() => undefined);
    return readExitFile(b?.toString('utf8'));
  }

  /**
   * One task's reading: its own squeue line, a pending range holding it, or (forgotten) sacct's record when the
   * cluster has accounting, else its exit-code file.
   */
  private async taskReading(
    rows: QueueRow[],
    task: number | undefined,
    acct: () => Promise<Map<string, Ended>>,
  ): Promise<TaskReading | undefined> {
    const key = task === undefined ? this.rec.jobId : `${this.rec.jobId}_${task}`;
    const own = rows.find((r) => (task === undefined ? r.task === undefined : r.task === String(task)));
    if (own) return readRow(own);
    if (task !== undefined) {
      const range = rows.find((r) => r.task !== undefined && rangeHas(r.task, task));
      if (range) return readRow(range);
    }
    return (await acct()).get(key) ?? this.readExit(key);
  }

  private async onTick(t: Tick): Promise<void> {
    if (this.finishing) return;
    if ('error' in t) {
      if (++this.failures === 3) this.setWarning(`cannot read the Slurm job's state: ${t.error.message}`);
      return;
    }
    this.failures = 0;
    const keys = this.tasks ?? [undefined];
    // At most one sacct call per tick, and only when squeue forgot something.
    let acct: Promise<Map<string, Ended>> | undefined;
    const lookup = () => (acct ??= this.accounting.ended(this.rec.jobId));
    const readings: Array<TaskReading | undefined> = [];
    for (const k of keys) readings.push(await this.taskReading(t.rows, k, lookup));
    const ended = readings.filter((r): r is Ended => r?.kind === 'ended');
    const unknown = readings.filter((r) => r === undefined).length;
    const active = readings.length - ended.length - unknown;
    if (!active) {
      // Everything ended, or Slurm forgot some tasks that left no exit-code file (killed before the trap ran).
      const all = keys.map((task, i) => ({
        ...(task === undefined ? {} : { task }),
        r:
          readings[i]?.kind === 'ended'
            ? (readings[i] as Ended)
            : ({
                kind: 'ended',
                state: 'UNKNOWN',
                reason: 'Slurm forgot the job and it left no exit-code file',
                exitCode: null,
              } as Ended),
      }));
      return this.finish(all);
    }
    if (readings.some((r) => r?.kind === 'running')) {
      const w = readings.find((r) => r?.kind === 'running' && r.warning);
      this.everRan = true;
      if (!this.running) {
        this.running = true;
        this.cb.onRunning();
      }
      this.setWarning(w?.kind === 'running' ? w.warning : null);
    } else {
      const p = readings.find((r) => r?.kind === 'pending');
      if (p?.kind === 'pending') {
        if (this.everRan && this.tasks === undefined && this.running) {
          // Slurm requeued the same job id (preemption, node failure, scontrol requeue): no new item, no preempted.
          this.requeues++;
          this.running = false;
          this.cb.onStarting?.();
          this.cb.onNote(
            `requeued by Slurm (restart ${this.requeues}): job ${this.rec.jobId} waits in the queue again`,
          );
        }
        const reason = p.reason && p.reason !== 'None' ? p.reason : 'waiting';
        this.setWarning(`${p.requeued || this.requeues ? 'requeued by Slurm; ' : ''}pending in Slurm: ${reason}`);
      }
    }
    await this.logs.poll();
  }

  private async finish(tasks: Array<{ task?: number; r: Ended }>): Promise<void> {
    this.finishing = true;
    this.stopWatch?.();
    // squeue has no exit code: scontrol has it while Slurm still knows the job, else the exit-code file.
    for (const t of tasks) {
      if (t.r.exitCode !== null || t.r.state === 'COMPLETED') continue;
      const id = t.task === undefined ? this.rec.jobId : `${this.rec.jobId}_${t.task}`;
      const r = await this.transport.run(['scontrol', '-o', 'show', 'job', id]).catch(() => undefined);
      const code = r?.code === 0 ? exitCodeOf(r.stdout) : null;
      t.r = { ...t.r, exitCode: code ?? (await this.readExit(id))?.exitCode ?? null };
    }
    await this.logs.drain();
    // The env file holds the run's secrets and is needed no more (a requeue would source it again, but the job
    // has ended): it does not stay on the shared filesystem.
    await this.transport
      .removeFile(envPath(this.rec.runDir))
      .catch((err: unknown) => this.logger.warn({ err, job: this.rec.jobId }, 'could not remove the env file'));
    if (this.warning) this.setWarning(null);
    const outcome = outcomeOf(tasks, this.cancelled);
    // The exit-code file of a job Liftoff cancelled holds 143: the run was stopped, not failed.
    const viaFile = tasks.some((t) => t.r.reason === 'from its exit-code file');
    if (viaFile) this.cb.onNote('Slurm had already forgotten the job: its end comes from its exit-code file');
    this.resolve(
      this.cancelled && outcome.state !== 'finished' ? { state: 'stopped', exitCode: outcome.exitCode } : outcome,
    );
  }
}
