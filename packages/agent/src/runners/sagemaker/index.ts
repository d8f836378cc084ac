import { CloudWatchLogsClient } from '@aws-sdk/client-cloudwatch-logs';
import {
  CreateTrainingJobCommand,
  DescribeTrainingJobCommand,
  ListTagsCommand,
  ListTrainingJobsCommand,
  SageMakerClient,
  StopTrainingJobCommand,
} from '@aws-sdk/client-sagemaker';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { RunnerError } from '@liftoff/core';
import type { AwsClientSettings } from '../../environments/types.js';
import type { AdoptContext, JobContext, RunHandle, RunOutcome, Runner, RunnerDeps } from '../types.js';
import { preflight } from './preflight.js';
import { TAG_AGENT, TAG_RUN, buildRequest, jobNameOf } from './request.js';
import { TrainingRun, isNotFound, type PollTimes } from './trainingRun.js';

interface Clients {
  sagemaker: SageMakerClient;
  logs: CloudWatchLogsClient;
  sts: STSClient;
}

const NO_AWS =
  "sagemaker queues need AWS: add `environment: {type: aws, region: <region>}` to the agent config (credentials come from the agent's default AWS chain: env, profile, SSO, web identity, container or instance role).";

/**
 * Runs jobs as SageMaker training jobs (docs/sagemaker.md): one CreateTrainingJob per run, named after the run,
 * followed by polling DescribeTrainingJob and reading its CloudWatch streams; stopped with StopTrainingJob; found
 * again by name after an agent restart; jobs tagged with this agent that no run holds are stopped by the sweep.
 */
export class SageMakerRunner implements Runner {
  readonly type = 'sagemaker' as const;
  readonly reportsRunning = true;
  private clientsOf: Clients | undefined;
  private identity: Promise<{ account: string; partition: string }> | undefined;
  private readonly runs = new Set<TrainingRun>();
  private readonly times: PollTimes;

  constructor(
    private readonly deps: RunnerDeps,
    times: Partial<PollTimes> = {},
  ) {
    this.times = { pollMs: times.pollMs ?? 10_000, maxBackoffMs: times.maxBackoffMs ?? 60_000 };
  }

  async check(): Promise<void> {
    if (!this.deps.aws) throw new RunnerError(NO_AWS);
  }

  async start(job: JobContext): Promise<RunHandle> {
    if (!job.image) throw new RunnerError('No image to run: the job was not built.');
    if (job.mountCodeAt) {
      throw new RunnerError(
        'The noop builder mounts the code from the agent machine, which SageMaker cannot see. Use the docker builder with an ECR destination, or push an image job.',
      );
    }
    const secrets = Object.keys(job.spec.secret_env);
    if (secrets.length) {
      throw new RunnerError(
        `Secrets (${secrets.join(', ')}) cannot go to SageMaker: a training job's Environment is readable by anyone allowed DescribeTrainingJob. Keep them in AWS Secrets Manager and read them with the job's execution role.`,
      );
    }
    const name = jobNameOf(job.runId);
    // Everything below up to the preflight is local: a refused job makes no AWS call.
    const request = buildRequest(job.spec.resource_args.sagemaker, {
      name,
      runId: job.runId,
      agentId: this.deps.agentId,
      image: job.image,
      entryPoint: job.spec.entry_point,
      args: job.spec.args,
      runEnv: job.env,
    });
    preflight(request);
    const clients = this.clients();
    request.RoleArn = await this.roleArn(request.RoleArn ?? '');
    try {
      const created = await clients.sagemaker.send(new CreateTrainingJobCommand(request));
      if (!created.TrainingJobArn) throw new RunnerError(`CreateTrainingJob for ${name} returned no TrainingJobArn.`);
      job.onNote(`sagemaker training job ${name} created (${created.TrainingJobArn})`);
      reportOutputs(job, request.OutputDataConfig?.S3OutputPath, name);
    } catch (e) {
      if (e instanceof RunnerError) throw e;
      const err = e as Error;
      if (err.name === 'ResourceInUse') {
        throw new RunnerError(
          `A SageMaker training job named ${name} exists already in this account and region: ${err.message}`,
        );
      }
      throw new RunnerError(`SageMaker refused CreateTrainingJob for ${name}: ${err.name}: ${err.message}`, e);
    }
    return this.track(name, job, request.ResourceConfig?.InstanceCount ?? 1);
  }

  async reconcile(run: AdoptContext): Promise<RunHandle | RunOutcome> {
    const name = jobNameOf(run.runId);
    if (!this.deps.aws) return { state: 'failed', exitCode: null, message: `Could not re-adopt ${name}: ${NO_AWS}` };
    try {
      const job = await this.clients().sagemaker.send(new DescribeTrainingJobCommand({ TrainingJobName: name }));
      run.onNote(
        `re-adopted sagemaker training job ${name} (${job.TrainingJobStatus ?? 'unknown'}); its log is read again from the start`,
      );
      reportOutputs(run, job.OutputDataConfig?.S3OutputPath, name);
      return this.track(name, run, job.ResourceConfig?.InstanceCount ?? 1);
    } catch (e) {
      if (isNotFound(e)) {
        return {
          state: 'failed',
          exitCode: null,
          message: `The training job ${name} does not exist in SageMaker; its outcome is unknown.`,
        };
      }
      return { state: 'failed', exitCode: null, message: `Could not re-adopt ${name}: ${(e as Error).message}` };
    }
  }

  /** InProgress jobs tagged with this agent whose runs are no longer active: stopped (they cost money). */
  async sweep(active: ReadonlySet<string>): Promise<void> {
    if (!this.deps.aws) return;
    const { sagemaker } = this.clients();
    let NextToken: string | undefined;
    do {
      const page = await sagemaker.send(
        new ListTrainingJobsCommand({
          StatusEquals: 'InProgress',
          NameContains: 'liftoff-',
          MaxResults: 100,
          ...(NextToken ? { NextToken } : {}),
        }),
      );
      for (const s of page.TrainingJobSummaries ?? []) {
        if (!s.TrainingJobArn || !s.TrainingJobName) continue;
        const tags = (await sagemaker.send(new ListTagsCommand({ ResourceArn: s.TrainingJobArn }))).Tags ?? [];
        const tag = (k: string) => tags.find((t) => t.Key === k)?.Value;
        const runId = tag(TAG_RUN);
        if (tag(TAG_AGENT) !== this.deps.agentId || !runId || active.has(runId)) continue;
        this.deps.logger.info({ job: s.TrainingJobName, runId }, 'stopping the training job of an ended run');
        await sagemaker
          .send(new StopTrainingJobCommand({ TrainingJobName: s.TrainingJobName }))
          .catch((err: unknown) =>
            this.deps.logger.warn({ err, job: s.TrainingJobName }, 'could not stop a leftover training job'),
          );
      }
      NextToken = page.NextToken;
    } while (NextToken);
  }

  async close(): Promise<void> {
    for (const r of this.runs) r.detach();
    this.runs.clear();
    if (this.clientsOf) for (const c of Object.values(this.clientsOf)) (c as { destroy(): void }).destroy();
    this.clientsOf = undefined;
  }

  private track(name: string, cb: AdoptContext, instances: number): TrainingRun {
    const { sagemaker, logs } = this.clients();
    const run = new TrainingRun(name, sagemaker, logs, cb, this.deps.logger, this.times, instances);
    this.runs.add(run);
    void run.wait().finally(() => this.runs.delete(run));
    return run;
  }

  /** One client per service for the runner's life, all on the agent's shared credential provider. */
  private clients(): Clients {
    const aws = this.deps.aws;
    if (!aws) throw new RunnerError(NO_AWS);
    this.clientsOf ??= {
      sagemaker: new SageMakerClient(options(aws, 'sagemaker')),
      logs: new CloudWatchLogsClient(options(aws, 'logs')),
      sts: new STSClient(options(aws, 'sts')),
    };
    return this.clientsOf;
  }

  /** A bare role name becomes `arn:<partition>:iam::<account>:role/<name>` (W&B's rule), account from STS. */
  private async roleArn(role: string): Promise<string> {
    if (role.startsWith('arn:')) return role;
    this.identity ??= this.clients()
      .sts.send(new GetCallerIdentityCommand({}))
      .then((me) => {
        const partition = /^arn:([^:]+):/.exec(me.Arn ?? '')?.[1];
        if (!me.Account || !partition) throw new RunnerError('STS GetCallerIdentity returned no account or ARN.');
        return { account: me.Account, partition };
      });
    this.identity.catch(() => (this.identity = undefined));
    const { account, partition } = await this.identity.catch((e: unknown) => {
      throw new RunnerError(
        `Completing the role name ${role} into an ARN needs sts:GetCallerIdentity: ${(e as Error).message}`,
        e,
      );
    });
    return `arn:${partition}:iam::${account}:role/${role.replace(/^\/+/, '')}`;
  }
}

function options(aws: AwsClientSettings, service: 'sagemaker' | 'logs' | 'sts') {
  const endpoint = aws.endpoints[service];
  return { region: aws.region, credentials: aws.credentials, ...(endpoint ? { endpoint } : {}) };
}

/**
 * SageMaker writes a training job's model (model.tar.gz) and output data (output.tar.gz) under
 * `<S3OutputPath>/<job name>/output/`: that prefix is the run's outputs link. Liftoff does not copy them.
 */
function reportOutputs(ctx: Pick<AdoptContext, 'onOutputsLink'>, base: string | undefined, name: string): void {
  if (base) ctx.onOutputsLink?.(`${base.replace(/\/+$/, '')}/${name}/output/`);
}
