import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RunnerError } from '@liftoff/core';
import type { AdoptContext, JobContext, RunHandle, RunOutcome, Runner, RunnerDeps } from '../types.js';
import { CustomJobRun, type PollTimes } from './customJobRun.js';
import { LABEL_AGENT, LABEL_RUN, agentLabel, buildJob } from './request.js';
import { VertexApi, isNotFound } from './rest.js';
import { outputDirOf, type CustomJobView } from './state.js';

const NO_GCP =
  'vertex queues need Google Cloud: add `environment: {type: gcp, project: <project>, region: <region>}` to the agent config (credentials come from Application Default Credentials: a key file, gcloud ADC, workload identity or the metadata server).';

/** Where the custom job's resource name is kept for a restarted agent (the run's agent-owned state dir). */
const RECORD = 'vertex-job.json';
const TERMINAL = new Set([
  'JOB_STATE_SUCCEEDED',
  'JOB_STATE_FAILED',
  'JOB_STATE_CANCELLED',
  'JOB_STATE_EXPIRED',
  'JOB_STATE_PARTIALLY_SUCCEEDED',
]);

/**
 * Runs jobs as Vertex AI custom jobs (docs/vertex.md): one `customJobs` create per run from `resource_args.vertex`,
 * followed by polling the job and reading its Cloud Logging entries; cancelled with `:cancel`; found again by its
 * stored name (else its `liftoff-run-id` label) after an agent restart; this agent's labelled jobs that no run
 * holds are cancelled by the sweep. Also serves W&B's resource name `gcp-vertex`.
 */
export class VertexRunner implements Runner {
  readonly reportsRunning = true;
  private apiOf: VertexApi | undefined;
  private readonly runs = new Set<CustomJobRun>();
  private readonly times: PollTimes;

  constructor(
    private readonly deps: RunnerDeps,
    times: Partial<PollTimes> = {},
    readonly type: 'vertex' | 'gcp-vertex' = 'vertex',
  ) {
    this.times = {
      pollMs: times.pollMs ?? deps.vertex?.pollMs ?? 10_000,
      maxBackoffMs: times.maxBackoffMs ?? 60_000,
      tailMs: times.tailMs ?? deps.vertex?.tailMs ?? 30_000,
    };
  }

  async check(): Promise<void> {
    if (!this.deps.gcp) throw new RunnerError(NO_GCP);
  }

  async start(job: JobContext): Promise<RunHandle> {
    if (job.mountCodeAt) {
      throw new RunnerError(
        'The noop builder mounts the code from the agent machine, which Vertex AI cannot see. Use the docker builder with an Artifact Registry destination, or push an image job.',
      );
    }
    const secrets = Object.keys(job.spec.secret_env);
    if (secrets.length) {
      throw new RunnerError(
        `Secrets (${secrets.join(', ')}) cannot go to Vertex AI: a custom job's container env is readable by anyone allowed customJobs.get. Keep them in Secret Manager and read them with the job's service account.`,
      );
    }
    const args =
      job.spec.resource_args[this.type] ?? job.spec.resource_args.vertex ?? job.spec.resource_args['gcp-vertex'];
    // Everything up to the create is local: a refused job makes no Google call.
    const body = buildJob(args as Record<string, unknown> | undefined, {
      runId: job.runId,
      agentId: this.deps.agentId,
      displayName: job.spec.name ?? `liftoff-${job.runId}`,
      image: job.image,
      entryPoint: job.spec.entry_point,
      args: job.spec.args,
      runEnv: job.env,
    });
    const api = this.api();
    let created: CustomJobView;
    try {
      created = await api.create(body);
    } catch (e) {
      throw new RunnerError(`Vertex AI refused the custom job of run ${job.runId}: ${(e as Error).message}`, e);
    }
    if (!created.name) throw new RunnerError('customJobs.create returned no job name.');
    writeFileSync(join(job.stateDir, RECORD), JSON.stringify({ name: created.name }), { mode: 0o600 });
    job.onNote(`vertex custom job ${created.name} created`);
    const outputs = outputDirOf(created) ?? outputDirOf(body as CustomJobView);
    if (outputs) job.onOutputsLink?.(outputs);
    return this.track(created.name, job, tasksOf(body));
  }

  async reconcile(run: AdoptContext): Promise<RunHandle | RunOutcome> {
    if (!this.deps.gcp)
      return { state: 'failed', exitCode: null, message: `Could not re-adopt the custom job: ${NO_GCP}` };
    const api = this.api();
    try {
      let job: CustomJobView | undefined;
      const stored = storedName(run.stateDir);
      if (stored) {
        job = await api.get(stored).catch((e: unknown) => {
          if (isNotFound(e)) return undefined;
          throw e;
        });
      }
      // No record (the agent died between create and the write) or a stale one: the run's label finds it.
      job ??= (await api.listByLabels({ [LABEL_RUN]: run.runId, [LABEL_AGENT]: agentLabel(this.deps.agentId) }))[0];
      if (!job?.name) {
        return {
          state: 'failed',
          exitCode: null,
          message: `No Vertex AI custom job of run ${run.runId} exists; its outcome is unknown.`,
        };
      }
      run.onNote(
        `re-adopted vertex custom job ${job.name} (${job.state ?? 'unknown'}); its log is read again from the start`,
      );
      const outputs = outputDirOf(job);
      if (outputs) run.onOutputsLink?.(outputs);
      return this.track(job.name, run, tasksOf(job));
    } catch (e) {
      return {
        state: 'failed',
        exitCode: null,
        message: `Could not re-adopt the custom job of run ${run.runId}: ${(e as Error).message}`,
      };
    }
  }

  /** Unfinished custom jobs labelled with this agent whose runs are no longer active: cancelled (they cost money). */
  async sweep(active: ReadonlySet<string>): Promise<void> {
    if (!this.deps.gcp) return;
    const api = this.api();
    for (const job of await api.listByLabels({ [LABEL_AGENT]: agentLabel(this.deps.agentId) })) {
      const runId = (job as { labels?: Record<string, string> }).labels?.[LABEL_RUN];
      if (
        !job.name ||
        !runId ||
        active.has(runId) ||
        TERMINAL.has(job.state ?? '') ||
        job.state === 'JOB_STATE_CANCELLING'
      )
        continue;
      this.deps.logger.info({ job: job.name, runId }, 'cancelling the custom job of an ended run');
      await api
        .cancel(job.name)
        .catch((err: unknown) =>
          this.deps.logger.warn({ err, job: job.name }, 'could not cancel a leftover custom job'),
        );
    }
  }

  async close(): Promise<void> {
    for (const r of this.runs) r.detach();
    this.runs.clear();
  }

  private track(name: string, cb: AdoptContext, tasks: number): CustomJobRun {
    const run = new CustomJobRun(name, this.api(), cb, this.deps.logger, this.times, tasks);
    this.runs.add(run);
    void run.wait().finally(() => this.runs.delete(run));
    return run;
  }

  private api(): VertexApi {
    if (!this.deps.gcp) throw new RunnerError(NO_GCP);
    this.apiOf ??= new VertexApi(this.deps.gcp);
    return this.apiOf;
  }
}

function storedName(stateDir: string): string | undefined {
  try {
    const name = (JSON.parse(readFileSync(join(stateDir, RECORD), 'utf8')) as { name?: unknown }).name;
    return typeof name === 'string' && /^projects\/[^/]+\/locations\/[^/]+\/customJobs\/\d+$/.test(name)
      ? name
      : undefined;
  } catch {
    return undefined;
  }
}

/** Tasks (replicas over all pools) of a body or a job resource, either spelling: decides the log line prefix. */
function tasksOf(job: object): number {
  const j = job as Record<string, Record<string, unknown> | undefined>;
  const spec = j.job_spec ?? j.jobSpec;
  const pools = (spec?.worker_pool_specs ?? spec?.workerPoolSpecs) as Array<Record<string, unknown>> | undefined;
  return (pools ?? []).reduce((n, p) => n + (Number(p.replica_count ?? p.replicaCount ?? 1) || 1), 0);
}
