import { assertBaseImage, type ClaimedItem, type ResourceType, type Run } from '@liftoff/core';
import type { AgentOptions } from './agent.js';
import { BuildError, DEFAULT_BASE_IMAGE, type Builder } from './builders/index.js';
import { jobEnvironment, wandbEnvironment } from './jobEnv.js';
import { CONTAINER_OUTPUT_DIR, outputCapBytes } from './outputs/index.js';
import type { OutputDirs } from './outputs/outputDirs.js';
import type { JobUsers } from './jobUsers.js';
import type { LogShipper } from './logShipper.js';
import { assertMacrosAllowed, fillResourceMacros } from './macros.js';
import { withRetry } from './retry.js';
import type { RunHandle, Runner } from './runners/index.js';
import { describe, type Final } from './runOutcome.js';
import type { RunReporter } from './runReporter.js';
import { createRunState, recordUser } from './runState.js';
import { secureModeRefusal } from './secureMode.js';
import { fetchSource } from './sources.js';
import type { ArchiveCache } from './archiveCache.js';

/**
 * One job's way from a claimed item to its outcome, after the ack: secure-mode and macro checks, the run's own
 * user, its source fetched and handed over, the image built, its secrets and environment, the runner started, and
 * the queue's start timeout watched. The agent (agent.ts) owns the loop, the ack, the final report and the cleanup.
 */
export interface PipelineContext {
  opts: AgentOptions;
  agentId: string;
  runners: ReadonlyMap<ResourceType, Runner>;
  builder: Builder | undefined;
  jobUsers: JobUsers | undefined;
  /** Code archives extracted once and copied into each run's work dir. */
  archives: ArchiveCache;
  /** Which output dir each run's job writes to (outputs/outputDirs.ts). */
  outputDirs: OutputDirs;
}

/** The agent's record of a job, as far as the pipeline reads and writes it. */
export interface PipelineJob {
  cancelRequested: boolean;
  handle?: RunHandle;
}

/** Runners whose jobs get LIFTOFF_OUTPUT_DIR on the agent's host. */
const OUTPUT_RUNNERS: ReadonlySet<string> = new Set(['local-process', 'local-container']);

export async function executeJob(
  ctx: PipelineContext,
  job: PipelineJob,
  item: ClaimedItem,
  run: Run,
  workDir: string,
  stateDir: string,
  shipper: LogShipper,
  note: (l: string) => void,
  reporter: RunReporter,
): Promise<Final> {
  const { spec } = item;
  note(`run ${run.id} of item ${item.item_id} on agent ${ctx.opts.identity.name} (${ctx.opts.hostname})`);
  const resource = spec.resource ?? 'local-process';
  const runner = ctx.runners.get(resource);
  if (!runner) {
    return { state: 'failed', exitCode: null, message: `This agent has no ${resource} runner.`, stage: 'agent' };
  }
  const insecure = ctx.opts.config.file.secure_mode ? secureModeRefusal(spec, resource, item.queue) : undefined;
  if (insecure) return { state: 'failed', exitCode: null, message: insecure, stage: 'agent' };
  const macroEnv = ctx.opts.config.file['macro-env'] ?? [];
  assertMacrosAllowed(spec, macroEnv, ctx.opts.agentEnv);
  await createRunState(stateDir);
  const user = resource === 'local-process' ? await ctx.jobUsers?.acquire(run.id) : undefined;
  if (user) {
    await recordUser(stateDir, user);
    note(`running as uid ${user.uid}, gid ${user.gid}`);
  }
  let image: string | undefined;
  let mountCodeAt: string | undefined;
  let workCopyAt: string | undefined;
  // Slurm runs code jobs as processes on the cluster, like local-process: no image is built (docs/slurm.md).
  const processMode = resource === 'local-process' || resource === 'slurm';
  if (spec.source.type === 'image') {
    if (resource === 'slurm') {
      return {
        state: 'failed',
        exitCode: null,
        message: 'slurm queues run code jobs (process mode); image jobs are not supported on Slurm yet.',
        stage: 'agent',
      };
    }
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
      client: ctx.opts.client,
      env: ctx.opts.agentEnv,
      git: ctx.opts.config.file.git ?? {},
      say: note,
      archives: ctx.archives,
      ...(user ? { owner: user } : {}),
    });
    if (!processMode) {
      if (job.cancelRequested) return { state: 'stopped', exitCode: null };
      try {
        const built = await requireBuilder(ctx).build({
          runId: run.id,
          spec,
          codeDir: workDir,
          sourceIdentity: identity,
          baseImage: baseImage(ctx, spec, resource),
          onLog: (t) => shipper.write(t),
          onNote: note,
          onWarning: (w) => reporter.warn(w),
          isCancelled: () => job.cancelRequested,
        });
        image = built.image;
        mountCodeAt = built.mountCodeAt;
        workCopyAt = built.workCopyAt;
      } catch (err) {
        // An in-cluster builder deletes its build Job on cancel and says so: the run was stopped, not failed.
        if (job.cancelRequested) return { state: 'stopped', exitCode: null };
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
  const secretEnv = await runSecrets(ctx, spec, run.id, shipper);
  // Runners that give jobs an output dir (docs/outputs.md); the agent collects it after the run (agent.ts).
  const outputDir = OUTPUT_RUNNERS.has(resource)
    ? {
        ...(await ctx.outputDirs.assign(run.id, stateDir)),
        capBytes: outputCapBytes(ctx.opts.config.file['outputs-max-mib']),
      }
    : undefined;
  const env = jobEnvironment({
    agentEnv: ctx.opts.agentEnv,
    allowed: ctx.opts.config.file['job-env'] ?? [],
    specEnv: spec.env,
    secretEnv,
    runVars: {
      LIFTOFF_RUN_ID: run.id,
      LIFTOFF_ITEM_ID: item.item_id,
      LIFTOFF_QUEUE: item.queue,
      LIFTOFF_ENTITY: item.entity,
      LIFTOFF_RUN_CONFIG: JSON.stringify(spec.run_config),
      ...(outputDir
        ? { LIFTOFF_OUTPUT_DIR: resource === 'local-container' ? CONTAINER_OUTPUT_DIR : outputDir.path }
        : {}),
      ...(spec.wandb_env
        ? wandbEnvironment({
            runId: run.id,
            itemId: item.item_id,
            queue: item.queue,
            entity: item.entity,
            runConfig: spec.run_config,
            ...(spec.name ? { name: spec.name } : {}),
            ...(spec.project ? { project: spec.project } : {}),
            ...(spec.author ? { author: spec.author } : {}),
            ...(spec.source.type === 'image' ? { image: spec.source.image } : {}),
          })
        : {}),
    },
    place: processMode ? 'process' : 'container',
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
        ctx.opts.agentEnv,
        macroEnv,
      ),
      workDir,
      stateDir,
      ...(user ? { user: { uid: user.uid, gid: user.gid, dynamic: user.dynamic } } : {}),
      env,
      ...(outputDir ? { outputDir } : {}),
      ...(image ? { image } : {}),
      ...(mountCodeAt ? { mountCodeAt } : {}),
      ...(workCopyAt ? { workCopyAt } : {}),
      onOutput: (t) => shipper.write(t),
      onNote: note,
      onRunning: () => reporter.running(),
      onStarting: () => reporter.starting(),
      onWarning: (w) => reporter.warn(w),
      onOutputsLink: (uri) => reporter.outputsLink(uri),
      allow: item.queue_settings.allow,
      logger: ctx.opts.logger,
    });
  } catch (err) {
    return { state: 'failed', exitCode: null, message: describe(err), stage: 'run' };
  }
  job.handle = handle;
  if (job.cancelRequested) void handle.cancel(ctx.opts.config.stopGraceSeconds * 1000);
  if (!runner.reportsRunning) reporter.running();
  return superviseStart(ctx, job, handle, reporter, note, item.queue_settings.start_timeout_seconds);
}

/**
 * The queue's start timeout: a run still starting (a pod no node takes, an image that never pulls) after that
 * long is cancelled and fails, with the last warning as its reason.
 */
export async function superviseStart(
  ctx: PipelineContext,
  job: PipelineJob,
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
    void handle.cancel(ctx.opts.config.stopGraceSeconds * 1000);
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
async function runSecrets(
  ctx: PipelineContext,
  spec: ClaimedItem['spec'],
  runId: string,
  shipper: LogShipper,
): Promise<Record<string, string>> {
  const names = Object.keys(spec.secret_env ?? {});
  if (!names.length) return {};
  const { env } = await withRetry(() => ctx.opts.client.runSecrets(runId, ctx.agentId), { deadlineMs: 60_000 });
  shipper.maskSecrets(Object.values(env));
  shipper.note(`secrets for ${names.join(', ')} set in the job's environment; their values are masked in this log`);
  return env;
}

function requireBuilder(ctx: PipelineContext): Builder {
  if (!ctx.builder) throw new BuildError('This agent has no builder configured.');
  return ctx.builder;
}

/** resource_args.<resource>.builder.base_image, else the agent config's builder.base-image, else the default. */
function baseImage(ctx: PipelineContext, spec: ClaimedItem['spec'], resource: string): string {
  const fromArgs = (spec.resource_args[resource]?.builder as { base_image?: unknown } | undefined)?.base_image;
  if (fromArgs !== undefined) {
    // Checked again although the server refuses it at push: it becomes a FROM line or the image to run.
    assertBaseImage(fromArgs, `resource_args.${resource}.builder.base_image`);
    return fromArgs as string;
  }
  return ctx.opts.config.file.builder?.['base-image'] ?? DEFAULT_BASE_IMAGE;
}
