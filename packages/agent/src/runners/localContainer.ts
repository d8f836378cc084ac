import { StringDecoder } from 'node:string_decoder';
import { Writable } from 'node:stream';
import type Dockerode from 'dockerode';
import { RunnerError, parseLocalContainerArgs, parseSize, type LocalContainerArgs } from '@liftoff/core';
import { GENERATED_DIR } from '../builders/dockerfile.js';
import { CONTAINER_OUTPUT_DIR, prepareOutputDir } from '../outputs/outputDir.js';
import { followProgress, isNotFound } from '../docker/progress.js';
import {
  CONTAINER_HOME,
  ROOT_CAPABILITIES,
  containerUser,
  runFilesystem,
  type ContainerUser,
} from './containerLayout.js';
import type { JobContext, RunHandle, RunOutcome, Runner, RunnerDeps } from './types.js';

export const LABEL_RUN = 'liftoff.run-id';
export const LABEL_ITEM = 'liftoff.item-id';
export const LABEL_AGENT = 'liftoff.agent-id';

export type ContainerRunnerDeps = Pick<RunnerDeps, 'logger' | 'docker' | 'credentials' | 'agentId'>;

/**
 * `docker run` semantics through the Engine API: resource args pass an allow-list, the container carries labels
 * naming its run, item and agent (so a restarted agent finds it), output streams while it runs, and the container
 * is removed once its outcome is known.
 */
export class LocalContainerRunner implements Runner {
  readonly type = 'local-container' as const;

  constructor(private readonly deps: ContainerRunnerDeps) {}

  async start(job: JobContext): Promise<RunHandle> {
    const { docker } = this.deps;
    if (!job.image) throw new RunnerError('No image to run: the job was not built.');
    const args = parseLocalContainerArgs(job.spec.resource_args['local-container']);
    const user = containerUser(args.user, job.allow, job.queue);
    // The noop builder's code, or the docker builder's generated image: the job starts in a per-run copy.
    const codeAt = job.mountCodeAt ?? job.workCopyAt;
    let files: NodeJS.ReadableStream;
    try {
      // A generated image holds the agent's own .liftoff/ (the build left the code's out): so does the copy.
      const skip = job.workCopyAt ? (rel: string) => rel === GENERATED_DIR : undefined;
      files = await runFilesystem(job.workDir, codeAt, user, skip);
    } catch (e) {
      throw new RunnerError(`Could not prepare the container's files: ${(e as Error).message}`, e);
    }
    await this.ensureImage(job.image, job.onNote);
    const hc = hostConfig(args, user);
    if (job.outputDir) {
      await prepareOutputDir(job.outputDir, { uid: user.uid, gid: user.gid }, job.onNote, { container: true });
      // The one host path a container sees: its run's own, empty, size-capped output dir (outputs/outputDir.ts).
      hc.Mounts = [{ Type: 'bind', Source: job.outputDir.path, Target: CONTAINER_OUTPUT_DIR, ReadOnly: false }];
    }
    const env = { HOME: CONTAINER_HOME, ...envOf(args), ...job.env };
    const entry = job.spec.entry_point;
    let container: Dockerode.Container;
    try {
      container = await docker.createContainer({
        Image: job.image,
        ...(entry.length ? { Entrypoint: entry } : {}),
        Cmd: job.spec.args,
        Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
        Labels: {
          ...(args.labels ?? {}),
          [LABEL_RUN]: job.runId,
          [LABEL_ITEM]: job.itemId,
          [LABEL_AGENT]: this.deps.agentId,
        },
        ...(args.workdir ? { WorkingDir: args.workdir } : codeAt ? { WorkingDir: codeAt } : {}),
        User: user.spec,
        ...(args.hostname ? { Hostname: args.hostname } : {}),
        ...(args.name ? { name: args.name } : {}),
        ...(args.platform ? { platform: args.platform } : {}),
        HostConfig: hc,
      });
    } catch (e) {
      throw new RunnerError(`Could not create a container from ${job.image}: ${(e as Error).message}`, e);
    }
    try {
      await container.putArchive(files, { path: '/' });
      await container.start();
      job.onNote(`container ${container.id.slice(0, 12)} started`);
    } catch (e) {
      // A container that never ran holds the job's environment: it goes at once, not with a later sweep.
      await container
        .remove({ force: true })
        .catch((err: unknown) =>
          this.deps.logger.warn({ err, container: container.id }, 'could not remove a container that failed to start'),
        );
      throw new RunnerError(`Could not start a container from ${job.image}: ${(e as Error).message}`, e);
    }
    return this.follow(container, job.onOutput);
  }

  private async ensureImage(image: string, onNote: (line: string) => void): Promise<void> {
    try {
      await this.deps.docker.getImage(image).inspect();
      return;
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
    onNote(`pulling ${image}`);
    try {
      const auth = await this.deps.credentials.authFor(image);
      const stream = await this.deps.docker.pull(image, auth ? { authconfig: auth } : {});
      await followProgress(this.deps.docker, stream, () => undefined);
    } catch (e) {
      throw new RunnerError(`Could not pull ${image}: ${(e as Error).message}`, e);
    }
  }

  /** Streams the container's whole log (from its start) and reports its outcome once it has exited. */
  private follow(container: Dockerode.Container, onOutput: (t: string) => void): RunHandle {
    const { docker } = this.deps;
    let cancelled = false;
    // The end of the output: the init's own complaint when the entry point cannot be started is its last line.
    let tail = '';
    const output = (t: string) => {
      tail = (tail + t).slice(-2048);
      onOutput(t);
    };
    const logsDone = (async () => {
      const stream = (await container.logs({ follow: true, stdout: true, stderr: true })) as NodeJS.ReadableStream;
      await new Promise<void>((resolve) => {
        docker.modem.demuxStream(stream, decodingSink(output), decodingSink(output));
        stream.on('end', resolve);
        stream.on('error', () => resolve());
      });
    })().catch((err: unknown) => this.deps.logger.warn({ err }, 'container log stream failed'));
    const exited = container.wait().then((r: { StatusCode: number }) => r.StatusCode);
    return {
      wait: async (): Promise<RunOutcome> => {
        const code = await exited;
        await Promise.race([logsDone, new Promise((r) => setTimeout(r, 5_000))]);
        const info = await container.inspect().catch(() => undefined);
        const oom = info?.State.OOMKilled === true;
        const limit = info?.HostConfig.Memory;
        await container.remove({ force: true }).catch(() => undefined);
        if (cancelled) return { state: 'stopped', exitCode: code };
        if (oom) {
          return {
            state: 'failed',
            exitCode: code,
            message: `The container was OOM-killed: it exceeded its memory limit${limit ? ` of ${limit} bytes` : ''}.`,
          };
        }
        if (code === 0) return { state: 'finished', exitCode: 0 };
        const notStarted = code === 126 || code === 127 ? INIT_EXEC_FAILED.exec(tail) : null;
        if (notStarted)
          return {
            state: 'failed',
            exitCode: code,
            message: `Could not start a container's entry point: ${notStarted[1] ?? ''}. Check the entry point and that the image holds it.`,
          };
        return { state: 'failed', exitCode: code, message: `The container exited with code ${code}.` };
      },
      cancel: async (graceMs: number) => {
        cancelled = true;
        await container.stop({ t: Math.ceil(graceMs / 1000) }).catch(() => undefined);
        await exited.catch(() => undefined);
      },
    };
  }

  /** Finds the container of a run from before a restart: still running or already exited, it is adopted. */
  async reconcile(run: { runId: string; onOutput: (text: string) => void }): Promise<RunHandle | RunOutcome> {
    const found = await this.deps.docker.listContainers({
      all: true,
      filters: { label: [`${LABEL_RUN}=${run.runId}`] },
    });
    const info = found[0];
    if (!info) {
      return {
        state: 'failed',
        exitCode: null,
        message: 'The agent restarted and the container of this run no longer exists.',
      };
    }
    return this.follow(this.deps.docker.getContainer(info.Id), run.onOutput);
  }

  /**
   * After reconciling: containers this agent labelled whose runs are no longer active on the server (ended, or
   * declared lost while the agent was away, their items perhaps running elsewhere) are removed, running or not.
   */
  async sweep(active: ReadonlySet<string>): Promise<void> {
    const found = await this.deps.docker.listContainers({
      all: true,
      filters: { label: [`${LABEL_AGENT}=${this.deps.agentId}`] },
    });
    for (const info of found) {
      const runId = info.Labels[LABEL_RUN];
      if (!runId || active.has(runId)) continue;
      this.deps.logger.warn({ container: info.Id, runId }, 'removing the container of a run no longer active');
      await this.deps.docker
        .getContainer(info.Id)
        .remove({ force: true })
        .catch((e: unknown) => {
          if (!isNotFound(e)) throw e;
        });
    }
  }
}

/** tini's line when it cannot exec the entry point (the engine's init since Docker 1.13), e.g. a missing binary. */
const INIT_EXEC_FAILED = /\[FATAL tini \(\d+\)\] (exec .* failed: [^\n]*)/;

function hostConfig(args: LocalContainerArgs, user: ContainerUser): Dockerode.HostConfig {
  const hc: Dockerode.HostConfig = {
    // setuid binaries and file capabilities grant nothing; capabilities: see ROOT_CAPABILITIES.
    SecurityOpt: ['no-new-privileges'],
    CapDrop: ['ALL'],
    ...(user.root ? { CapAdd: ROOT_CAPABILITIES } : {}),
    // The engine's init (tini) as PID 1 forwards signals and reaps zombies: a cancel's SIGTERM reaches the job.
    Init: args.init ?? true,
  };
  if (args.cpus) hc.NanoCpus = Math.round(args.cpus * 1e9);
  if (args.memory !== undefined) hc.Memory = parseSize(args.memory);
  if (args['memory-swap'] !== undefined) hc.MemorySwap = parseSize(args['memory-swap']);
  else if (hc.Memory) hc.MemorySwap = hc.Memory; // no swap beyond the limit, so a memory limit is a real limit
  if (args['shm-size'] !== undefined) hc.ShmSize = parseSize(args['shm-size']);
  if (args['pids-limit']) hc.PidsLimit = args['pids-limit'];
  if (args.ulimit) {
    hc.Ulimits = Object.entries(args.ulimit).map(([Name, v]) =>
      typeof v === 'number' ? { Name, Soft: v, Hard: v } : { Name, Soft: v.soft, Hard: v.hard },
    );
  }
  if (args.gpus !== undefined) {
    hc.DeviceRequests = [{ Driver: '', Count: args.gpus === 'all' ? -1 : args.gpus, Capabilities: [['gpu']] }];
  }
  return hc;
}

function envOf(args: LocalContainerArgs): Record<string, string> {
  if (!args.env) return {};
  if (!Array.isArray(args.env)) return args.env;
  return Object.fromEntries(args.env.map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
}

function decodingSink(onOutput: (t: string) => void): Writable {
  const decoder = new StringDecoder('utf8');
  return new Writable({
    write(chunk: Buffer, _enc, cb) {
      const text = decoder.write(chunk);
      if (text) onOutput(text);
      cb();
    },
    final(cb) {
      const text = decoder.end();
      if (text) onOutput(text);
      cb();
    },
  });
}
