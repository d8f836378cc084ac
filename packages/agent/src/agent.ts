import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type Dockerode from 'dockerode';
import type { Logger } from 'pino';
import {
  AGENT_PROTOCOL_VERSION,
  LIFTOFF_VERSION,
  assertAgentProtocol,
  redactConfig,
  type AgentStopMode,
  type ClaimedItem,
  type Env,
  type LiftoffClient,
  type ResourceType,
  type Run,
} from '@liftoff/core';
import type { Builder } from './builders/index.js';
import type { ResolvedAgentConfig } from './config.js';
import type { RegistryCredentials } from './docker/credentials.js';
import type { AwsClientSettings, AzureClientSettings, GcpClientSettings } from './environments/types.js';
import { HeartbeatPacer, type AgentState } from './heartbeatPacer.js';
import { LogShipper } from './logShipper.js';
import { REPORT_DEADLINE_MS, isRunLost, withRetry } from './retry.js';
import { RUNNERS, type RunHandle, type Runner } from './runners/index.js';
import { LocalProcessRunner } from './runners/localProcess.js';
import { prepareRunners, runnerDeps } from './agentSetup.js';
import { executeJob, superviseStart, type PipelineContext } from './jobPipeline.js';
import { RunReporter } from './runReporter.js';
import { alreadyShippedOutput, describe, finalLine, finalReport, type Final } from './runOutcome.js';
import { SyncChannel } from './syncChannel.js';
import { JobUsers, killUserProcesses, type JobIdentity, type UserSwitching } from './jobUsers.js';
import { recordedUser, removeRunState, runStateDir, sweepRunStates } from './runState.js';
import { removeTree } from './removeTree.js';
import { ArchiveCache } from './archiveCache.js';
import { OutputDirs } from './outputs/outputDirs.js';
import {
  collectFetchedOutputs,
  collectRunOutputs,
  collectSlurmOutputs,
  outputCapBytes,
  settleJobUploadedOutputs,
} from './outputs/index.js';

export interface AgentOptions {
  client: LiftoffClient;
  config: ResolvedAgentConfig;
  identity: { id: string; name: string };
  hostname: string;
  /** Job work directories live under `<dataDir>/work/<run id>`. */
  dataDir: string;
  /**
   * The agent's own environment minus its API key: for its own git and kubeconfig helpers, and the source of the
   * names the config's `job-env` and `macro-env` list. Never handed to a job whole (jobEnv.ts).
   */
  agentEnv: Env;
  /** Whether this process can run jobs as other users (default: read from /proc/self/status). */
  userSwitching?: UserSwitching;
  logger: Logger;
  /** Human-readable progress lines (stdout for the CLI). */
  say?: (line: string) => void;
  /** The Docker engine, for container queues and image builds. */
  docker: Dockerode;
  /** Registry credentials (agent config and docker's config.json). */
  credentials: RegistryCredentials;
  /** The agent's home directory (~/.kube/config). */
  homeDir: string;
  /** Set when the config has `environment: {type: aws}`: how AWS clients are built (environments/aws). */
  aws?: AwsClientSettings;
  /** Set when the config has `environment: {type: gcp}`: the project, region and one auth client (environments/gcp). */
  gcp?: GcpClientSettings;
  /** Set when the config has `environment: {type: azure}`: the one credential chain and endpoints (environments/azure). */
  azure?: AzureClientSettings;
}

interface Job {
  itemId: string;
  queue: string;
  runId?: string;
  handle?: RunHandle;
  cancelRequested: boolean;
  /** The server declared the run lost (this agent was silent too long): it is stopped and not reported. */
  lost?: boolean;
  done?: Promise<void>;
}

/**
 * The launch agent: registers, long-polls its queues for as many items as it has free slots (round-robin across
 * queues), runs each item through fetch → runner → report, heartbeats, and on stop cancels its runs and hands back
 * anything it had not started.
 */
export class LaunchAgent {
  private readonly jobs = new Map<string, Job>();
  private readonly byRun = new Map<string, Job>();
  private readonly runners = new Map<ResourceType, Runner>();
  private queueOrder: string[];
  private stopping = false;
  /** Asked to stop with `finish`: no new work, running jobs end on their own, then stop(). */
  private draining = false;
  private cancelOnlyPoll: AbortController | undefined;
  private stopPoll = new AbortController();
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private pollTimeoutMs = 30_000;
  private builder: Builder | undefined;
  /** When a change of status or job count is told to the server (heartbeatPacer.ts). */
  private readonly pacer: HeartbeatPacer;
  /** When a poll last started or returned (each tells the server this agent is alive). */
  private lastContact = 0;
  private heartbeatInterval = 30_000;
  private loop: Promise<void> | undefined;
  /** Who local-process jobs run as; set when the agent serves a local-process queue. */
  private jobUsers: JobUsers | undefined;
  /** Acks, reports, log appends and heartbeats of all runs, batched into one sync request per tick. */
  private readonly sync: SyncChannel;
  /** Code archives this agent extracted, by id (archiveCache.ts). */
  private readonly archives: ArchiveCache;
  /** Root agents reuse the capped tmpfs of ended runs (outputs/outputDirs.ts). */
  private readonly outputDirs: OutputDirs;

  constructor(private readonly opts: AgentOptions) {
    this.archives = new ArchiveCache(join(opts.dataDir, 'archive-cache'));
    this.outputDirs = new OutputDirs(opts.dataDir);
    this.queueOrder = [...opts.config.queues];
    this.sync = new SyncChannel(opts.client, opts.identity.id, {
      onContact: () => {
        this.lastContact = Date.now();
      },
      onStopRuns: (runIds) => runIds.forEach((id) => this.stopLostRun(id)),
    });
    this.pacer = new HeartbeatPacer(
      () => ({ status: this.jobs.size ? 'RUNNING' : 'POLLING', jobs: this.jobs.size }),
      (state) => void this.sendHeartbeat(state),
    );
  }

  get id(): string {
    return this.opts.identity.id;
  }
  get runningJobs(): number {
    return this.jobs.size;
  }

  /** Registers with the server, settles runs left from a previous incarnation and starts polling. */
  async start(): Promise<void> {
    const { client, config, identity } = this.opts;
    // Redacted here already: the agent's passwords and tokens never leave its host, nor reach its own log.
    const shownConfig = redactConfig({ ...config.file, queues: config.queues, entity: config.entity });
    this.opts.logger.info({ config: shownConfig }, 'agent config');
    const reg = await client.registerAgent({
      id: identity.id,
      name: identity.name,
      entity: config.entity,
      hostname: this.opts.hostname,
      queues: config.queues,
      version: LIFTOFF_VERSION,
      max_jobs: Number.isFinite(config.maxJobs) ? config.maxJobs : -1,
      config: shownConfig,
      protocol_version: AGENT_PROTOCOL_VERSION,
    });
    try {
      // A server that cannot take this agent's syncs (or that needs a newer agent): stop now, saying which to upgrade.
      assertAgentProtocol(reg);
    } catch (err) {
      await client.agentStopped(this.id).catch(() => undefined);
      throw err;
    }
    this.pollTimeoutMs = reg.poll_timeout_ms;
    try {
      const prepared = await prepareRunners(this.opts, (line) => this.say(line));
      for (const [resource, runner] of prepared.runners) this.runners.set(resource, runner);
      this.builder = prepared.builder;
      this.jobUsers = prepared.jobUsers;
    } catch (err) {
      // Registered but unable to serve: say so now rather than show POLLING until the heartbeat times out.
      await client.agentStopped(this.id).catch(() => undefined);
      throw err;
    }
    this.pacer.told({ status: 'POLLING', jobs: 0 });
    await this.reconcile(reg.active_runs);
    const active = new Set(this.byRun.keys());
    for (const runner of this.runners.values()) {
      await runner.sweep?.(active).catch((err: unknown) => this.opts.logger.warn({ err }, 'sweeping leftovers failed'));
    }
    const held = new Set([...reg.active_runs.map((r) => r.id), ...active]);
    await sweepRunStates(this.opts.dataDir, held, (id) =>
      this.say(`stopped the leftover process of run ${id}, which is no longer active on the server`),
    ).catch((err: unknown) => this.opts.logger.warn({ err }, 'sweeping leftover run records failed'));
    await this.outputDirs
      .sweep(new Map([...held].map((id) => [id, runStateDir(this.opts.dataDir, id)])))
      .catch((err: unknown) => this.opts.logger.warn({ err }, 'sweeping leftover output dirs failed'));
    this.heartbeatInterval = reg.heartbeat_interval_ms;
    this.heartbeatTimer = setInterval(() => this.heartbeat('timer'), reg.heartbeat_interval_ms);
    this.heartbeatTimer.unref();
    this.say(
      `agent ${identity.name} (id ${identity.id}) polling ${config.queues.join(', ')} in entity ${config.entity}, max_jobs ${Number.isFinite(config.maxJobs) ? config.maxJobs : 'unlimited'}`,
    );
    this.loop = this.pollLoop();
  }

  /** Resolves when the agent has stopped (after `stop()`). */
  async wait(): Promise<void> {
    await this.loop;
  }

  /** Stops taking work, stops every run (SIGTERM, then SIGKILL after the grace period), reports KILLED. */
  async stop(): Promise<void> {
    if (this.stopping) return this.wait();
    this.stopping = true;
    this.stopPoll.abort();
    const grace = this.opts.config.stopGraceSeconds * 1000;
    for (const job of this.jobs.values()) {
      job.cancelRequested = true;
      void job.handle?.cancel(grace);
    }
    await Promise.all([...this.jobs.values()].map((j) => j.done ?? Promise.resolve()));
    await this.loop;
    await this.outputDirs.close();
    clearInterval(this.heartbeatTimer);
    this.pacer.close();
    // Queued heartbeats and reports go first: arriving after `stopped`, they would describe an agent still there.
    await this.sync.idle();
    await Promise.all([...this.runners.values()].map(async (r) => r.close?.()));
    await withRetry(() => this.opts.client.agentStopped(this.id), { deadlineMs: 10_000 }).catch((err: unknown) =>
      this.opts.logger.warn({ err }, 'could not report KILLED'),
    );
    this.say('agent stopped');
  }

  /** What the job pipeline (jobPipeline.ts) works with: this agent's options, runners, builder and job users. */
  private pipeline(): PipelineContext {
    return {
      opts: this.opts,
      agentId: this.id,
      runners: this.runners,
      builder: this.builder,
      jobUsers: this.jobUsers,
      archives: this.archives,
      outputDirs: this.outputDirs,
    };
  }

  private say(line: string): void {
    this.opts.say?.(line);
    this.opts.logger.info(line);
  }

  private freeSlots(): number {
    if (this.draining) return 0;
    const free = this.opts.config.maxJobs - this.jobs.size;
    return Math.max(0, Math.min(free, 32));
  }

  private async pollLoop(): Promise<void> {
    let backoff = 500;
    while (!this.stopping) {
      const max = this.freeSlots();
      // Only a poll that claims nothing may be aborted (to re-poll when a slot frees up): aborting a claiming poll
      // could strand items until their lease expires.
      const local = new AbortController();
      if (max === 0) this.cancelOnlyPoll = local;
      const signal = AbortSignal.any([local.signal, this.stopPoll.signal]);
      try {
        this.lastContact = Date.now();
        const res = await this.opts.client.poll(
          this.id,
          {
            queues: this.queueOrder,
            max_items: max,
            wait_ms: this.opts.config.pollIntervalMs > 0 ? 0 : this.pollTimeoutMs,
            run_ids: [...this.byRun.keys()],
          },
          signal,
        );
        this.lastContact = Date.now();
        if (this.opts.config.pollIntervalMs > 0 && !res.items.length) await this.pause(this.opts.config.pollIntervalMs);
        backoff = 500;
        for (const runId of res.cancel) this.cancelRun(runId);
        for (const runId of res.stop_runs) this.stopLostRun(runId);
        if (res.stop) void this.stopAsRequested(res.stop);
        for (const item of res.items) {
          this.queueOrder = [...this.queueOrder.filter((q) => q !== item.queue), item.queue];
          this.startJob(item);
        }
      } catch (err) {
        if (this.stopping || local.signal.aborted) continue;
        this.opts.logger.warn({ err }, 'poll failed; retrying');
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(backoff * 2, 15_000);
      } finally {
        if (this.cancelOnlyPoll === local) this.cancelOnlyPoll = undefined;
      }
    }
  }

  /** `liftoff agents stop`: `stop-runs` is a SIGTERM; `finish` lets running jobs end first. */
  private async stopAsRequested(mode: AgentStopMode): Promise<void> {
    if (mode === 'stop-runs') return this.stop();
    if (this.draining) return;
    this.draining = true;
    this.say(`stop requested: finishing ${this.jobs.size} running job(s), taking no new work`);
    await Promise.all([...this.jobs.values()].map((j) => j.done ?? Promise.resolve()));
    await this.stop();
  }

  /** Interval polling only: sleeps between polls, waking early when the agent stops. */
  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.stopPoll.signal.addEventListener('abort', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private cancelRun(runId: string): void {
    const job = this.byRun.get(runId);
    if (!job || job.cancelRequested) return;
    job.cancelRequested = true;
    this.say(`cancelling run ${runId}`);
    void job.handle?.cancel(this.opts.config.stopGraceSeconds * 1000);
  }

  /** Fencing: the server took the run away (and may run its item elsewhere), so it is stopped and never reported. */
  private stopLostRun(runId: string): void {
    const job = this.byRun.get(runId);
    if (!job || job.lost) return;
    job.lost = true;
    job.cancelRequested = true;
    this.say(`run ${runId} was declared lost by the server (this agent was silent too long): stopping it`);
    void job.handle?.cancel(this.opts.config.stopGraceSeconds * 1000);
  }

  private startJob(item: ClaimedItem): void {
    const job: Job = { itemId: item.item_id, queue: item.queue, cancelRequested: false };
    this.jobs.set(item.item_id, job);
    this.heartbeat();
    job.done = this.runJob(job, item)
      .catch((err: unknown) => this.opts.logger.error({ err, item: item.item_id }, 'job pipeline failed'))
      .finally(() => {
        this.jobs.delete(item.item_id);
        if (job.runId) this.byRun.delete(job.runId);
        this.cancelOnlyPoll?.abort();
        this.heartbeat();
      });
  }

  private async runJob(job: Job, item: ClaimedItem): Promise<void> {
    const { client, logger } = this.opts;
    const retry = <T>(fn: () => Promise<T>) => withRetry(fn, { deadlineMs: REPORT_DEADLINE_MS });
    if (this.stopping) {
      await retry(() => client.releaseItem(item.item_id, this.id)).catch(() => undefined);
      return;
    }
    let run: Run;
    try {
      run = await retry(() => this.sync.ackItem(item.item_id, this.id));
    } catch (err) {
      // Cancelled before it started, or the lease ran out: someone else owns it now.
      logger.warn({ err, item: item.item_id }, 'item could not be acknowledged; dropping it');
      return;
    }
    job.runId = run.id;
    this.byRun.set(run.id, job);
    this.say(`run ${run.id} started for item ${item.item_id} from queue ${item.queue}`);
    const shipper = new LogShipper(this.sync, this.id, run.id, logger);
    const note = (line: string) => shipper.note(line);
    const workDir = join(this.opts.dataDir, 'work', run.id);
    const stateDir = runStateDir(this.opts.dataDir, run.id);
    const reporter = new RunReporter(this.sync, this.id, run.id, logger);
    let final: Final;
    try {
      final = await executeJob(this.pipeline(), job, item, run, workDir, stateDir, shipper, note, reporter);
    } catch (err) {
      final = { state: 'failed', exitCode: null, message: describe(err), stage: 'agent' };
    }
    // The run row must not hold a secret either, should an error message quote one.
    if ('message' in final) final = { ...final, message: shipper.mask(final.message) };
    // Every process left with the run's own uid goes before the uid can be handed out again.
    await this.jobUsers
      ?.release(run.id, this.uidKiller(stateDir))
      .catch((err: unknown) => logger.warn({ err, run: run.id }, 'could not end the run user'));
    // Before the final report, so a run reported ended has its outputs listed (or a note saying why not).
    if (!job.lost) await this.collectOutputs(run.id, stateDir, note, item.spec.resource);
    await this.outputDirs.release(run.id, stateDir);
    // A terminal state must be the last word: progress reports, the job's output and uploads on their way land
    // first (prepareEnd). Then the last notes and the final report leave in the same turn, so in one sync (whose
    // log lines the server stores before its reports): one request at a run's end instead of two.
    await reporter.flush();
    await shipper.prepareEnd();
    note(finalLine(final));
    const shipped = shipper.flush();
    let refusedAsLost = false;
    if (!job.lost)
      await retry(() => this.sync.reportRun(run.id, finalReport(this.id, final))).catch((err: unknown) => {
        if (isRunLost(err)) refusedAsLost = true;
        else logger.error({ err, run: run.id }, 'could not report the final status');
      });
    await shipped;
    if (job.lost || refusedAsLost) {
      this.say(`run ${run.id} stopped after it was declared lost; not reported`);
      await removeTree(workDir);
      await removeRunState(stateDir);
      return;
    }
    this.say(`run ${run.id} ${final.state}${final.exitCode !== null ? ` (exit code ${final.exitCode})` : ''}`);
    await removeTree(workDir);
    await removeRunState(stateDir);
  }

  /** Uploads a run's output dir after it ended (outputs/index.ts); never throws. */
  private async collectOutputs(
    runId: string,
    stateDir: string,
    note: (line: string) => void,
    resource?: string,
  ): Promise<void> {
    const cap = outputCapBytes(this.opts.config.file['outputs-max-mib']);
    const slurm = this.opts.config.file.slurm;
    const collect =
      resource === 'slurm'
        ? slurm && slurm.transport !== 'ssh'
          ? collectSlurmOutputs(this.opts.client, slurm['workdir-root'], runId, this.id, cap, note)
          : this.fetchedOutputs(runId, cap, note)
        : resource === 'kubernetes'
          ? settleJobUploadedOutputs(this.opts.client, runId, this.id, note)
          : this.outputDirs
              .pathOf(runId, stateDir)
              .then((dir) => collectRunOutputs(this.opts.client, dir, runId, this.id, cap, note));
    await collect.catch((err: unknown) =>
      this.opts.logger.warn({ err, run: runId }, 'could not collect the run outputs'),
    );
  }

  /** Ends a run uid's processes through the local-process runner's supervisor (a smaller process to fork from). */
  private uidKiller(stateDir: string): ((identity: JobIdentity) => Promise<boolean>) | undefined {
    const local = this.runners.get('local-process');
    return local instanceof LocalProcessRunner ? (identity) => local.killAllAs(stateDir, identity) : undefined;
  }

  /** Outputs the runner fetches from where its job wrote them (Slurm over ssh: runners/types.ts fetchOutputs). */
  private async fetchedOutputs(runId: string, cap: number, note: (line: string) => void): Promise<void> {
    const runner = this.runners.get('slurm');
    if (!runner?.fetchOutputs) return;
    const fetch = runner.fetchOutputs.bind(runner, runId);
    const staging = join(this.opts.dataDir, 'outputs-staging');
    await collectFetchedOutputs(this.opts.client, fetch, staging, runId, this.id, cap, note);
  }

  /** Runs this identity held before a restart: re-adopt them where the runner can, otherwise end them honestly. */
  private async reconcile(runs: Run[]): Promise<void> {
    for (const run of runs) {
      const detail = await this.opts.client.getRun(run.id);
      const resource = detail.spec.resource ?? 'local-process';
      const runner = this.runners.get(resource) ?? (await RUNNERS[resource]?.(runnerDeps(this.opts)));
      if (!runner) continue;
      const shipper = new LogShipper(this.sync, this.id, run.id, this.opts.logger, run.log_size);
      // A re-adopted job may still print its secrets: mask them in what it prints from now on too.
      if (Object.keys(detail.spec.secret_env ?? {}).length)
        await this.opts.client
          .runSecrets(run.id, this.id)
          .then(({ env }) => shipper.maskSecrets(Object.values(env)))
          .catch((err: unknown) =>
            this.opts.logger.warn({ err, run: run.id }, 'could not fetch the run secrets to mask'),
          );
      const skip = await alreadyShippedOutput(this.opts.client, run.id, run.log_size);
      let skipped = 0;
      const onOutput = (text: string) => {
        // The runner replays the container's whole output; what the server already has is not sent again.
        const drop = Math.min(text.length, skip - skipped);
        skipped += drop;
        if (drop < text.length) shipper.write(text.slice(drop));
      };
      const reporter = new RunReporter(this.sync, this.id, run.id, this.opts.logger);
      const stateDir = runStateDir(this.opts.dataDir, run.id);
      const result = await runner.reconcile({
        runId: run.id,
        itemId: run.item_id,
        queue: run.queue,
        entity: run.entity,
        spec: detail.spec,
        workDir: join(this.opts.dataDir, 'work', run.id),
        stateDir,
        onOutput,
        onNote: (line) => shipper.note(line),
        onRunning: () => reporter.running(),
        onStarting: () => reporter.starting(),
        onWarning: (w) => reporter.warn(w),
        onOutputsLink: (uri) => reporter.outputsLink(uri),
      });
      // A run's own uid is recorded where only the agent writes: whatever still runs as it belonged to that run.
      const user = await recordedUser(stateDir);
      if ('wait' in result) {
        if (user) this.jobUsers?.adopt(run.id, user);
        this.adopt(run, result, shipper, reporter, detail.queue_settings.start_timeout_seconds, user, resource);
        continue;
      }
      if (user?.dynamic) await killUserProcesses(user.uid);
      // Its output dir is read from the state dir before that goes (released below, after the report).
      await this.outputDirs.pathOf(run.id, stateDir);
      await removeRunState(stateDir);
      const final: Final = { ...result, ...(result.state === 'failed' ? { stage: 'agent' as const } : {}) };
      // The output the runner could still recover, and why the run ends, reach the log before the report.
      shipper.note(finalLine(final));
      await shipper.flush();
      await reporter.flush();
      await this.sync
        .reportRun(run.id, finalReport(this.id, final))
        .catch((err: unknown) => this.opts.logger.warn({ err, run: run.id }, 'could not reconcile run'));
      await this.outputDirs.release(run.id);
      await rm(join(this.opts.dataDir, 'work', run.id), { recursive: true, force: true }).catch(() => undefined);
      this.say(`run ${run.id} from before the restart reported ${final.state}`);
    }
  }

  /** Tracks a run re-adopted after a restart until it ends, then reports it like any other. */
  private adopt(
    run: Run,
    handle: RunHandle,
    shipper: LogShipper,
    reporter: RunReporter,
    startTimeoutSeconds: number | null,
    user?: JobIdentity,
    resource?: string,
  ): void {
    const job: Job = { itemId: run.item_id, queue: run.queue, runId: run.id, handle, cancelRequested: false };
    this.jobs.set(run.item_id, job);
    this.byRun.set(run.id, job);
    this.say(`re-adopted run ${run.id}`);
    job.done = (async () => {
      // The start timeout counts again from the re-adoption: the agent cannot know how long it was down.
      const final = await superviseStart(
        this.pipeline(),
        job,
        handle,
        reporter,
        (l) => shipper.note(l),
        startTimeoutSeconds,
      );
      if (!job.lost)
        await this.collectOutputs(run.id, runStateDir(this.opts.dataDir, run.id), (l) => shipper.note(l), resource);
      shipper.note(finalLine(final));
      await shipper.flush();
      await reporter.flush();
      if (job.lost) return;
      await withRetry(() => this.sync.reportRun(run.id, finalReport(this.id, final)), {
        deadlineMs: REPORT_DEADLINE_MS,
      });
    })()
      .catch((err: unknown) => this.opts.logger.error({ err, run: run.id }, 'adopted run failed to report'))
      .finally(async () => {
        // As at the end of any run: the run's uid is emptied before it can be handed out again, and its dirs go.
        if (this.jobUsers)
          await this.jobUsers
            .release(run.id, this.uidKiller(runStateDir(this.opts.dataDir, run.id)))
            .catch(() => undefined);
        else if (user?.dynamic) await killUserProcesses(user.uid).catch(() => undefined);
        await this.outputDirs.release(run.id, runStateDir(this.opts.dataDir, run.id));
        await removeRunState(runStateDir(this.opts.dataDir, run.id));
        await rm(join(this.opts.dataDir, 'work', run.id), { recursive: true, force: true }).catch(() => undefined);
        this.jobs.delete(run.item_id);
        this.byRun.delete(run.id);
        this.cancelOnlyPoll?.abort();
        this.heartbeat();
      });
  }

  /**
   * Reports status and job count. Event-driven calls (a job started or ended) go through the pacer: a new status at
   * once, a new job count alone at most once a second. The timer sends only when no poll has reached the server for
   * a whole interval, since an open poll already tells the server this agent is alive.
   */
  private heartbeat(reason: 'event' | 'timer' = 'event'): void {
    if (this.stopping && this.jobs.size === 0) return;
    if (reason === 'event') return this.pacer.changed();
    if (Date.now() - this.lastContact >= this.heartbeatInterval) this.pacer.sendNow();
  }

  private async sendHeartbeat(state: AgentState): Promise<void> {
    try {
      // Goes with the next sync (the ack or report that changed the job count, usually); stop_runs reach onStopRuns.
      await this.sync.heartbeat({ status: state.status, current_jobs: state.jobs, run_ids: [...this.byRun.keys()] });
    } catch (err) {
      this.opts.logger.warn({ err }, 'heartbeat failed');
    }
  }
}
