import type Dockerode from 'dockerode';
import { randomUUID } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { AwsError } from './errors.js';
import type { FakeEcr } from './ecr.js';
import type { FakeLogs } from './logs.js';
import type { FakeAwsServer } from './server.js';

export const LOG_GROUP = '/aws/sagemaker/TrainingJobs';
export const FAKE_LABEL = 'liftoff-test.fake-sagemaker';
const FAKE_INSTANCE_LABEL = 'liftoff-test.fake-sagemaker-instance';

type Status = 'InProgress' | 'Completed' | 'Failed' | 'Stopping' | 'Stopped';

interface Job {
  name: string;
  arn: string;
  request: Record<string, unknown>;
  status: Status;
  secondary: string;
  transitions: { Status: string; StartTime: number; EndTime?: number; StatusMessage?: string }[];
  created: number;
  modified: number;
  trainingStart?: number;
  trainingEnd?: number;
  failureReason?: string;
  containers: Dockerode.Container[];
  stopWanted?: 'user' | 'maxRuntime' | 'maxWait';
  /** What a MaxWaitTimeExceeded injection ends in (the model does not say which of the two AWS uses). */
  maxWaitStatus?: 'Stopped' | 'Failed';
  done: Promise<void>;
}

const now = () => Date.now() / 1000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * SageMaker training jobs as the docs describe them, run for real: each instance of `ResourceConfig.InstanceCount`
 * is a container on the real Docker engine (hostname `algo-N`, no network), its image pulled from the fake ECR with
 * the token GetAuthorizationToken gives, its output written to CloudWatch stream `<job>/algo-N-<epoch>`.
 */
export class FakeTrainingJobs {
  /**
   * This fake's own containers carry this too: test files run in parallel, each with a fake of its own, and one
   * closing must not remove another's running jobs (it did: a job ended 137 in the middle of its test).
   */
  private readonly instance = randomUUID();
  /** The Docker label filter of this fake's containers (for tests that check none is left). */
  readonly containerLabel = `${FAKE_INSTANCE_LABEL}=${this.instance}`;
  readonly jobs = new Map<string, Job>();
  /** Scales SageMaker's clock for tests: the 120 s stop grace and MaxRuntimeInSeconds (0.01 → 1.2 s grace). */
  timeScale = 0.01;
  /** Time spent in each of Starting and Downloading before the next phase. */
  phaseDelayMs = 150;

  constructor(
    server: FakeAwsServer,
    private readonly docker: Dockerode,
    private readonly logs: FakeLogs,
    private readonly ecr: FakeEcr,
    private readonly account: string,
    private readonly region: string,
  ) {
    server.on('sagemaker', 'CreateTrainingJob', (i) => this.create(i));
    server.on('sagemaker', 'DescribeTrainingJob', (i) => this.describe(this.job(i.TrainingJobName)));
    server.on('sagemaker', 'StopTrainingJob', (i) => this.stop(this.job(i.TrainingJobName)));
    server.on('sagemaker', 'ListTrainingJobs', (i) => this.list(i));
    server.on('sagemaker', 'ListTags', (i) => this.listTags(i));
  }

  /** Test knob: a managed-spot interruption (secondary status `Interrupted`; the job stays InProgress). */
  interrupt(name: string): void {
    this.transition(this.job(name), 'Interrupted', 'Spot capacity was reclaimed (injected)');
  }

  /** Test knob: the job's MaxWaitTimeInSeconds ran out (spot capacity never came); it ends in `status`. */
  exceedMaxWait(name: string, status: 'Stopped' | 'Failed' = 'Stopped'): void {
    const job = this.job(name);
    job.maxWaitStatus = status;
    void this.halt(job, 'maxWait');
  }

  async close(): Promise<void> {
    const list = await this.docker.listContainers({
      all: true,
      filters: { label: [this.containerLabel] },
    });
    await Promise.all(
      list.map((c) =>
        this.docker
          .getContainer(c.Id)
          .remove({ force: true })
          .catch(() => {}),
      ),
    );
  }

  private job(name: unknown): Job {
    const job = this.jobs.get(String(name));
    if (!job) throw new AwsError('ValidationException', `Requested resource not found. (${String(name)})`);
    return job;
  }

  private create(input: Record<string, unknown>): Record<string, unknown> {
    const name = String(input.TrainingJobName);
    if (this.jobs.has(name)) {
      throw new AwsError(
        'ResourceInUse',
        `Training job names must be unique within an AWS account and region, and a training job with this name already exists (arn:aws:sagemaker:${this.region}:${this.account}:training-job/${name})`,
      );
    }
    const spec = input.AlgorithmSpecification as Record<string, unknown> | undefined;
    if (!spec?.TrainingImage) {
      throw new AwsError(
        'ValidationException',
        'AlgorithmSpecification.TrainingImage is required for a custom algorithm',
      );
    }
    if (!input.ResourceConfig || !input.StoppingCondition) {
      throw new AwsError('ValidationException', 'ResourceConfig and StoppingCondition are required');
    }
    const t = now();
    const job: Job = {
      name,
      arn: `arn:aws:sagemaker:${this.region}:${this.account}:training-job/${name.toLowerCase()}`,
      request: input,
      status: 'InProgress',
      secondary: 'Starting',
      transitions: [{ Status: 'Starting', StartTime: t, StatusMessage: 'Launching requested ML instances' }],
      created: t,
      modified: t,
      containers: [],
      done: Promise.resolve(),
    };
    this.jobs.set(name, job);
    job.done = this.run(job).catch((e: unknown) =>
      this.end(job, 'Failed', 'Failed', `InternalServerError: ${String(e)}`),
    );
    return { TrainingJobArn: job.arn };
  }

  private transition(job: Job, status: string, message?: string): void {
    const t = now();
    const last = job.transitions.at(-1);
    if (last && last.EndTime === undefined) last.EndTime = t;
    job.transitions.push({ Status: status, StartTime: t, ...(message ? { StatusMessage: message } : {}) });
    job.secondary = status;
    job.modified = t;
  }

  private end(job: Job, status: Status, secondary: string, reason?: string): void {
    if (job.status === 'Completed' || job.status === 'Failed' || job.status === 'Stopped') return;
    job.status = status;
    if (reason) job.failureReason = reason;
    job.trainingEnd = now();
    this.transition(job, secondary);
    const last = job.transitions.at(-1);
    if (last) last.EndTime = job.trainingEnd;
  }

  private async run(job: Job): Promise<void> {
    const spec = job.request.AlgorithmSpecification as Record<string, unknown>;
    const image = String(spec.TrainingImage);
    await sleep(this.phaseDelayMs);
    if (job.stopWanted) return this.endStopped(job);
    this.transition(job, 'Downloading', 'Downloading the training image');
    if (!image.startsWith(`${this.ecr.host}/`)) {
      return this.end(
        job,
        'Failed',
        'Failed',
        `ClientError: The training image ${image} is not in the account's ECR registry`,
      );
    }
    try {
      const stream = await this.docker.pull(image, { authconfig: this.ecr.auth });
      await new Promise<void>((res, rej) => this.docker.modem.followProgress(stream, (e) => (e ? rej(e) : res())));
    } catch (e) {
      return this.end(job, 'Failed', 'Failed', `ClientError: Cannot pull the training image ${image}: ${String(e)}`);
    }
    await sleep(this.phaseDelayMs);
    if (job.stopWanted) return this.endStopped(job);
    const resource = job.request.ResourceConfig as { InstanceCount?: number };
    const count = resource.InstanceCount ?? 1;
    const entrypoint = spec.ContainerEntrypoint as string[] | undefined;
    const args = spec.ContainerArguments as string[] | undefined;
    const env = {
      ...(job.request.Environment as Record<string, string> | undefined),
      TRAINING_JOB_NAME: job.name,
      TRAINING_JOB_ARN: job.arn,
    };
    const epoch = Math.floor(Date.now() / 1000);
    for (let n = 1; n <= count; n++) {
      const c = await this.docker.createContainer({
        Image: image,
        // As SageMaker does: ContainerEntrypoint replaces the image's entry point; without it the image runs `train`.
        ...(entrypoint ? { Entrypoint: entrypoint, Cmd: args ?? [] } : { Cmd: ['train', ...(args ?? [])] }),
        Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
        Hostname: `algo-${n}`,
        Labels: { [FAKE_LABEL]: job.name, [FAKE_INSTANCE_LABEL]: this.instance },
        HostConfig: { NetworkMode: 'none' },
      });
      job.containers.push(c);
    }
    this.transition(job, 'Training', 'Training image download completed. Training in progress.');
    job.trainingStart = now();
    const maxRuntime = (job.request.StoppingCondition as { MaxRuntimeInSeconds?: number }).MaxRuntimeInSeconds;
    const timer = maxRuntime
      ? setTimeout(() => void this.halt(job, 'maxRuntime'), maxRuntime * 1000 * this.timeScale)
      : undefined;
    try {
      const results = await Promise.all(
        job.containers.map(async (c, i) => {
          const stream = `${job.name}/algo-${i + 1}-${epoch}`;
          this.logs.append(LOG_GROUP, stream, `Starting container algo-${i + 1}`);
          if (job.stopWanted) return 143;
          await c.start();
          // A stop that came while Docker was starting the container found nothing running to stop.
          if (job.stopWanted) await c.stop({ t: this.stopGraceS(job.stopWanted) }).catch(() => {});
          const collected = this.collect(c, stream);
          const { StatusCode } = (await c.wait()) as { StatusCode: number };
          await collected;
          return StatusCode;
        }),
      );
      if (job.stopWanted) return this.endStopped(job);
      const bad = results.findIndex((code) => code !== 0);
      if (bad >= 0) {
        return this.end(
          job,
          'Failed',
          'Failed',
          `AlgorithmError: The training container on algo-${bad + 1} exited with exit code ${results[bad]}`,
        );
      }
      this.transition(job, 'Uploading', 'Uploading generated training model');
      this.end(job, 'Completed', 'Completed');
    } finally {
      clearTimeout(timer);
      await Promise.all(job.containers.map((c) => c.remove({ force: true }).catch(() => {})));
    }
  }

  private endStopped(job: Job): void {
    if (job.stopWanted === 'maxWait') {
      this.end(
        job,
        job.maxWaitStatus ?? 'Stopped',
        'MaxWaitTimeExceeded',
        job.maxWaitStatus === 'Failed'
          ? 'CapacityError: MaxWaitTimeInSeconds exceeded before spot capacity was available'
          : undefined,
      );
    } else if (job.stopWanted === 'maxRuntime') {
      this.end(job, 'Stopped', 'MaxRuntimeExceeded');
    } else {
      this.end(job, 'Stopped', 'Stopped');
    }
  }

  /** Container output, line by line, into the job's CloudWatch stream. */
  private async collect(c: Dockerode.Container, stream: string): Promise<void> {
    const raw = (await c.logs({ follow: true, stdout: true, stderr: true })) as NodeJS.ReadableStream;
    const out = new PassThrough();
    this.docker.modem.demuxStream(raw, out, out);
    let buf = '';
    out.on('data', (b: Buffer) => {
      buf += b.toString('utf8');
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        this.logs.append(LOG_GROUP, stream, buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    });
    await new Promise<void>((r) => raw.on('end', () => r()));
    if (buf) this.logs.append(LOG_GROUP, stream, buf);
  }

  /** SageMaker's stop: SIGTERM, then SIGKILL after 120 s (scaled). */
  private async halt(job: Job, why: 'user' | 'maxRuntime' | 'maxWait'): Promise<void> {
    if (job.status !== 'InProgress' || job.stopWanted) return;
    job.stopWanted = why;
    if (why !== 'maxWait') {
      job.status = 'Stopping';
      this.transition(job, 'Stopping', 'Stopping the training job');
    }
    const grace = this.stopGraceS(why);
    await Promise.all(job.containers.map((c) => c.stop({ t: grace }).catch(() => {})));
  }

  private stopGraceS(why: 'user' | 'maxRuntime' | 'maxWait'): number {
    return why === 'maxWait' ? 0 : Math.max(1, Math.round(120 * this.timeScale));
  }

  private stop(job: Job): Record<string, unknown> {
    if (job.status !== 'InProgress' && job.status !== 'Stopping') {
      throw new AwsError(
        'ValidationException',
        `The request was rejected because the training job is in status ${job.status}.`,
      );
    }
    void this.halt(job, 'user');
    return {};
  }

  private describe(job: Job): Record<string, unknown> {
    const r = job.request;
    return {
      TrainingJobName: job.name,
      TrainingJobArn: job.arn,
      ModelArtifacts: {
        S3ModelArtifacts: `${(r.OutputDataConfig as { S3OutputPath: string }).S3OutputPath}/${job.name}/output/model.tar.gz`,
      },
      TrainingJobStatus: job.status,
      SecondaryStatus: job.secondary,
      ...(job.failureReason ? { FailureReason: job.failureReason } : {}),
      AlgorithmSpecification: r.AlgorithmSpecification,
      RoleArn: r.RoleArn,
      OutputDataConfig: r.OutputDataConfig,
      ResourceConfig: r.ResourceConfig,
      StoppingCondition: r.StoppingCondition,
      CreationTime: job.created,
      LastModifiedTime: job.modified,
      ...(job.trainingStart ? { TrainingStartTime: job.trainingStart } : {}),
      ...(job.trainingEnd ? { TrainingEndTime: job.trainingEnd } : {}),
      SecondaryStatusTransitions: job.transitions,
      ...(r.Environment ? { Environment: r.Environment } : {}),
      ...(r.HyperParameters ? { HyperParameters: r.HyperParameters } : {}),
      EnableNetworkIsolation: r.EnableNetworkIsolation ?? false,
      EnableInterContainerTrafficEncryption: false,
      EnableManagedSpotTraining: r.EnableManagedSpotTraining ?? false,
      ...(r.RetryStrategy ? { RetryStrategy: r.RetryStrategy } : {}),
    };
  }

  private list(input: Record<string, unknown>): Record<string, unknown> {
    let all = [...this.jobs.values()].sort((a, b) => b.created - a.created);
    if (input.StatusEquals) all = all.filter((j) => j.status === input.StatusEquals);
    if (typeof input.NameContains === 'string') all = all.filter((j) => j.name.includes(String(input.NameContains)));
    const start = typeof input.NextToken === 'string' ? Number(input.NextToken) : 0;
    const max = typeof input.MaxResults === 'number' ? input.MaxResults : 10;
    const page = all.slice(start, start + max);
    return {
      TrainingJobSummaries: page.map((j) => ({
        TrainingJobName: j.name,
        TrainingJobArn: j.arn,
        CreationTime: j.created,
        LastModifiedTime: j.modified,
        TrainingJobStatus: j.status,
        SecondaryStatus: j.secondary,
        ...(j.trainingEnd ? { TrainingEndTime: j.trainingEnd } : {}),
      })),
      ...(start + max < all.length ? { NextToken: String(start + max) } : {}),
    };
  }

  private listTags(input: Record<string, unknown>): Record<string, unknown> {
    const job = [...this.jobs.values()].find((j) => j.arn === input.ResourceArn);
    if (!job) throw new AwsError('ResourceNotFound', `Resource ${String(input.ResourceArn)} not found`);
    return { Tags: (job.request.Tags as unknown[] | undefined) ?? [] };
  }
}
