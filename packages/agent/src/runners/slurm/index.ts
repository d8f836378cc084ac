import { mkdir, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigInvalidError, RunnerError, SlurmError, type SlurmAgentConfig } from '@liftoff/core';
import { JobUsers, detectUserSwitching } from '../../jobUsers.js';
import { assertWorkRootReachable } from '../../workDirAccess.js';
import type { AdoptContext, JobContext, RunHandle, RunOutcome, Runner, RunnerDeps } from '../types.js';
import { Accounting } from './accounting.js';
import { batchScript, outputPattern } from './batchScript.js';
import { findUnrecordedJob, readRecord, writeRecord } from './adopt.js';
import { SlurmJob, type JobRecord } from './job.js';
import { SlurmPoller } from './poller.js';
import { envFile } from './quoting.js';
import { sbatchOptions } from './sbatchArgs.js';
import type { FetchedOutputs } from './remoteOutputs.js';
import { LocalTransport, SshTransport, type Owner, type Transport } from './transport.js';

const NO_CONFIG =
  'slurm queues need a `slurm:` section in the agent config: `{transport: local|ssh, workdir-root: <a path every node sees>}` (docs/slurm.md).';

export const jobNameOf = (runId: string) => `liftoff-${runId}`;
const COMMENT_RUN = 'liftoff-run-id:';
const COMMENT_AGENT = 'liftoff-agent:';

/**
 * Runs jobs on Slurm (docs/slurm.md): the code and a 0600 env file in `<workdir-root>/<run id>/`, a generated batch
 * script on sbatch's stdin (`--export=NONE`: nothing of the agent's environment), one batched squeue per tick for all
 * runs, output followed by byte offset, scancel to stop. Jobs are named after their run and carry run and agent in
 * their comment, so a restarted agent finds them again and its sweep cancels the ones no run holds.
 */
export class SlurmRunner implements Runner {
  readonly type = 'slurm' as const;
  readonly reportsRunning = true;
  private readonly transport: Transport | undefined;
  private readonly poller: SlurmPoller | undefined;
  private readonly accounting: Accounting | undefined;
  private owner: Owner | undefined;
  private ownerChecked = false;
  private killWaitText: Promise<string> | undefined;
  private readonly jobs = new Set<SlurmJob>();

  constructor(private readonly deps: RunnerDeps) {
    const cfg = deps.slurm;
    if (cfg) {
      this.transport =
        cfg.transport === 'ssh' ? new SshTransport(cfg, deps.processEnv) : new LocalTransport(deps.processEnv);
      this.accounting = new Accounting(this.transport);
      this.poller = new SlurmPoller(this.transport, (cfg['poll-seconds'] ?? 10) * 1000, deps.logger);
    }
  }

  private cfg(): { cfg: SlurmAgentConfig; transport: Transport; poller: SlurmPoller } {
    if (!this.deps.slurm || !this.transport || !this.poller)
      throw new ConfigInvalidError('the agent config', [NO_CONFIG]);
    return { cfg: this.deps.slurm, transport: this.transport, poller: this.poller };
  }

  /** Slurm must answer (sinfo), and the job user must be one Slurm can run jobs as: never root. */
  async check(): Promise<void> {
    const { cfg, transport } = this.cfg();
    await this.jobOwner();
    const r = await transport.run(['sinfo', '-h', '-o', '%P %a %D %T']);
    if (r.code !== 0) {
      throw new SlurmError(
        `Slurm does not answer on ${transport.describe}: sinfo ${r.code === null ? 'could not run' : `exited ${r.code}`}: ${[r.stderr.trim(), r.stdout.trim()].filter(Boolean).join(' / ') || 'no output'}. Check that the Slurm client is installed there, that slurmctld runs and munge works (\`sinfo\` as the agent's user).`,
      );
    }
    if (cfg.transport === 'local') {
      await mkdir(cfg['workdir-root'], { recursive: true, mode: 0o711 });
      if (this.owner) {
        await chmod(cfg['workdir-root'], 0o711);
        await assertWorkRootReachable(join(cfg['workdir-root'], '.'), process.getuid?.() ?? 0);
      }
    } else {
      const who = await transport.run(['id', '-u']);
      if (who.stdout.trim() === '0') {
        throw new ConfigInvalidError('the agent config key "slurm.user"', [
          `ssh logs in to ${transport.describe} as root, so jobs would be submitted as root. Log in as an ordinary user.`,
        ]);
      }
      await transport.run(['mkdir', '-p', '--', cfg['workdir-root']]);
    }
  }

  /**
   * Who jobs run as. Over ssh: the login user. Locally as root: the `run-as: {user}` of the agent config, submitted
   * with `--uid/--gid` (a dynamic uid cannot work: sbatch needs a user every node knows, and refuses a bare number
   * without a passwd entry: "Invalid --uid specification"). Locally as an ordinary user: that user, which needs
   * `run-as: agent` like a local-process queue (the jobs can read the agent's files).
   */
  private async jobOwner(): Promise<Owner | undefined> {
    if (this.ownerChecked) return this.owner;
    const cfg = this.cfg().cfg;
    if (cfg.transport === 'ssh') {
      this.ownerChecked = true;
      return undefined;
    }
    const where = 'the agent config key "run-as"';
    const switching = detectUserSwitching();
    const runAs = this.deps.runAs;
    if (switching.uid === 0 || !switching.missing.length) {
      if (runAs === undefined || runAs === 'agent' || runAs === 'dynamic' || 'dynamic' in runAs) {
        throw new ConfigInvalidError(where, [
          `slurm queues on an agent running as root need "run-as: {user: <name>}": jobs are submitted with sbatch --uid/--gid as that user, never as root, and Slurm needs a user every node knows (a dynamic uid is refused by sbatch).`,
        ]);
      }
      const users = await JobUsers.resolve(runAs, switching);
      const id = await users.acquire('slurm');
      if (!id) throw new ConfigInvalidError(where, ['no job user']);
      this.owner = { uid: id.uid, gid: id.gid };
    } else if (runAs !== 'agent') {
      throw new ConfigInvalidError(where, [
        `slurm jobs of this agent would run as its own user (uid ${switching.uid}) and could read its files and secrets. Run the agent as root with "run-as: {user: <name>}", or set "run-as: agent" to accept that.`,
      ]);
    }
    this.ownerChecked = true;
    return this.owner;
  }

  async start(job: JobContext): Promise<RunHandle> {
    const { cfg, transport, poller } = this.cfg();
    if (job.spec.source.type === 'image') {
      throw new RunnerError(
        'slurm queues run code jobs on the cluster (process mode); image jobs are not supported yet.',
      );
    }
    const opts = sbatchOptions(job.spec.resource_args.slurm);
    const argv = [...job.spec.entry_point, ...job.spec.args];
    if (!argv.length) throw new RunnerError('The job has no entry point.');
    const owner = await this.jobOwner();
    const runDir = runDirOf(cfg, job.runId);
    const srcDir = `${runDir}/src`;
    // The run's environment as jobEnv.ts computed it; HOME is its code dir on the cluster, not the agent's.
    // LIFTOFF_OUTPUT_DIR (docs/outputs.md): on the shared filesystem, collected by the agent after the run (read in
    // place with the local transport, fetched as a tar stream over ssh: fetchOutputs).
    const env = envFile({ ...job.env, HOME: srcDir, LIFTOFF_OUTPUT_DIR: `${runDir}/outputs` });
    const script = batchScript({ runId: job.runId, runDir, srcDir, argv, srun: opts.srun });
    await transport.prepareRunDir(runDir, job.workDir, env, owner);
    const pending = { runDir, ...(opts.array ? { array: opts.array } : {}), ...(owner ? { owner } : {}) };
    // Before sbatch: an agent that dies before it records the id leaves this, and its successor looks the job up.
    await writeRecord(job.stateDir, pending);
    const submit = [
      'sbatch',
      '--parsable',
      `--job-name=${jobNameOf(job.runId)}`,
      `--comment=${COMMENT_RUN}${job.runId} ${COMMENT_AGENT}${this.deps.agentId}`,
      `--output=${outputPattern(runDir, opts.array)}`,
      '--open-mode=append',
      '--export=NONE',
      `--chdir=${runDir}`,
      ...(owner ? [`--uid=${owner.uid}`, `--gid=${owner.gid}`] : []),
      ...opts.argv,
    ];
    const r = await transport.run(submit, script);
    const jobId = /^(\d+)(?:;\S+)?\s*$/.exec(r.stdout)?.[1];
    if (r.code !== 0 || !jobId) {
      await transport.removeRunDir(runDir).catch(() => undefined);
      throw new SlurmError(`sbatch refused the job: ${r.stderr.trim() || r.stdout.trim() || `exit ${String(r.code)}`}`);
    }
    const rec: JobRecord = { ...pending, jobId };
    await writeRecord(job.stateDir, rec);
    // Before any output: a restarted agent counts the job's output in the server's log from this note on.
    job.onNote(`slurm job ${jobId} submitted on ${transport.describe} (${runDir})`);
    return this.track(rec, job.stateDir, job, poller, transport);
  }

  async reconcile(run: AdoptContext): Promise<RunHandle | RunOutcome> {
    const { cfg, transport, poller } = this.cfg();
    const stored = await readRecord(run.stateDir);
    if (!stored) {
      // The record is written before sbatch runs: without one, nothing was submitted.
      return {
        state: 'failed',
        exitCode: null,
        message: 'The agent stopped before the job was submitted to Slurm. Launch it again.',
      };
    }
    if (stored.jobId) {
      run.onNote(
        `re-adopted slurm job ${stored.jobId} after the agent restarted; its output is read again from the start`,
      );
      return this.track({ ...stored, jobId: stored.jobId }, run.stateDir, run, poller, transport);
    }
    // The agent died between sbatch and recording the job id.
    const found = await findUnrecordedJob(transport, {
      name: jobNameOf(run.runId),
      comment: [`${COMMENT_RUN}${run.runId}`, `${COMMENT_AGENT}${this.deps.agentId}`],
      owner: stored.owner,
      ssh: cfg.transport === 'ssh',
      runDir: stored.runDir,
    });
    if (!found) {
      return {
        state: 'failed',
        exitCode: null,
        message: `The agent stopped while submitting the job, and Slurm on ${transport.describe} has no job of this run (none named ${jobNameOf(run.runId)}, no exit-code file): it was not submitted. Launch it again.`,
      };
    }
    const rec: JobRecord = { ...stored, jobId: found.jobId };
    await writeRecord(run.stateDir, rec);
    run.onNote(
      `re-adopted slurm job ${found.jobId}, ${found.how}: the agent stopped before it recorded the job id; its output is read again from the start`,
    );
    return this.track(rec, run.stateDir, run, poller, transport);
  }

  /** Jobs of this agent (by comment) that no active run holds: cancelled. */
  async sweep(active: ReadonlySet<string>): Promise<void> {
    if (!this.transport) return;
    const r = await this.transport.run(['squeue', '-h', '-o', '%F|%j|%k']);
    if (r.code !== 0) return;
    for (const line of r.stdout.split('\n')) {
      const [id, name, ...comment] = line.trim().split('|');
      const text = comment.join('|');
      const runId = new RegExp(`${COMMENT_RUN}(\\S+)`).exec(text)?.[1];
      if (!id || !name?.startsWith('liftoff-') || !runId || active.has(runId)) continue;
      if (!text.includes(`${COMMENT_AGENT}${this.deps.agentId}`)) continue;
      this.deps.logger.info({ job: id, runId }, 'cancelling the Slurm job of an ended run');
      await this.transport.run(['scancel', id]);
    }
  }

  /** Over ssh: the run's output dir fetched as a tar stream; with the local transport the agent reads it in place. */
  async fetchOutputs(runId: string, into: string, capBytes: number): Promise<FetchedOutputs | undefined> {
    const { cfg, transport } = this.cfg();
    return transport.fetchOutputs?.(`${runDirOf(cfg, runId)}/outputs`, into, capBytes);
  }

  async close(): Promise<void> {
    for (const j of this.jobs) j.detach();
    this.jobs.clear();
    this.poller?.close();
  }

  private track(
    rec: JobRecord,
    stateDir: string,
    cb: AdoptContext | JobContext,
    poller: SlurmPoller,
    transport: Transport,
  ) {
    const job = new SlurmJob(
      rec,
      stateDir,
      transport,
      poller,
      cb,
      this.deps.logger,
      () => this.killWait(transport),
      this.accounting ?? new Accounting(transport),
    );
    this.jobs.add(job);
    void job.wait().finally(() => this.jobs.delete(job));
    return job;
  }

  /** `KillWait = 2 sec` from `scontrol show config`, for the cancel note. */
  private killWait(transport: Transport): Promise<string> {
    this.killWaitText ??= transport.run(['scontrol', 'show', 'config']).then((r) => {
      const m = /^KillWait\s*=\s*(.+)$/m.exec(r.stdout);
      return m ? `KillWait (${m[1]!.trim()})` : 'KillWait';
    });
    return this.killWaitText;
  }
}

/** `<workdir-root>/<run id>`: a run's dir on the cluster's shared filesystem. */
const runDirOf = (cfg: SlurmAgentConfig, runId: string): string =>
  `${cfg['workdir-root'].replace(/\/+$/, '')}/${runId}`;
