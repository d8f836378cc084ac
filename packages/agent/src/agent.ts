import { chmod, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type Dockerode from 'dockerode';
import type { Logger } from 'pino';
import {
  AGENT_PROTOCOL_VERSION,
  LIFTOFF_VERSION,
  assertAgentProtocol,
  assertBaseImage,
  redactConfig,
  type AgentStopMode,
  type ClaimedItem,
  type Env,
  type LiftoffClient,
  type ResourceType,
  type Run,
} from '@liftoff/core';
import { BuildError, DEFAULT_BASE_IMAGE, type Builder } from './builders/index.js';
import type { ResolvedAgentConfig } from './config.js';
import type { RegistryCredentials } from './docker/credentials.js';
import type { AwsClientSettings, GcpClientSettings } from './environments/types.js';
import { LogShipper } from './logShipper.js';
import { REPORT_DEADLINE_MS, withRetry } from './retry.js';
import { secureModeRefusal } from './secureMode.js';
import { RUNNERS, type RunHandle, type Runner } from './runners/index.js';
import { prepareRunners, runnerDeps } from './agentSetup.js';
import { RunReporter } from './runReporter.js';
import { alreadyShippedOutput, describe, finalLine, finalReport, type Final } from './runOutcome.js';
import { SyncChannel } from './syncChannel.js';
import { fetchSource } from './sources.js';
import { assertMacrosAllowed, fillResourceMacros } from './macros.js';
import { jobEnvironment } from './jobEnv.js';
import { JobUsers, handOver, killUserProcesses, type JobIdentity, type UserSwitching } from './jobUsers.js';
import { createRunState, recordUser, recordedUser, removeRunState, runStateDir, sweepRunStates } from './runState.js';

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
  private lastStatus: 'POLLING' | 'RUNNING' | undefined;
  private builder: Builder | undefined;
  private lastJobs = 0;
  /** When a poll last started or returned (each tells the server this agent is alive). */
  private lastContact = 0;
  private heartbeatInterval = 30_000;
  private loop: Promise<void> | undefined;
  /** Who local-process jobs run as; set when the agent serves a local-process queue. */
  private jobUsers: JobUsers | undefined;
  /** Acks, reports, log appends and heartbeats of all runs, batched into one sync request per tick. */
  private readonly sync: SyncChannel;

  constructor(private readonly opts: AgentOptions) {
    this.queueOrder = [...opts.config.queues];
    this.sync = new SyncChannel(opts.client, opts.identity.id, {
      onContact: () => {
        this.lastContact = Date.now();
      },
      onStopRuns: (runIds) => runIds.forEach((id) => this.stopLostRun(id)),
    });
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
    this.lastStatus = 'POLLING';
    await this.reconcile(reg.active_runs);
    const active = new Set(this.byRun.keys());
    for (const runner of this.runners.values()) {
      await runner.sweep?.(active).catch((err: unknown) => this.opts.logger.warn({ err }, 'sweeping leftovers failed'));
    }
    const held = new Set([...reg.active_runs.map((r) => r.id), ...active]);
    await sweepRunStates(this.opts.dataDir, held, (id) =>
      this.say(`stopped the leftover process of run ${id}, which is no longer active on the server`),
    ).catch((err: unknown) => this.opts.logger.warn({ err }, 'sweeping leftover run records failed'));
    this.heartbeatInterval = reg.heartbeat_interval_ms;
    this.heartbeatTimer = setInterval(() => void this.heartbeat('timer'), reg.heartbeat_interval_ms);
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
    clearInterval(this.heartbeatTimer);
    await Promise.all([...this.runners.values()].map(async (r) => r.close?.()));
    await withRetry(() => this.opts.client.agentStopped(this.id), { deadlineMs: 10_000 }).catch((err: unknown) =>
      this.opts.logger.warn({ err }, 'could not report KILLED'),
    );
    this.say('agent stopped');
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
    void this.heartbeat();
    job.done = this.runJob(job, item)
      .catch((err: unknown) => this.opts.logger.error({ err, item: item.item_id }, 'job pipeline failed'))
      .finally(() => {
        this.jobs.delete(item.item_id);
        if (job.runId) this.byRun.delete(job.runId);
        this.cancelOnlyPoll?.abort();
        void this.heartbeat();
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
      final = await this.execute(job, item, run, workDir, stateDir, shipper, note, reporter);
    } catch (err) {
      final = { state: 'failed', exitCode: null, message: describe(err), stage: 'agent' };
    }
    // The run row must not hold a secret either, should an error message quote one.
    if ('message' in final) final = { ...final, message: shipper.mask(final.message) };
    // Every process left with the run's own uid goes before the uid can be handed out again.
    await this.jobUsers
      ?.release(run.id)
      .catch((err: unknown) => logger.warn({ err, run: run.id }, 'could not end the run user'));
    note(finalLine(final));
    await shipper.flush();
    await reporter.flush();
    if (job.lost) {
      this.say(`run ${run.id} stopped after it was declared lost; not reported`);
      await rm(workDir, { recursive: true, force: true }).catch(() => undefined);
      await removeRunState(stateDir);
      return;
    }
    await retry(() => this.sync.reportRun(run.id, finalReport(this.id, final))).catch((err: unknown) =>
      logger.error({ err, run: run.id }, 'could not report the final status'),
    );
    this.say(`run ${run.id} ${final.state}${final.exitCode !== null ? ` (exit code ${final.exitCode})` : ''}`);
    await rm(workDir, { recursive: true, force: true }).catch(() => undefined);
    await removeRunState(stateDir);
  }

  private async execute(
    job: Job,
    item: ClaimedItem,
    run: Run,
    workDir: string,
    stateDir: string,
    shipper: LogShipper,
    note: (l: string) => void,
    reporter: RunReporter,
  ): Promise<Final> {
    const { spec } = item;
    note(`run ${run.id} of item ${item.item_id} on agent ${this.opts.identity.name} (${this.opts.hostname})`);
    const resource = spec.resource ?? 'local-process';
    const runner = this.runners.get(resource);
    if (!runner) {
      return { state: 'failed', exitCode: null, message: `This agent has no ${resource} runner.`, stage: 'agent' };
    }
    const insecure = this.opts.config.file.secure_mode ? secureModeRefusal(spec, resource, item.queue) : undefined;
    if (insecure) return { state: 'failed', exitCode: null, message: insecure, stage: 'agent' };
    const macroEnv = this.opts.config.file['macro-env'] ?? [];
    assertMacrosAllowed(spec, macroEnv, this.opts.agentEnv);
    await createRunState(stateDir);
    const user = resource === 'local-process' ? await this.jobUsers?.acquire(run.id) : undefined;
    if (user) {
      await recordUser(stateDir, user);
      note(`running as uid ${user.uid}, gid ${user.gid}`);
    }
    let image: string | undefined;
    let mountCodeAt: string | undefined;
    let workCopyAt: string | undefined;
    if (spec.source.type === 'image') {
      if (resource === 'local-process') {
        return {
          state: 'failed',
          exitCode: null,
          message: 'An image job cannot run as a local process; push it to a container queue.',
          stage: 'agent',
        };
      }
      image = spec.source.image;
      note(`image job: running ${image} without a build`);
    } else {
      const identity = await fetchSource(spec.source, workDir, {
        client: this.opts.client,
        env: this.opts.agentEnv,
        git: this.opts.config.file.git ?? {},
        say: note,
      });
      // Fetched as the agent (its git credentials stay its own), then handed over whole before the job starts.
      if (user) await handOver(workDir, user);
      else await chmod(workDir, 0o700);
      if (resource !== 'local-process') {
        if (job.cancelRequested) return { state: 'stopped', exitCode: null };
        try {
          const built = await this.requireBuilder().build({
            runId: run.id,
            spec,
            codeDir: workDir,
            sourceIdentity: identity,
            baseImage: this.baseImage(spec, resource),
            onLog: (t) => shipper.write(t),
          });
          image = built.image;
          mountCodeAt = built.mountCodeAt;
          workCopyAt = built.workCopyAt;
        } catch (err) {
          return {
            state: 'failed',
            exitCode: null,
            message: describe(err),
            stage: err instanceof BuildError ? 'build' : 'agent',
          };
        }
      }
    }
    if (job.cancelRequested) return { state: 'stopped', exitCode: null };
    const secretEnv = await this.runSecrets(spec, run.id, shipper);
    const env = jobEnvironment({
      agentEnv: this.opts.agentEnv,
      allowed: this.opts.config.file['job-env'] ?? [],
      specEnv: spec.env,
      secretEnv,
      runVars: {
        LIFTOFF_RUN_ID: run.id,
        LIFTOFF_ITEM_ID: item.item_id,
        LIFTOFF_QUEUE: item.queue,
        LIFTOFF_ENTITY: item.entity,
        LIFTOFF_RUN_CONFIG: JSON.stringify(spec.run_config),
      },
      place: resource === 'local-process' ? 'process' : 'container',
      home: workDir,
      ...(user ? { user: user.name } : {}),
    });
    note(`starting: ${[...spec.entry_point, ...spec.args].map((a) => JSON.stringify(a)).join(' ')}`);
    let handle: RunHandle;
    try {
      handle = await runner.start({
        runId: run.id,
        itemId: item.item_id,
        queue: item.queue,
        entity: item.entity,
        spec: fillResourceMacros(
          spec,
          { run_id: run.id, entity_name: item.entity, image_uri: image },
          this.opts.agentEnv,
          macroEnv,
        ),
        workDir,
        stateDir,
        ...(user ? { user: { uid: user.uid, gid: user.gid } } : {}),
        env,
        ...(image ? { image } : {}),
        ...(mountCodeAt ? { mountCodeAt } : {}),
        ...(workCopyAt ? { workCopyAt } : {}),
        onOutput: (t) => shipper.write(t),
        onNote: note,
        onRunning: () => reporter.running(),
        onWarning: (w) => reporter.warn(w),
        allow: item.queue_settings.allow,
        logger: this.opts.logger,
      });
    } catch (err) {
      return { state: 'failed', exitCode: null, message: describe(err), stage: 'run' };
    }
    job.handle = handle;
    if (job.cancelRequested) void handle.cancel(this.opts.config.stopGraceSeconds * 1000);
    if (!runner.reportsRunning) reporter.running();
    return this.superviseStart(job, handle, reporter, note, item.queue_settings.start_timeout_seconds);
  }

  /**
   * The queue's start timeout: a run still starting (a pod no node takes, an image that never pulls) after that
   * long is cancelled and fails, with the last warning as its reason.
   */
  private async superviseStart(
    job: Job,
    handle: RunHandle,
    reporter: RunReporter,
    note: (l: string) => void,
    timeoutSeconds: number | null,
  ): Promise<Final> {
    if (!timeoutSeconds) return handle.wait();
    let timedOut = false;
    const timer = setTimeout(() => {
      if (reporter.isRunning || job.cancelRequested) return;
      timedOut = true;
      note(`still starting after the queue's start timeout of ${timeoutSeconds} s: cancelling`);
      void handle.cancel(this.opts.config.stopGraceSeconds * 1000);
    }, timeoutSeconds * 1000);
    const outcome = await handle.wait();
    clearTimeout(timer);
    if (!timedOut || outcome.state === 'finished') return outcome;
    return {
      state: 'failed',
      exitCode: null,
      stage: 'run',
      message: `Did not start within the queue's start timeout of ${timeoutSeconds} s: ${reporter.lastWarning ?? 'no warning was reported'}`,
    };
  }

  /**
   * The values of the spec's `secret_env`, asked of the server for this run right before it starts (the server
   * hands them only to the agent holding the run, routes/secrets.ts), and masked in the run's log from then on.
   * They go into the job's environment only: never into the spec, a note, the run row or the agent's log.
   */
  private async runSecrets(
    spec: ClaimedItem['spec'],
    runId: string,
    shipper: LogShipper,
  ): Promise<Record<string, string>> {
    const names = Object.keys(spec.secret_env ?? {});
    if (!names.length) return {};
    const { env } = await withRetry(() => this.opts.client.runSecrets(runId, this.id), { deadlineMs: 60_000 });
    shipper.maskSecrets(Object.values(env));
    shipper.note(`secrets for ${names.join(', ')} set in the job's environment; their values are masked in this log`);
    return env;
  }

  private requireBuilder(): Builder {
    if (!this.builder) throw new BuildError('This agent has no builder configured.');
    return this.builder;
  }

  /** resource_args.<resource>.builder.base_image, else the agent config's builder.base-image, else the default. */
  private baseImage(spec: ClaimedItem['spec'], resource: string): string {
    const fromArgs = (spec.resource_args[resource]?.builder as { base_image?: unknown } | undefined)?.base_image;
    if (fromArgs !== undefined) {
      // Checked again although the server refuses it at push: it becomes a FROM line or the image to run.
      assertBaseImage(fromArgs, `resource_args.${resource}.builder.base_image`);
      return fromArgs as string;
    }
    return this.opts.config.file.builder?.['base-image'] ?? DEFAULT_BASE_IMAGE;
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
        onWarning: (w) => reporter.warn(w),
      });
      // A run's own uid is recorded where only the agent writes: whatever still runs as it belonged to that run.
      const user = await recordedUser(stateDir);
      if ('wait' in result) {
        if (user) this.jobUsers?.adopt(run.id, user);
        this.adopt(run, result, shipper, reporter, detail.queue_settings.start_timeout_seconds, user);
        continue;
      }
      if (user?.dynamic) await killUserProcesses(user.uid);
      await removeRunState(stateDir);
      const final: Final = { ...result, ...(result.state === 'failed' ? { stage: 'agent' as const } : {}) };
      // The output the runner could still recover, and why the run ends, reach the log before the report.
      shipper.note(finalLine(final));
      await shipper.flush();
      await reporter.flush();
      await this.sync
        .reportRun(run.id, finalReport(this.id, final))
        .catch((err: unknown) => this.opts.logger.warn({ err, run: run.id }, 'could not reconcile run'));
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
  ): void {
    const job: Job = { itemId: run.item_id, queue: run.queue, runId: run.id, handle, cancelRequested: false };
    this.jobs.set(run.item_id, job);
    this.byRun.set(run.id, job);
    this.say(`re-adopted run ${run.id}`);
    job.done = (async () => {
      // The start timeout counts again from the re-adoption: the agent cannot know how long it was down.
      const final = await this.superviseStart(job, handle, reporter, (l) => shipper.note(l), startTimeoutSeconds);
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
        if (this.jobUsers) await this.jobUsers.release(run.id).catch(() => undefined);
        else if (user?.dynamic) await killUserProcesses(user.uid).catch(() => undefined);
        await removeRunState(runStateDir(this.opts.dataDir, run.id));
        await rm(join(this.opts.dataDir, 'work', run.id), { recursive: true, force: true }).catch(() => undefined);
        this.jobs.delete(run.item_id);
        this.byRun.delete(run.id);
        this.cancelOnlyPoll?.abort();
        void this.heartbeat();
      });
  }

  /**
   * Reports status and job count. Event-driven calls (a job started or ended) send only when either changed; the
   * timer sends only when no poll has reached the server for a whole interval, since an open poll already tells
   * the server this agent is alive.
   */
  private async heartbeat(reason: 'event' | 'timer' = 'event'): Promise<void> {
    if (this.stopping && this.jobs.size === 0) return;
    const status = this.jobs.size ? 'RUNNING' : 'POLLING';
    if (reason === 'event' && status === this.lastStatus && this.jobs.size === this.lastJobs) return;
    if (reason === 'timer' && Date.now() - this.lastContact < this.heartbeatInterval) return;
    this.lastStatus = status;
    this.lastJobs = this.jobs.size;
    try {
      // Goes with the next sync (the ack or report that changed the job count, usually); stop_runs reach onStopRuns.
      await this.sync.heartbeat({ status, current_jobs: this.jobs.size, run_ids: [...this.byRun.keys()] });
    } catch (err) {
      this.opts.logger.warn({ err }, 'heartbeat failed');
    }
  }
}
