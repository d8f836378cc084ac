import type Dockerode from 'dockerode';
import { randomUUID } from 'node:crypto';
import { PassThrough } from 'node:stream';
import type { FakeLogging } from './logging.js';

export const FAKE_LABEL = 'liftoff-test.fake-vertex';
const FAKE_INSTANCE_LABEL = 'liftoff-test.fake-vertex-instance';

type Json = Record<string, unknown>;
export type JobState =
  | 'JOB_STATE_QUEUED'
  | 'JOB_STATE_PENDING'
  | 'JOB_STATE_RUNNING'
  | 'JOB_STATE_SUCCEEDED'
  | 'JOB_STATE_FAILED'
  | 'JOB_STATE_CANCELLING'
  | 'JOB_STATE_CANCELLED'
  | 'JOB_STATE_PAUSED'
  | 'JOB_STATE_EXPIRED'
  | 'JOB_STATE_UPDATING'
  | 'JOB_STATE_PARTIALLY_SUCCEEDED';

export const TERMINAL: ReadonlySet<string> = new Set([
  'JOB_STATE_SUCCEEDED',
  'JOB_STATE_FAILED',
  'JOB_STATE_CANCELLED',
  'JOB_STATE_EXPIRED',
  'JOB_STATE_PARTIALLY_SUCCEEDED',
]);

export interface FakeJob {
  id: string;
  name: string;
  /** The create body as canonical proto3 JSON (camelCase), output-only fields dropped. */
  spec: Json;
  state: JobState;
  error?: { code: number; message: string };
  createTime: string;
  startTime?: string;
  endTime?: string;
  updateTime: string;
  containers: Array<{ task: string; container: Dockerode.Container }>;
  /** Why the containers are being stopped (set before docker stop), which decides the terminal state. */
  halting?: 'cancel' | 'expire' | 'preempt';
  done: Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const now = () => new Date().toISOString();

/**
 * Vertex AI custom jobs run for real: each replica of each worker pool is a container on the real Docker engine
 * (task `workerpool<i>-<r>`, no network), its image pulled with `pullAuth` (Vertex pulls with its service agent;
 * here the registry's oauth2accesstoken login), its output written to the fake Cloud Logging as that task's entries.
 * States walk QUEUED → PENDING → RUNNING → SUCCEEDED/FAILED; a cancel goes CANCELLING → docker stop → CANCELLED
 * with error.code 1 (job_service.proto: "On successful cancellation ... error ... code of 1").
 */
export class FakeCustomJobs {
  /**
   * This fake's own containers carry this too: test files run in parallel, each with a fake of its own, and one
   * closing must not remove another's running jobs (it did: a job ended 137 in the middle of its test).
   */
  private readonly instance = randomUUID();
  /** The Docker label filter of this fake's containers (for tests that check none is left). */
  readonly containerLabel = `${FAKE_INSTANCE_LABEL}=${this.instance}`;
  readonly jobs = new Map<string, FakeJob>();
  /** Time spent in QUEUED and in PENDING. */
  phaseDelayMs = 150;
  /** docker stop's grace on cancel (seconds). */
  stopGraceS = 1;
  private next = 1000 + Math.floor(Math.random() * 1000);

  constructor(
    private readonly docker: Dockerode,
    private readonly logging: FakeLogging,
    private readonly projectNumber: string,
    private readonly pullAuth: () => { username: string; password: string; serveraddress?: string } | undefined,
  ) {}

  create(location: string, spec: Json): FakeJob {
    const id = String(this.next++) + String(Date.now()).slice(-9);
    const t = now();
    const job: FakeJob = {
      id,
      name: `projects/${this.projectNumber}/locations/${location}/customJobs/${id}`,
      spec,
      state: 'JOB_STATE_QUEUED',
      createTime: t,
      updateTime: t,
      containers: [],
      done: Promise.resolve(),
    };
    this.jobs.set(id, job);
    job.done = this.run(job).catch((e: unknown) =>
      this.end(job, 'JOB_STATE_FAILED', { code: 13, message: `Internal error: ${String(e)}` }),
    );
    return job;
  }

  /** `:cancel`: asynchronous, as Vertex's (the job goes CANCELLING, then CANCELLED once its containers stopped). */
  cancel(job: FakeJob): void {
    void this.halt(job, 'cancel');
  }

  /** Knob: the job ends EXPIRED (as a FLEX_START job whose max wait ran out). */
  expire(id: string): void {
    void this.halt(this.must(id), 'expire');
  }

  /** Knob: a Spot VM of the job is preempted; the job fails with an error saying so. */
  preempt(id: string): void {
    void this.halt(this.must(id), 'preempt');
  }

  /** Knob: someone cancels the job in the console or with gcloud (not through Liftoff). */
  cancelOutside(id: string): void {
    this.cancel(this.must(id));
  }

  /** Knob: a state for a job that does not run yet or any more (PAUSED, UPDATING, ...), as the service would set. */
  setState(id: string, state: JobState): void {
    const job = this.must(id);
    job.state = state;
    job.updateTime = now();
  }

  view(job: FakeJob): Json {
    return {
      name: job.name,
      ...job.spec,
      state: job.state,
      createTime: job.createTime,
      updateTime: job.updateTime,
      ...(job.startTime ? { startTime: job.startTime } : {}),
      ...(job.endTime ? { endTime: job.endTime } : {}),
      ...(job.error ? { error: job.error } : {}),
    };
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

  private must(id: string): FakeJob {
    const job = this.jobs.get(id);
    if (!job) throw new Error(`no fake custom job ${id}`);
    return job;
  }

  private end(job: FakeJob, state: JobState, error?: { code: number; message: string }): void {
    if (TERMINAL.has(job.state)) return;
    job.state = state;
    if (error) job.error = error;
    job.endTime = job.updateTime = now();
  }

  private async run(job: FakeJob): Promise<void> {
    await sleep(this.phaseDelayMs);
    if (job.halting) return this.endHalted(job);
    job.state = 'JOB_STATE_PENDING';
    job.updateTime = now();
    const pools = ((job.spec.jobSpec as Json).workerPoolSpecs as Json[]).map((p, i) => ({ pool: p, i }));
    for (const { pool } of pools) {
      const image = String((pool.containerSpec as { imageUri?: string } | undefined)?.imageUri ?? '');
      try {
        const auth = this.pullAuth();
        const stream = await this.docker.pull(image, auth ? { authconfig: auth } : {});
        await new Promise<void>((res, rej) => this.docker.modem.followProgress(stream, (e) => (e ? rej(e) : res())));
      } catch (e) {
        return this.end(job, 'JOB_STATE_FAILED', {
          code: 3,
          message: `Unable to pull the image ${image}: ${String(e)}`,
        });
      }
    }
    await sleep(this.phaseDelayMs);
    if (job.halting) return this.endHalted(job);
    for (const { pool, i } of pools) {
      const c = pool.containerSpec as Json;
      const replicas = Number(pool.replicaCount ?? 1) || 1;
      const env = [...((c.env as Array<{ name: string; value: string }> | undefined) ?? [])];
      for (let r = 0; r < replicas; r++) {
        const task = `workerpool${i}-${r}`;
        const container = await this.docker.createContainer({
          Image: String(c.imageUri),
          // As Vertex (and Kubernetes): command replaces the image's ENTRYPOINT, args its CMD.
          ...(Array.isArray(c.command) && c.command.length ? { Entrypoint: c.command as string[] } : {}),
          ...(Array.isArray(c.args) && c.args.length ? { Cmd: c.args as string[] } : {}),
          Env: [...env.map((e) => `${e.name}=${e.value}`), `CLOUD_ML_JOB_ID=${job.id}`],
          Hostname: task,
          Labels: { [FAKE_LABEL]: job.id, [FAKE_INSTANCE_LABEL]: this.instance },
          HostConfig: { NetworkMode: 'none' },
        });
        job.containers.push({ task, container });
      }
    }
    job.state = 'JOB_STATE_RUNNING';
    job.startTime = job.updateTime = now();
    try {
      const codes = await Promise.all(
        job.containers.map(async ({ task, container }) => {
          if (job.halting) return 143;
          await container.start();
          // A halt that came while Docker was starting the container found nothing running to stop.
          if (job.halting) await container.stop({ t: this.haltGraceS(job.halting) }).catch(() => {});
          const collected = this.collect(container, job.id, task);
          const { StatusCode } = (await container.wait()) as { StatusCode: number };
          await collected;
          return StatusCode;
        }),
      );
      if (job.halting) return this.endHalted(job);
      const bad = codes.findIndex((c) => c !== 0);
      if (bad >= 0) {
        const task = job.containers[bad]?.task ?? '?';
        // Vertex's wording for a replica's non-zero exit (error code 3, INVALID_ARGUMENT).
        return this.end(job, 'JOB_STATE_FAILED', {
          code: 3,
          message: `The replica ${task} exited with a non-zero status of ${codes[bad]}. To find out more about why your job exited please check the logs: https://console.cloud.google.com/logs/viewer?project=${this.projectNumber}&resource=ml_job%2Fjob_id%2F${job.id}`,
        });
      }
      this.end(job, 'JOB_STATE_SUCCEEDED');
    } finally {
      await Promise.all(job.containers.map(({ container }) => container.remove({ force: true }).catch(() => {})));
    }
  }

  private endHalted(job: FakeJob): void {
    if (job.halting === 'expire')
      return this.end(job, 'JOB_STATE_EXPIRED', { code: 4, message: 'The job expired before it could run.' });
    if (job.halting === 'preempt') {
      // An assumption (the protos define no preemption code): Vertex's wording for reclaimed Spot VMs.
      return this.end(job, 'JOB_STATE_FAILED', {
        code: 14,
        message: 'The replica workerpool0-0 was preempted: the Spot VM was reclaimed by Compute Engine.',
      });
    }
    this.end(job, 'JOB_STATE_CANCELLED', { code: 1, message: 'CANCELED' });
  }

  private async halt(job: FakeJob, why: 'cancel' | 'expire' | 'preempt'): Promise<void> {
    if (TERMINAL.has(job.state) || job.halting) return;
    job.halting = why;
    if (why === 'cancel') {
      job.state = 'JOB_STATE_CANCELLING';
      job.updateTime = now();
    }
    await Promise.all(
      job.containers.map(({ container }) => container.stop({ t: this.haltGraceS(why) }).catch(() => {})),
    );
  }

  private haltGraceS(why: 'cancel' | 'expire' | 'preempt'): number {
    return why === 'cancel' ? this.stopGraceS : 0;
  }

  /** A container's output, line by line, as the task's log entries. */
  private async collect(c: Dockerode.Container, jobId: string, task: string): Promise<void> {
    const raw = (await c.logs({ follow: true, stdout: true, stderr: true })) as NodeJS.ReadableStream;
    const out = new PassThrough();
    this.docker.modem.demuxStream(raw, out, out);
    let buf = '';
    out.on('data', (b: Buffer) => {
      buf += b.toString('utf8');
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        this.logging.append(jobId, task, buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    });
    await new Promise<void>((r) => raw.on('end', () => r()));
    if (buf) this.logging.append(jobId, task, buf);
  }
}
